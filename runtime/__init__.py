"""netc's runtime: the command line, ONNX Runtime sessions, training, recipes."""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it from here)
