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


def load_graph(args):
    """Load the SPEC named on the command line (raises DiagnosticError)."""
    from compiler.loader import load

    graph = load(args.spec, parse_overrides(args.overrides), max_nodes=args.max_nodes)
    if getattr(args, "column", None) == "deepest":
        from compiler.passes import deepest_column, has_columns

        if not has_columns(graph):
            raise UserError(f"--column deepest: {graph.name} has no FractalNet joins "
                            "(mean joins with columns)")
        graph = deepest_column(graph)
    return graph
