"""Arguments and helpers shared by the subcommands that take a SPEC.

Every numeric flag is checked by its argparse ``type`` (a malformed command line exits 2 with
one line naming the flag), every ``--set`` value by :func:`parse_value`, before any work.
"""

from __future__ import annotations

import argparse
import math
import os

from netc.dsl.diagnostics import UserError


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (``--max-nodes``, ``--max-depth``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a positive integer below 2**63; "
                                         f"got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 below 2**63 (``--seed``, ``--save-every``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") \
            from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer below 2**63; "
                                         f"got {value}")
    return value


def memory_size(text: str) -> int:
    """An argparse type: a size such as ``512M``, ``2G`` or a number of bytes, finite, > 0."""
    from netc.runtime.recipes.cost import parse_size

    try:
        return parse_size(text)
    except UserError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--max-memory ")) from None


def physical_memory() -> int:
    """Bytes of RAM of this machine: the default ``--max-memory`` of the spec commands."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    from netc.compiler.frontend.elaborate import DEFAULT_MAX_DEPTH, MAX_DEPTH_LIMIT

    p.add_argument("spec", metavar="SPEC",
                   help="a zoo name (vgg16), a .net file, FILE.net:NET, or a Caffe .prototxt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="override a net parameter, e.g. --set classes=10 (repeatable)")
    p.add_argument("--max-nodes", type=positive_int, default=100_000,
                   help="refuse nets that expand past this many nodes (default 100000)")
    p.add_argument("--max-depth", type=positive_int, default=DEFAULT_MAX_DEPTH,
                   help="refuse definition calls nested deeper than this (default "
                        f"{DEFAULT_MAX_DEPTH}, at most {MAX_DEPTH_LIMIT})")
    p.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE",
                   help="refuse nets whose float32 weights and one sample's activations need "
                        "more (512M, 8G; default: this machine's RAM)")
    p.add_argument("--column", choices=["deepest"], default=None,
                   help="FractalNet: keep only the deepest column (a plain network)")
    p.add_argument("--input", dest="input_shapes", action="append", default=[],
                   metavar="[NAME=]CxHxW",
                   help="replace the input's declared shape, e.g. --input 3x320x320 (a Caffe "
                        "file whose input is defined at runtime); NAME= picks one of several")


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.isidentifier():
            raise UserError(f"--set expects NAME=VALUE; got {item!r}")
        if name in out:
            raise UserError(f"--set {name} is given twice")
        out[name] = parse_value(text, f"--set {name}")
    return out


def parse_value(text: str, what: str = "--set"):
    """An int, a finite float, true/false, or the text itself (a name such as ``project``)."""
    digits = text.strip().lstrip("+-")
    if digits.isdigit() and len(digits) > 100:
        raise UserError(f"{what}: {len(digits):,} digits is no number netc can use")
    for conv in (int, float):
        try:
            value = conv(text)
        except ValueError:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{what}: {text!r} is not a finite number")
        return value
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_input_shapes(items: list[str]) -> dict:
    """``3x224x224`` (the first input) or ``NAME=3x224x224`` -> {name or None: shape}."""
    out: dict = {}
    for item in items:
        name, sep, text = item.rpartition("=")
        dims = text.lower().split("x")
        if (sep and not name.isidentifier()) or not all(d.isdigit() and int(d) > 0
                                                        for d in dims) or len(dims) not in (1, 3):
            raise UserError(f"--input expects CxHxW (or NAME=CxHxW) with positive sizes; "
                            f"got {item!r}")
        key = name if sep else None
        if key in out:
            raise UserError(f"--input given twice for {name or 'the input'}")
        out[key] = tuple(int(d) for d in dims)
    return out


def load_graph(args):
    """Load the SPEC named on the command line (raises DiagnosticError)."""
    from netc.compiler.frontend.loader import load

    budget = getattr(args, "max_memory", None) or physical_memory()
    graph = load(args.spec, parse_overrides(args.overrides), max_nodes=args.max_nodes,
                 max_depth=getattr(args, "max_depth", 64), max_memory=budget,
                 input_shapes=parse_input_shapes(getattr(args, "input_shapes", [])))
    if getattr(args, "column", None) == "deepest":
        from netc.compiler.passes import deepest_column, has_columns

        if not has_columns(graph):
            raise UserError(f"--column deepest: {graph.name} has no FractalNet joins "
                            "(mean joins with columns)")
        graph = deepest_column(graph)
    return graph
