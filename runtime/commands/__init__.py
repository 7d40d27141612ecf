"""One module per ``netc`` subcommand; see :mod:`netc.runtime.cli`."""
