"""Pictures of what a network computes: attribution maps, top activations, t-SNE of codes.

The command-line faces are ``netc explain``, ``netc top-activations`` and ``netc embed``
(``runtime/commands/``); the graph drawing itself is ``netc.compiler.analyses.draw`` (pure IR, no
torch), and
its raster form ``netc.runtime.views.graph_png``. Nothing here downloads anything: images come from
a
folder, scikit-image's bundled samples or scikit-learn's digits (:mod:`netc.runtime.views.sources`).
"""
