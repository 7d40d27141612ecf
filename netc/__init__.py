"""netc: a small language for convolutional network architectures, and its compiler."""

from netc.runtime import __version__

__all__ = ["__version__"]
