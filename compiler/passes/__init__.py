"""Graph passes: pure functions ``graph -> graph``, one per module, each listing its rules.

- :func:`deepest_column` (``deepest_column.py``): FractalNet's "deepest column alone".
"""

from netc.compiler.passes.deepest_column import deepest_column, has_columns

__all__ = ["deepest_column", "has_columns"]
