"""One module per ``netc`` subcommand; see :mod:`runtime.cli`."""
