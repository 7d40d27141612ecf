"""The options many commands share, each declared once: one function, one help text, one parser.

``--seed``, ``--weights``, ``--input``, ``--set``, ``--threads``, ``--max-memory`` and ``-o``
mean the same in every command that takes them, so each is added by one ``add_*`` function
here and its value is parsed by one argparse ``type``: a malformed value (a negative seed, an
infinite ``--set``, ``--threads 0``, ``--input 3x0x4``) ends the command line with argparse's
one-line error and exit status 2, before any work. What a value means for one net (an
unknown ``--set`` name, an ``--input`` for an input the net lacks) is checked where the net is
loaded, as a user error (exit 1).

>>> import argparse
>>> p = argparse.ArgumentParser(prog="netc x")
>>> add_seed(p); add_set(p)
>>> args = p.parse_args(["--seed", "3", "--set", "classes=10", "--set", "shortcut=project"])
>>> args.seed, args.overrides
(3, {'classes': 10, 'shortcut': 'project'})
"""

from __future__ import annotations

import argparse
import math

MAX_DIGITS = 100  # a --set integer longer than this is no number netc can use


# ---- parsers (argparse types: ArgumentTypeError is argparse's one-line error, exit 2) ----------
def positive_int(text: str) -> int:
    """An integer >= 1 below 2**63 (``--threads``, ``--max-nodes``, ``--max-depth``)."""
    return _int_from(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0 below 2**63 (``--seed``, ``--save-every``)."""
    return _int_from(text, 0, "a non-negative integer")


def bounded_int(text: str) -> int:
    """Any integer of fewer than 64 bits (``--k``, ``--channel``): the command checks its range
    and says what it must be (exit 1); 2**63 and words end the command line here."""
    return _int_from(text, -(2**63) + 1, "an integer")


def _int_from(text: str, least: int, what: str) -> int:
    """``text`` as an integer in [least, 2**63), else argparse's error naming ``what``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
    if not least <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected {what} below 2**63; got {value}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (``--threshold``): nan, inf and 1e400 (which overflows) are refused."""
    return _float_from(text, None, None, "a finite number")


def positive_float(text: str) -> float:
    """A finite number > 0 (``--lr``, ``--scale``, ``--perplexity``, ``--gamma``)."""
    return _float_from(text, 0.0, None, "a positive finite number", open_low=True)


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (``--weight-decay``, ``--ridge``, ``--noise``)."""
    return _float_from(text, 0.0, None, "a finite number >= 0")


def momentum(text: str) -> float:
    """A number in [0, 1): ``--momentum`` (1 or more never forgets a step, and diverges)."""
    return _float_from(text, 0.0, 1.0, "a number in [0, 1)", open_high=True)


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (``--holdout``: both splits keep images)."""
    return _float_from(text, 0.0, 1.0, "a number between 0 and 1", open_low=True,
                       open_high=True)


def crop_fraction(text: str) -> float:
    """A number in (0, 1] (``--crop``: the centre crop's share of the resized image)."""
    return _float_from(text, 0.0, 1.0, "a number in (0, 1]", open_low=True)


def _float_from(text: str, low: float | None, high: float | None, what: str,
                open_low: bool = False, open_high: bool = False) -> float:
    """``text`` as a finite float within the bounds, else argparse's error naming ``what``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}, which is not a "
                                         "finite number")
    if low is not None and (value < low or (open_low and value == low)) or \
            high is not None and (value > high or (open_high and value == high)):
        raise argparse.ArgumentTypeError(f"expected {what}; got {value:g}")
    return value


def memory_size(text: str) -> int:
    """A size such as ``512M``, ``2G`` or a number of bytes: finite and > 0."""
    from netc.dsl.diagnostics import UserError
    from netc.runtime.recipes.cost import parse_size

    try:
        return parse_size(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--max-memory ")) from None


def parse_value(text: str):
    """An int, a finite float, true/false, or the text itself (a name such as ``project``)."""
    digits = text.strip().lstrip("+-")
    if digits.isdigit() and len(digits) > MAX_DIGITS:
        raise argparse.ArgumentTypeError(f"{len(digits):,} digits is no number netc can use")
    for conv in (int, float):
        try:
            value = conv(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value
    if text in ("true", "false"):
        return text == "true"
    return text


def name_value(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` (``--set``): an identifier and :func:`parse_value` of the rest."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE; got {text!r}")
    try:
        return name, parse_value(value)
    except argparse.ArgumentTypeError as err:
        raise argparse.ArgumentTypeError(f"{name}: {err}") from None


def input_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """``CxHxW`` (the first input) or ``NAME=CxHxW``, every size positive; ``C`` alone for a
    vector input."""
    name, sep, dims_text = text.rpartition("=")
    dims = dims_text.lower().split("x")
    if (sep and not name.isidentifier()) or len(dims) not in (1, 3) or not all(
            d.isdigit() and 0 < int(d) < 2**31 for d in dims):
        raise argparse.ArgumentTypeError(f"expected CxHxW (or NAME=CxHxW) with positive sizes; "
                                         f"got {text!r}")
    return (name if sep else None), tuple(int(d) for d in dims)


class _Collect(argparse.Action):
    """Repeated ``--flag KEY...`` values gathered into one dict; a key given twice is an
    argparse error (the second would silently win)."""

    def __call__(self, parser, namespace, value, option_string=None):
        key, item = value
        found = dict(getattr(namespace, self.dest) or {})
        if key in found:
            shown = f" for {key}" if key is not None else ""
            parser.error(f"argument {option_string}: given twice{shown}")
        found[key] = item
        setattr(namespace, self.dest, found)


# ---- the options --------------------------------------------------------------------------------
SEED_HELP = ("seed of the command's random draws: netc's initial weights where no weights "
             "are given, data order, noise, sampling (default: {default})")
WEIGHTS_HELP = ("the net's weights: a .safetensors file in the spec's layer names, or a state "
                "dict (.pth, .pt, .bin, .safetensors) or .caffemodel paired with the spec on the "
                "fly (default: {default})")
INPUT_HELP = ("the input's shape, replacing the declared one or giving one the file lacks "
              "(a Caffe data layer, a shape defined at runtime), e.g. --input 3x320x320; "
              "NAME= picks one of several inputs (repeatable)")
SET_HELP = ("override a parameter of the net (or of the recipe), e.g. --set classes=10; the "
            "value is an integer, a finite number, true/false or a name (repeatable)")
THREADS_HELP = "CPU threads for torch and ONNX Runtime (default: {default})"
MAX_MEMORY_HELP = ("memory the command may use, e.g. 512M or 8G: the net's float32 weights "
                   "and activations are checked against it before any work (default: "
                   "{default})")
OUTPUT_HELP = "the {what} to write, atomically{default}"


def add_seed(p: argparse.ArgumentParser, default: int | None = 0,
             default_text: str | None = None) -> None:
    """``--seed N``: a non-negative integer (``args.seed``)."""
    p.add_argument("--seed", type=non_negative_int, default=default, metavar="N",
                   help=SEED_HELP.format(default=default_text or default))


def add_weights(p: argparse.ArgumentParser, default_text: str = "netc's seeded random weights",
                flag: str = "--weights") -> None:
    """``--weights FILE`` (or ``flag``), read by :func:`netc.runtime.weights.load_weights`,
    with ``--rename`` (:func:`add_rename`): the value is a path that carries the rules."""
    p.add_argument(flag, metavar="FILE", action=_WeightsFile,
                   help=WEIGHTS_HELP.format(default=default_text))
    add_rename(p, weights_dest=flag.lstrip("-").replace("-", "_"))


def rename_rule(text: str):
    """``REGEX=REPLACEMENT`` (``--rename``): a compiled rule; a bad regex or a replacement
    naming a group the regex lacks is argparse's one-line error."""
    from netc.runtime.weights.rename import parse_rule

    try:
        return parse_rule(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class _WeightsFile(argparse.Action):
    """``--weights FILE``: the path, carrying the ``--rename`` rules (given before or after)."""

    def __call__(self, parser, namespace, value, option_string=None):
        rules = getattr(namespace, "rename", None) or ()
        setattr(namespace, self.dest, _carrying(value, rules))


class _RenameRules(argparse.Action):
    """``--rename RULE`` (repeatable): the rules in order, also handed to the weights path."""

    def __init__(self, *args, weights_dest: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.weights_dest = weights_dest

    def __call__(self, parser, namespace, value, option_string=None):
        rules = [*(getattr(namespace, self.dest) or ()), value]
        setattr(namespace, self.dest, rules)
        namespace.rename_renames = self.weights_dest  # for unpaired_rename, after parsing
        path = getattr(namespace, self.weights_dest, None) if self.weights_dest else None
        if path is not None:
            setattr(namespace, self.weights_dest, _carrying(path, rules))


def _carrying(path: str, rules):
    if not rules:
        return path
    from netc.runtime.weights.load import WeightsPath

    return WeightsPath(path, rules)


RENAME_HELP = ("rename the weights file's keys before pairing them with the spec: Python regex "
               "and replacement, e.g. --rename '^module\\.=' --rename 'backbone\\.='; "
               "repeatable, applied in order; a rule that matches nothing is a warning")


def add_rename(p: argparse.ArgumentParser, weights_dest: str | None = None) -> None:
    """``--rename REGEX=REPLACEMENT`` (repeatable): ``args.rename``, a list of
    :class:`~netc.runtime.weights.rename.RenameRule` (``[]`` without)."""
    p.add_argument("--rename", type=rename_rule, action=_RenameRules, default=[],
                   metavar="REGEX=REPLACEMENT", weights_dest=weights_dest, help=RENAME_HELP)


def unpaired_rename(args: argparse.Namespace) -> str | None:
    """What is wrong when ``--rename`` was given to a command whose weights option was not
    (the rules would rename nothing, silently), else None."""
    dest = getattr(args, "rename_renames", None)
    if dest and getattr(args, "rename", None) and getattr(args, dest, None) is None:
        flag = "--" + dest.replace("_", "-")
        return f"--rename renames the keys of a {flag} file; give {flag} FILE"
    return None


def add_input(p: argparse.ArgumentParser) -> None:
    """``--input [NAME=]CxHxW`` (repeatable): ``args.input_shapes``, {name or None: shape}."""
    p.add_argument("--input", dest="input_shapes", type=input_shape, action=_Collect,
                   default={}, metavar="[NAME=]CxHxW", help=INPUT_HELP)


def add_set(p: argparse.ArgumentParser) -> None:
    """``--set NAME=VALUE`` (repeatable): ``args.overrides``, {name: value}."""
    p.add_argument("--set", dest="overrides", type=name_value, action=_Collect, default={},
                   metavar="NAME=VALUE", help=SET_HELP)


def add_threads(p: argparse.ArgumentParser, default_text: str = "chosen from the usable "
                "cores, and printed") -> None:
    """``--threads N``: a positive integer, or None (``args.threads``)."""
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help=THREADS_HELP.format(default=default_text))


def add_compile(p: argparse.ArgumentParser) -> None:
    """``--compile [BACKEND]``: torch.compile block by block (``args.compile``: the backend,
    or None for eager)."""
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="compile each residual body, FractalNet column, stem and head with "
                        "torch.compile (default backend inductor), the stochastic-depth and "
                        "drop-path gates left in Python so dropped blocks are still skipped")


def add_max_memory(p: argparse.ArgumentParser, default_text: str = "this machine's RAM") -> None:
    """``--max-memory SIZE``: bytes, or None (``args.max_memory``)."""
    p.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help=MAX_MEMORY_HELP.format(default=default_text))


def add_output(p: argparse.ArgumentParser, what: str, metavar: str, *, default: str | None = None,
               default_text: str | None = None, required: bool = False) -> None:
    """``-o/--output FILE`` (``args.output``); written through :mod:`netc.runtime.files`."""
    shown = default_text or default
    p.add_argument("-o", "--output", metavar=metavar, default=default, required=required,
                   help=OUTPUT_HELP.format(what=what, default=f" (default {shown})" if shown
                                           else ""))


def add_depth(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--depth N`` (``netc draw``, ``summary``, ``serve``): a level of the name hierarchy;
    :func:`check_depth` refuses one below 1 (exit 1)."""
    p.add_argument("--depth", type=bounded_int, default=None, help=help_text)


def check_depth(depth: int | None) -> None:
    """``--depth`` is at least 1 when given, else a user error."""
    if depth is not None and depth < 1:
        from netc.dsl.diagnostics import UserError

        raise UserError(f"--depth must be at least 1; got {depth}")


def check_outputs(*paths: str | None) -> None:
    """Refuse, before any work, an output that cannot be written (a device, a FIFO, a folder,
    a read-only file): a picture that took a minute of t-SNE should not be lost at the rename.
    The check is repeated when each file is written (:func:`netc.runtime.files.atomic_path`)."""
    from netc.runtime.files import check_destination

    for path in paths:
        if path is not None and path != "-":
            check_destination(path)


def add_int8(p: argparse.ArgumentParser) -> None:
    """``--int8``, ``--calibrate DATA``, ``--calibrate-images N``, ``--keep-float L1,L2`` and
    ``--no-quant-preprocess``: int8 quantization with ONNX Runtime (netc.runtime.int8)."""

    def names(text: str) -> list[str]:  # ``a,b.c``: layer names, none empty
        found = [n.strip() for n in text.split(",")]
        if not all(found):
            raise argparse.ArgumentTypeError(f"expected layer names separated by commas; "
                                             f"got {text!r}")
        return found

    g = p.add_argument_group("int8")
    g.add_argument("--int8", action="store_true",
                   help="quantize to int8 (QDQ, per-channel weights) with ONNX Runtime, "
                        "calibrated on --calibrate")
    g.add_argument("--calibrate", metavar="DATA",
                   help="calibration images: digits, folder:PATH, cifar10:PATH (as netc train "
                        "reads them), a folder of images, digits:N, samples, or an .npy file "
                        "of network inputs; a part is held out for the fidelity check")
    g.add_argument("--calibrate-images", type=positive_int, default=128, metavar="N",
                   help="images to calibrate on, and at most as many held out (default 128)")
    g.add_argument("--keep-float", type=names, default=[], metavar="L1,L2",
                   help="layers (or blocks) to leave in float, e.g. conv1,fc8")
    g.add_argument("--no-quant-preprocess", dest="quant_preprocess", action="store_false",
                   help="skip ONNX Runtime's quant_pre_process (shape inference, graph "
                        "optimisation) before quantizing")
