"""Graph passes: pure functions ``graph -> graph``, one per module, each listing its rules.

The elaborator runs the first two on every net it builds; the others run where a command asks.

- :func:`flatten_mean_joins` (``flatten_mean_joins.py``): FractalNet's nested mean joins become
  one join per depth.
- :func:`assign_survival` (``assign_survival.py``): stochastic depth's linear decay of survival
  probabilities over the residual blocks.
- :func:`deepest_column` (``deepest_column.py``): FractalNet's "deepest column alone".
- ``fold_bn.py`` and ``fold_survival.py``: inference-time folding of batch norm and of
  stochastic depth's scale into the weights before them (``graph, weights -> graph, weights``).
"""

from netc.compiler.passes.deepest_column import deepest_column, has_columns

__all__ = ["deepest_column", "has_columns"]
