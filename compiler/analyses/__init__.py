"""Analyses: what can be read off an IR graph without running it.

Counts and shapes (``summary``), receptive fields (``receptive``), what a net would take to
build (``budget``), batch-norm statistics of seeded weights (``seeded_stats``) and the graph's
drawing (``draw`` for the layout, ``draw_svg`` for the file).
"""
