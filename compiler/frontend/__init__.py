"""Front end: a spec's text (or a Caffe file) becomes a checked IR graph.

``loader`` finds and reads a spec (zoo name, path, ``file.net:NET``, ``.prototxt``);
``elaborate`` expands definitions, repetition and conditionals into IR nodes, with ``values``
(what expressions evaluate to) and ``bindings`` (names, lists and numbers inside definitions);
``recipe`` checks an image recipe against a net's graph.
"""
