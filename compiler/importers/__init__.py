"""Importers: other tools' files into netc. Caffe's ``.prototxt`` and ``.caffemodel``
(``caffe``), and someone else's state dict paired with a spec's layers (``pairing``)."""
