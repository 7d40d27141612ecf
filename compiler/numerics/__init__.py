"""Numbers the compiler computes itself, in numpy: netc's seeded initial weights
(``seeded_weights``), the moments that layers give normal inputs (``moments``, for the seeded
batch-norm statistics) and the closed-form solvers of fitted layers (``fitting``)."""
