"""Lowering to PyTorch: an ``nn.Module`` that interprets the IR (``module``), and the torch
modules the op registry's ``to_torch`` faces return (``layers``, ``joins``, ``fitted``), with
training-time gates (``gates``) and attribution backward rules (``attribution``).

Only this package imports torch at module level; the rest of the compiler runs without it.
"""
