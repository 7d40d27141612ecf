"""Numbers the compiler computes itself, in numpy: netc's seeded initial weights
(``seeded_weights``) and the closed-form solvers of fitted layers (``fitting``)."""
