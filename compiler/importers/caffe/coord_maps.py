"""Where a blob's units sit in the input: Caffe's coordinate maps, for Crop offsets from geometry.

BVLC Caffe's Crop takes its offsets from ``crop_param`` (0 where it has none). The forks that
HED and FCN were trained with (s9xie/hed, Jon Long's FCN branch) computed them instead from the
layers between the crop's two bottoms; BVLC keeps the rule in ``python/caffe/coord_map.py``.
Each layer maps a bottom coordinate x to a top coordinate a·x + b, per spatial axis::

    Convolution, Pooling:  a = 1/s,  b = (p − (k' − 1)/2) / s     (k' = d·(k − 1) + 1)
    Deconvolution:         a = s,    b = (k' − 1)/2 − p
    Crop:                  a = 1,    b = −offset
    elementwise layers:    a = 1,    b = 0

Composed from the input, each blob gets its (a, b); cropping blob X to the size of blob R starts
at ``b_X − b_R``, which must be whole and non-negative, with ``a_X = a_R`` (the same scale).
HED's side outputs give 34, 35, 36, 38 and 42 pixels (its first conv pads by 35).
"""

from __future__ import annotations

from fractions import Fraction

from netc.compiler.importers.caffe import more_layers
from netc.compiler.importers.caffe.fields import Fields, error
from netc.dsl.diagnostics import Diagnostic

# One (a, b) per spatial axis (height, width); None where a layer has no map (fc, flatten).
CoordMap = tuple[tuple[Fraction, Fraction], tuple[Fraction, Fraction]]

IDENTITY: CoordMap = ((Fraction(1), Fraction(0)), (Fraction(1), Fraction(0)))

# Layers that keep every unit where it was (coord_map.py's PASS_THROUGH_LAYERS, with the
# channel-wise layers netc also imports).
PASS_THROUGH = frozenset({
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
    "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold",
    "Concat", "Softmax", "ShuffleChannel",
})
_WINDOWED = frozenset({"Convolution", "Pooling", "ConvolutionDepthwise",
                       "DepthwiseConvolution"})


def layer_map(type_name: str, p: Fields | None) -> CoordMap | None:
    """The (a, b) per axis that ``type_name`` with parameters ``p`` maps bottom to top
    coordinates by, or None where it has none (the module docstring's table)."""
    if type_name in PASS_THROUGH:
        return IDENTITY
    if p is None or type_name not in _WINDOWED | {"Deconvolution"}:
        return None
    if type_name == "Pooling" and p.bool("global_pooling", False):
        return None
    repeated = type_name != "Pooling"
    kernel = p.pair("kernel", None, minimum=1, repeated=repeated)
    if kernel is None:
        return None
    stride = p.pair("stride", 1, minimum=1, repeated=repeated)
    pad = p.pair("pad", 0, repeated=repeated)
    dilation = p.pair("dilation", 1, minimum=1) if repeated else (1, 1)
    axes = []
    for k, s, pd, d in zip(kernel, stride, pad, dilation):
        half = Fraction(d * (k - 1), 2)  # (k' − 1)/2
        if type_name == "Deconvolution":
            axes.append((Fraction(s), half - pd))
        else:
            axes.append((Fraction(1, s), (pd - half) / s))
    return axes[0], axes[1]


def compose(before: CoordMap | None, layer: CoordMap | None) -> CoordMap | None:
    """The map of a top: its bottom's map from the input, then the layer's own."""
    if before is None or layer is None:
        return None
    (a1, b1), (a2, b2) = before
    (la1, lb1), (la2, lb2) = layer
    return (a1 * la1, la1 * b1 + lb1), (a2 * la2, la2 * b2 + lb2)


def crop_offsets(cropped: CoordMap | None, reference: CoordMap | None) -> tuple[int, int] | str:
    """The (height, width) offsets at which the fork's Crop cuts ``cropped`` to line up with
    ``reference``, or why there are none (a sentence for the error message)."""
    if cropped is None or reference is None:
        return ("a layer between them and the input (an fc, a global pool, a reshape) has no "
                "coordinate map")
    out = []
    for (ax, bx), (ar, br) in zip(cropped, reference):
        if ax != ar:
            return (f"the two bottoms are at different scales ({_fmt(ax)} and {_fmt(ar)} "
                    "units per input pixel)")
        offset = bx - br
        if offset.denominator != 1 or offset < 0:
            return f"the offset would be {_fmt(offset)}, not a whole number of pixels ≥ 0"
        out.append(int(offset))
    return out[0], out[1]


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):g}"


class CoordTracking:
    """The part of :class:`.net.NetReader` that follows each blob's coordinate map and reads
    a Crop without ``crop_param`` (BVLC's offset 0 with a warning, or the forks' geometry)."""

    coords: dict[str, CoordMap | None]
    crop_mode: str
    warnings: list

    def track(self, type_name: str, params: Fields | None, bottom: str | None,
              top: str) -> None:
        """Give ``top`` its map: ``bottom``'s, then the layer's (first bottoms: Caffe assumes
        every bottom of a layer maps alike, and for Crop only the first is mapped)."""
        before = self.coords.get(bottom) if bottom is not None else None
        self.coords[top] = compose(before, layer_map(type_name, params))

    def track_crop(self, bottom: str, top: str, axis: int, offsets: list[int]) -> None:
        """A Crop's map: a = 1, b = −offset on each spatial axis it cuts (``offsets`` are
        those of the axes from ``axis`` on, N C H W counted from 0)."""
        before = self.coords.get(bottom)
        cut = [0, 0]
        for ax, o in zip(range(axis, 4), offsets):
            if ax >= 2:
                cut[ax - 2] = o
        self.coords[top] = None if before is None else \
            tuple((a, b - c) for (a, b), c in zip(before, cut))

    def read_crop(self, info, fields: Fields, params: Fields, shapes: list, names: list[str],
                  top: str):
        """The Mapped of a Crop layer: its ``crop_param``'s offsets, or, without one,
        :meth:`crop_without_param`'s."""
        if fields.message_of("crop_param") is None:
            axis, offsets = 2, self.crop_without_param(info, names)
        else:
            axis, offsets = more_layers.crop_offsets(info, params, shapes[0])
        mapped = more_layers.crop_at(info, axis, offsets, shapes)
        self.track_crop(names[0], top, axis, offsets)
        return mapped

    def crop_without_param(self, info, names: list[str]) -> list[int]:
        """The offsets of a Crop that has no ``crop_param``: 0 (BVLC) with a warning, or the
        geometry's (``--crop-offsets geometry``), which are an error where they do not exist."""
        found = crop_offsets(self.coords.get(names[0]), self.coords.get(names[1]))
        if self.crop_mode == "geometry":
            if isinstance(found, str):
                raise error(info.span, f"{info.what}: --crop-offsets geometry cannot place this "
                                       f"crop: {found}")
            return list(found)
        where = (f"here {_pixels(found)}" if not isinstance(found, str)
                 else "here none can be computed")
        self.warnings.append(Diagnostic(
            info.span, f"{info.what} has no crop_param: imported with BVLC Caffe's offset 0; "
                       "the forks HED and FCN were trained with compute the offsets from the "
                       f"layers' geometry ({where}): --crop-offsets geometry imports those",
            severity="warning"))
        return [0, 0]


def _pixels(offsets: tuple[int, int]) -> str:
    h, w = offsets
    return f"{h} px" if h == w else f"{h}x{w} px"
