"""Arguments and helpers shared by the subcommands that take a SPEC.

Every flag is checked by its argparse ``type`` before any work (a malformed command line exits
2 with one line naming the flag); the options several commands share are declared once, in
:mod:`netc.runtime.commands.options`.
"""

from __future__ import annotations

import argparse
import os
import sys

from netc.dsl.diagnostics import UserError
from netc.runtime.commands.options import add_input, add_max_memory, add_set, positive_int


def physical_memory() -> int:
    """Bytes of RAM of this machine: the default ``--max-memory`` of the spec commands."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def add_budgets(p: argparse.ArgumentParser) -> None:
    """``--max-nodes``, ``--max-depth`` and ``--max-memory``: what a spec may expand to (the
    spec commands, and ``netc lsp``, which checks under the same budgets)."""
    from netc.compiler.frontend.context import (
        DEFAULT_MAX_DEPTH,
        DEFAULT_MAX_NODES,
        MAX_DEPTH_LIMIT,
    )

    p.add_argument("--max-nodes", type=positive_int, default=DEFAULT_MAX_NODES,
                   help=f"refuse nets that expand past this many nodes (default "
                        f"{DEFAULT_MAX_NODES})")
    p.add_argument("--max-depth", type=positive_int, default=DEFAULT_MAX_DEPTH,
                   help="refuse definition calls nested deeper than this (default "
                        f"{DEFAULT_MAX_DEPTH}, at most {MAX_DEPTH_LIMIT})")
    add_max_memory(p)


def add_spec_arguments(p: argparse.ArgumentParser) -> None:
    """SPEC and the flags that say how to load it (:func:`load_graph` reads them)."""
    p.add_argument("spec", metavar="SPEC",
                   help="a zoo name (vgg16), a .net file, FILE.net:NET, or a Caffe .prototxt")
    add_set(p)
    add_budgets(p)
    p.add_argument("--column", choices=["deepest"], default=None,
                   help="FractalNet: keep only the deepest column (a plain network)")
    add_input(p)
    add_caffe_arguments(p)


def add_caffe_arguments(p: argparse.ArgumentParser) -> None:
    """``--stage`` and ``--crop-offsets``: how to read a Caffe .prototxt where the file alone
    does not say (:class:`netc.compiler.importers.caffe.ImportOptions`)."""
    from netc.compiler.importers.caffe import CROP_OFFSETS

    p.add_argument("--stage", action="append", default=[], metavar="NAME",
                   help="Caffe .prototxt: a NetState stage for include/exclude rules "
                        "(repeatable)")
    p.add_argument("--crop-offsets", choices=CROP_OFFSETS, default="caffe",
                   help="Caffe .prototxt: a Crop without crop_param crops at offset 0 (caffe, "
                        "BVLC's rule) or where the layers' geometry puts it (geometry, the "
                        "HED and FCN forks' rule)")


def caffe_options(args):
    """The :class:`~netc.compiler.importers.caffe.ImportOptions` of the command line."""
    from netc.compiler.importers.caffe import ImportOptions

    return ImportOptions(frozenset(getattr(args, "stage", ()) or ()),
                         getattr(args, "crop_offsets", "caffe"))


def print_warnings(warnings) -> None:
    """An import's warnings on stderr, located as errors are (``file:line:col: warning:``)."""
    from netc.dsl.diagnostics import render

    if warnings:
        print(render(list(warnings)), file=sys.stderr)


def load_graph(args):
    """Load the SPEC named on the command line (raises DiagnosticError)."""
    from netc.compiler.frontend.context import DEFAULT_MAX_DEPTH
    from netc.compiler.frontend.loader import load
    from netc.compiler.importers.caffe import import_options

    budget = getattr(args, "max_memory", None) or physical_memory()
    # A .prototxt SPEC is imported inside load(); the Caffe options reach it by context.
    with import_options(caffe_options(args)) as caffe:
        graph = load(args.spec, args.overrides, max_nodes=args.max_nodes,
                     max_depth=getattr(args, "max_depth", DEFAULT_MAX_DEPTH), max_memory=budget,
                     input_shapes=getattr(args, "input_shapes", {}))
    print_warnings(caffe.warnings)
    if getattr(args, "column", None) == "deepest":
        from netc.compiler.passes import deepest_column, has_columns

        if not has_columns(graph):
            raise UserError(f"--column deepest: {graph.name} has no FractalNet joins "
                            "(mean joins with columns)")
        graph = deepest_column(graph)
    return graph
