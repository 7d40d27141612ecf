"""The parts of a train_val file that a deploy net does not have: phases, data layers, losses.

netc imports the net Caffe builds for testing, with ``NetState(phase: TEST, level: 0)`` and the
stages the caller names (net.cpp ``StateMeetsRule``):

1. A layer with ``include`` rules is kept when any rule is met; one with ``exclude`` rules is
   dropped when any is met. A rule is met when its ``phase`` (if given) is TEST, the level lies
   in ``min_level`` .. ``max_level``, every ``stage`` is in the state and no ``not_stage`` is.
2. A data layer (Data, ImageData, HDF5Data, MemoryData, WindowData, DummyData) becomes the
   net's input: its first top, with the shape it declares (MemoryData's and DummyData's
   dimensions; ImageData's ``new_height``/``new_width`` and colour; a ``crop_size``), or the
   shape the caller gives (``--input``). Its ``transform_param`` says how pixels were
   prepared: ``scale`` s and ``mean_value`` m give the input line's ``scale=255·s`` and
   ``mean=m·s`` (netc's pixels are in [0, 1]; Caffe's in 0..255), and a 3-channel Caffe image
   is BGR (``layout=bgr``). Its other tops (the labels) are dropped.
3. Losses and Accuracy are dropped, with the blobs only they read (the labels).

Everything dropped is listed, so the import can say so.
"""

from __future__ import annotations

from netc.compiler.importers.caffe.fields import Fields, error
from netc.compiler.importers.caffe.layers import fmt_float
from netc.compiler.importers.caffe.textformat import Message

DATA_TYPES = frozenset({"Data", "ImageData", "HDF5Data", "MemoryData", "WindowData",
                        "DummyData", "AnnotatedData"})
DROPPED_TYPES = frozenset({
    "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
    "InfogainLoss", "MultinomialLogisticLoss", "ContrastiveLoss", "Accuracy", "Silence",
    "HDF5Output", "MultiBoxLoss", "SmoothL1Loss",
})
_RULE_FIELDS = frozenset({"phase", "min_level", "max_level", "stage", "not_stage"})


def _meets(rule: Message, stages: frozenset[str]) -> bool:
    f = Fields(rule, "rule", _RULE_FIELDS)
    phase = f.enum("phase", "TEST", ("TRAIN", "TEST"))
    lo, hi = f.int("min_level", None, minimum=None), f.int("max_level", None, minimum=None)
    return (phase == "TEST" and (lo is None or lo <= 0) and (hi is None or 0 <= hi)
            and all(s in stages for s, _ in f.strings("stage"))
            and not any(s in stages for s, _ in f.strings("not_stage")))


def excluded_by(msg: Message, stages: frozenset[str] = frozenset()) -> str | None:
    """Why the TEST net has no such layer (rule 1), or None when it has."""
    include = [f for f in msg.all("include")]
    exclude = [f for f in msg.all("exclude")]
    for f in include + exclude:
        if not isinstance(f.value, Message):
            raise error(f.span, f"{f.name} is a message: write {f.name} {{ phase: TEST }}")
    if include and exclude:
        raise error(exclude[0].span, "a layer has include or exclude rules, not both (Caffe)")
    if include and not any(_meets(f.value, stages) for f in include):
        return "not in the TEST net (its include rules)"
    if exclude and any(_meets(f.value, stages) for f in exclude):
        return "not in the TEST net (its exclude rules)"
    return None


def declared_stages(root: Message) -> list[str]:
    """The stages a file's include/exclude rules name (``stage`` and ``not_stage``), sorted."""
    found: set[str] = set()
    for layer in root.all("layer") + root.all("layers"):
        if not isinstance(layer.value, Message):
            continue
        for rule in layer.value.all("include") + layer.value.all("exclude"):
            if isinstance(rule.value, Message):
                found.update(str(f.value.value) for f in rule.value.all("stage")
                             + rule.value.all("not_stage") if not isinstance(f.value, Message))
    return sorted(found)


