"""The ``netc`` command line.

Each subcommand lives in ``runtime/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; importing a command module must stay cheap (torch and onnxruntime are
imported inside ``run`` only where needed), so ``netc check`` and ``netc summary`` start fast.
User errors end as a located diagnostic or one ``netc: error:`` line and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from netc.dsl.diagnostics import DiagnosticError, UserError, render

# name -> (module under netc.runtime.commands, one-line help). Order is the order of `netc --help`.
COMMANDS = {
    "check": ("check", "parse and shape-check a spec"),
    "summary": ("summary", "per-layer table: shapes, parameters, MACs"),
    "zoo": ("zoo", "the built-in nets: source, input, params, MACs; --spec"),
    "fmt": ("fmt", "rewrite specs in the canonical layout; --check for CI"),
    "compile": ("compile", "compile a spec to an ONNX model (no torch needed)"),
    "run": ("run", "classify images with an ONNX model on ONNX Runtime"),
    "bench": ("bench", "time torch eager, torch.compile and ONNX Runtime"),
    "import": ("import_caffe", "import a Caffe .prototxt as a netc spec"),
    "weights": ("weights", "import a foreign state dict onto a spec"),
    "train": ("train", "train a spec on digits, an image folder or CIFAR-10"),
    "recipe": ("recipe", "run an image recipe: inversion, DeepDream, style"),
    "draw": ("draw", "draw the network graph as SVG or PNG (no Graphviz)"),
    "serve": ("serve", "a live page of a spec on 127.0.0.1: graph, summary, errors"),
    "explain": ("explain",
                "which pixels drive a unit: deconvnet, guided backprop, saliency"),
    "top-activations": ("top_activations",
                        "the images that activate each unit most (Zeiler-Fergus)"),
    "embed": ("embed", "t-SNE of a layer's codes as an image grid"),
    "fit": ("fit", "solve a spec's fitted layers (pca, fc fit=) from data"),
    "probe": ("probe", "held-out accuracy of linear read-outs per layer"),
    "eigenfaces": ("eigenfaces",
                   "eigenfaces: is it a face, who is it, reconstruct an occluded face"),
    "lsp": ("lsp", "the language server for editors (Language Server Protocol over stdio)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netc",
        description="netc: a language and compiler for convolutional network architectures",
    )
    from netc.runtime import __version__

    parser.add_argument("--version", action="version", version=f"netc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = importlib.import_module(f"netc.runtime.commands.{module}")
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    from netc.runtime import interrupts

    interrupts.install()  # SIGTERM stops a run as Ctrl-C does: clean-ups run, outputs whole
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        from netc.runtime.commands.options import unpaired_rename

        if problem := unpaired_rename(args):
            parser.error(problem)  # exit 2, as any malformed command line
        return _run(args)
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM (interrupts.Terminated)
        said = f"netc: interrupted ({interrupts.signal_name(err)})"
        print(interrupts.fresh_line(sys.stderr) + said, file=sys.stderr)
        return interrupts.exit_status(err)


def _run(args) -> int:
    """The command's status; every user error as one located diagnostic or one line."""
    try:
        return int(args._module.run(args) or 0)
    except DiagnosticError as err:
        print(render(err.diagnostics), file=sys.stderr)
        n = len(err.diagnostics)
        print(f"{n} error{'s' if n != 1 else ''}", file=sys.stderr)
        return 1
    except UserError as err:
        print(f"netc: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `netc summary ... | head`
        return 0
    except OSError as err:  # disk full, permission denied, a vanished file: no traceback
        where = f" {err.filename}" if getattr(err, "filename", None) else ""
        print(f"netc: error:{where} {err.strerror or err}", file=sys.stderr)
        return 1
    except MemoryError:  # a last resort: budgets (--max-memory, --max-nodes) should come first
        print("netc: error: out of memory; a smaller net, --size or --max-memory would help",
              file=sys.stderr)
        return 1


def console(argv: list[str] | None = None) -> None:
    """The ``netc`` program: :func:`main`, then exit, with a stop during the exit quiet."""
    from netc.runtime import interrupts

    sys.stderr = interrupts.LineEnds(sys.stderr)
    code = main(argv)
    interrupts.settle()
    sys.exit(code)


if __name__ == "__main__":
    console()
