"""netc: a small language for convolutional network architectures, and its compiler.

The Python API, in full (each name has its own documentation)::

    import netc

    net = netc.load("resnet34", classes=10)  # a zoo name, a path, FILE.net:NET, a .prototxt
    netc.check("my.net")              # [] or the mistakes, as records with file, line, column
    print(net.summary())              # the table `netc summary` prints; its rows are data
    module = net.to_torch(seed=0)     # an nn.Module; module(x, taps=["layer3"]) for activations
    model = net.to_onnx("net.onnx")   # an onnx.ModelProto, also written to the file
    tensors = net.import_weights("theirs.pth")  # someone else's weights, paired by structure

Every mistake in a spec or in a call to these functions raises :class:`NetcError`; a module
from :meth:`Net.to_torch` is then an ordinary ``nn.Module``, whose own errors are torch's.
Importing ``netc`` loads neither torch nor onnx; the functions that need them import them.
"""

from netc.api import Net, check, load, zoo
from netc.dsl.diagnostics import Diagnostic, NetcError, Span
from netc.runtime import __version__
from netc.summary import Summary, SummaryRow

__all__ = [
    "Diagnostic",
    "Net",
    "NetcError",
    "Span",
    "Summary",
    "SummaryRow",
    "__version__",
    "check",
    "load",
    "zoo",
]