def stage_hint(root: Message, stages: frozenset[str]) -> str:
    """What to say after "its include rules leave it out": the stages given, those the file
    declares, and ``--stage`` (empty where the file names no stage: a phase rule only)."""
    declared = declared_stages(root)
    if not declared:
        return ""
    given = ", ".join(sorted(stages)) or "none"
    example = next((s for s in declared if s not in stages), declared[0])
    return (f", with the stages given ({given}); this file's rules name the stages "
            f"{', '.join(declared)}: choose them with --stage NAME, repeatable "
            f"(--stage {example})")


def crop_size(msg: Message) -> int | None:
    """The square side a data layer crops its images to (``transform_param``, or the older
    ``data_param`` and ``image_data_param``), or None."""
    transform = _sub(msg, "transform_param")
    return _num(transform, "crop_size") or _num(_sub(msg, "data_param"), "crop_size") or \
        _num(_sub(msg, "image_data_param"), "crop_size")


def input_hint(msg: Message) -> str:
    """``--input CxHxW`` for a data layer whose shape the file does not say: its own
    ``crop_size`` where it has one (3 channels for Caffe's colour images), else an example."""
    crop = crop_size(msg)
    if crop:
        return (f"--input 3x{crop}x{crop} (its crop_size is {crop}; 1x{crop}x{crop} for grey "
                "images)")
    return "--input CxHxW (e.g. --input 1x28x28)"


def _sub(msg: Message, name: str) -> Message | None:
    f = msg.one(name)
    return f.value if f is not None and isinstance(f.value, Message) else None


def _num(msg: Message | None, name: str, default=None):
    if msg is None:
        return default
    f = msg.one(name)
    value = getattr(f.value, "value", None) if f is not None else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _ident(msg: Message | None, name: str) -> str | None:
    f = msg.one(name) if msg is not None else None
    return str(f.value.value) if f is not None and not isinstance(f.value, Message) else None


def data_shape(msg: Message, type_name: str) -> list[int] | None:
    """C, H, W a data layer declares (rule 2), or None when it does not say."""
    transform = _sub(msg, "transform_param")
    crop = crop_size(msg)
    means = transform.all("mean_value") if transform is not None else []
    if type_name == "MemoryData":
        p = _sub(msg, "memory_data_param")
        dims = [_num(p, k) for k in ("channels", "height", "width")]
        if all(dims):
            return [dims[0], crop, crop] if crop else dims
    if type_name == "DummyData":
        p = _sub(msg, "dummy_data_param")
        shape = _sub(p, "shape") if p is not None else None
        if shape is not None:
            dims = [getattr(f.value, "value", 0) for f in shape.all("dim")]
            return dims[1:] if len(dims) == 4 else None
        dims = [_num(p, k) for k in ("channels", "height", "width")]
        return dims if all(dims) else None
    channels = None
    if type_name == "ImageData":
        p = _sub(msg, "image_data_param")
        colour = _ident(p, "is_color")
        channels = 1 if colour in ("false", "False") else 3
        h, w = _num(p, "new_height"), _num(p, "new_width")
        if crop:
            return [channels, crop, crop]
        return [channels, h, w] if h and w else None
    if _ident(transform, "force_gray") in ("true", "True"):
        channels = 1
    elif _ident(transform, "force_color") in ("true", "True") or len(means) == 3:
        channels = 3
    elif len(means) == 1:
        channels = None  # one mean for every channel: the count is unknown
    if crop and channels:
        return [channels, crop, crop]
    return None


def input_options(msg: Message, channels: int) -> str:
    """The input line's ``scale=``, ``mean=`` and ``layout=`` from ``transform_param``."""
    transform = _sub(msg, "transform_param")
    legacy = _sub(msg, "data_param") or _sub(msg, "image_data_param")
    scale = _num(transform, "scale", None) or _num(legacy, "scale", None) or 1.0
    means = [float(f.value.value) for f in transform.all("mean_value")] \
        if transform is not None else []
    parts = [f"scale={fmt_float(255 * scale)}"]
    if means:
        vals = means * channels if len(means) == 1 else means
        parts.append("mean=[" + ", ".join(fmt_float(m * scale) for m in vals) + "]")
    if channels == 3:
        parts.append("layout=bgr")
    return ", " + ", ".join(parts)
