"""Front end: a spec's text (or a Caffe file) becomes a checked IR graph.

- ``loader``: finds and reads a spec (zoo name, path, ``file.net:NET``, ``.prototxt`` through
  the Caffe importer), resolves includes and aliases, and runs the elaborator;
- ``elaborate``: the :class:`~netc.compiler.frontend.elaborate.Elaborator`, which wires the
  parts below together for one net and runs the passes every net goes through;
- ``context`` (diagnostics, budgets), ``builder`` (naming, nodes and shapes), ``expressions``
  (AST -> values, with ``bindings`` and ``calls``), ``application`` (blocks applied to values),
  ``residual`` (residual blocks and their shortcuts), ``statements`` (a net's statements),
  ``values`` (what expressions evaluate to), ``arithmetic`` (the operators, shared with recipes);
- ``recipe``: checks an image recipe against a net's graph, with ``recipe_values``,
  ``recipe_settings`` and ``recipe_loss``.
"""
