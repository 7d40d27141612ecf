"""Arguments and helpers shared by the subcommands that take a SPEC."""

from __future__ import annotations

import argparse

from dsl.diagnostics import UserError


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC",
                   help="a zoo name (vgg16), a .net file, FILE.net:NET, or a Caffe .prototxt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                   help="override a net parameter, e.g. --set classes=10 (repeatable)")
    p.add_argument("--max-nodes", type=int, default=100_000,
                   help="refuse nets that expand past this many nodes (default 100000)")
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
        out[name] = parse_value(text)
    return out


def parse_value(text: str):
    """An int, a float, true/false, or the text itself."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
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
    from compiler.loader import load

    graph = load(args.spec, parse_overrides(args.overrides), max_nodes=args.max_nodes,
                 input_shapes=parse_input_shapes(getattr(args, "input_shapes", [])))
    if getattr(args, "column", None) == "deepest":
        from compiler.passes import deepest_column, has_columns

        if not has_columns(graph):
            raise UserError(f"--column deepest: {graph.name} has no FractalNet joins "
                            "(mean joins with columns)")
        graph = deepest_column(graph)
    return graph
