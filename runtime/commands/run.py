"""``netc run MODEL IMAGES…``: classify images with ONNX Runtime.

MODEL is an ``.onnx`` file or a SPEC (``resnet18``, ``net.net``), which is compiled in memory
(``--weights FILE``, any file :func:`netc.runtime.weights.load_weights` reads; else netc's
seeded random weights). Random weights get a warning,
since their "probabilities" mean nothing; a zoo ImageNet net names its classes with the
ImageNet-1k names that ship with netc (:mod:`netc.runtime.labels`) unless ``--labels`` says
otherwise. Top-k needs an output that is one vector of class scores per image: a feature map
(a U-Net's mask) is refused with the shape it has.

Images are prepared as the spec's ``input`` line declares (stored in the model by
``netc compile``; ``--mean``/``--std``/``--scale``/``--layout`` override it, and are needed for
an ONNX file netc did not write), run in batches, and the top-k classes of the first output are
printed, or written as JSON with ``--json FILE`` (``-`` for standard output).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from netc.dsl.diagnostics import UserError
from netc.runtime.commands.common import add_caffe_arguments
from netc.runtime.commands.options import (
    add_seed,
    add_set,
    add_threads,
    add_weights,
    check_outputs,
    crop_fraction,
    positive_float,
    positive_int,
)


def add_arguments(p):
    p.add_argument("model", metavar="MODEL",
                   help="an .onnx file (from netc compile), or a SPEC compiled in memory: a zoo "
                        "name (resnet18), a .net file, FILE.net:NET or a Caffe .prototxt")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (any Pillow format)")
    p.add_argument("--topk", type=positive_int, default=5,
                   help="classes to report per image (default 5)")
    p.add_argument("--labels", metavar="FILE",
                   help="class names, one per line (default for the zoo's ImageNet nets: the "
                        "ImageNet-1k names that ship with netc)")
    add_weights(p, "with a SPEC, netc's seeded random weights, with a warning")
    add_seed(p)
    add_set(p)
    add_caffe_arguments(p)
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (- for stdout)")
    p.add_argument("--batch", type=positive_int, default=8, help="images per run (default 8)")
    p.add_argument("--provider", choices=("tensorrt", "cuda", "cpu"),
                   help="force an ONNX Runtime provider (default: the best that loads)")
    add_threads(p, "ONNX Runtime's, all cores")
    p.add_argument("--mean", type=_floats, help="per-channel mean, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=_positive_floats,
                   help="per-channel std, e.g. 0.229,0.224,0.225")
    p.add_argument("--scale", type=positive_float,
                   help="pixel scale: 1 (torchvision) or 255 (Caffe)")
    p.add_argument("--layout", choices=("rgb", "bgr", "gray"), help="channel order")
    p.add_argument("--crop", type=crop_fraction, default=0.875,
                   help="centre crop as a fraction of the resized image (default 0.875)")


def _floats(text: str) -> tuple[float, ...]:
    import argparse
    import math

    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas; got {text!r}")
    if not all(math.isfinite(v) for v in values):  # nan, inf, or 1e400 (which overflows)
        raise argparse.ArgumentTypeError(f"expected finite numbers; got {text!r}")
    return values


def _positive_floats(text: str) -> tuple[float, ...]:
    """``--std``: finite numbers above 0 (a std of 0 divides the image by zero)."""
    import argparse

    values = _floats(text)
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers above 0; got {text!r}")
    return values


def run(args) -> int:
    import sys

    from netc.runtime.files import atomic_write_bytes
    from netc.runtime.images import load_batch
    from netc.runtime.ort import open_session

    if args.topk < 1 or args.batch < 1:
        raise UserError("--topk and --batch must be at least 1")
    check_outputs(args.json)
    model = _model(args)
    session = open_session(model, args.provider, args.threads)
    meta = session.session.get_modelmeta().custom_metadata_map
    quiet = args.json == "-"
    if not quiet:
        print(session.describe())
    _check_vector(session)
    if "netc.random_weights" in meta:
        fix = ("pass --weights FILE (.safetensors, .pth or .caffemodel)"
               if isinstance(model, bytes) else "compile it with --weights FILE")
        print(f"warning: {args.model} has random weights (netc's seeded initialiser, seed "
              f"{meta['netc.random_weights']}): the classes and probabilities below mean "
              f"nothing; {fix} (trained weights, e.g. from `netc weights import`)",
              file=sys.stderr)
    prep = _preprocess(session, args)
    labels = _labels(args.labels, meta.get("netc.labels"))
    first = session.inputs[0].name
    results = []
    for start in range(0, len(args.images), args.batch):
        paths = args.images[start:start + args.batch]
        scores = session.run({first: load_batch(paths, prep)})[0].astype(np.float64)
        if scores.ndim != 2 or scores.shape[1] == 1:  # a shape ONNX Runtime could not tell
            raise UserError(_not_a_vector(session.outputs[0].name, scores.shape[1:]))
        for path, row in zip(paths, scores):
            results.append({"image": str(path), "top": _top(row, args.topk, labels)})
    if args.json:
        text = json.dumps({"model": str(args.model), "provider": session.provider,
                           "results": results}, indent=1)
        if args.json == "-":
            print(text)
        else:
            atomic_write_bytes(args.json, (text + "\n").encode())
            print(f"wrote {args.json}")
    if not args.json:
        for r in results:
            print(r["image"])
            for t in r["top"]:
                name = f"  {t['label']}" if "label" in t else ""
                print(f"  {t['prob']:7.2%}  class {t['index']:>4}{name}")
    return 0


def _model(args) -> str | bytes:
    """The model to open: the .onnx path, or a SPEC compiled in memory."""
    path = Path(args.model)
    is_file = path.suffix == ".onnx" or (path.is_file() and path.suffix not in (".net",
                                                                                 ".prototxt"))
    if is_file:
        from netc.dsl.sources import NotRegular, check_regular

        try:  # a FIFO, a device or a folder in one line (not "no such model file")
            check_regular(path)
        except NotRegular as err:
            raise UserError(f"cannot read model: {err}") from None
        if args.weights or args.overrides:
            raise UserError(f"--weights and --set apply to a SPEC; {args.model} is an ONNX file "
                            "with its weights inside (compile it again with netc compile)")
        return args.model
    from netc.compiler.frontend.loader import load
    from netc.compiler.importers.caffe import import_options
    from netc.compiler.lower_onnx.model import lower
    from netc.runtime.commands.common import caffe_options, print_warnings
    from netc.runtime.weights import load_weights

    with import_options(caffe_options(args)) as caffe:
        graph = load(args.model, args.overrides)
    print_warnings(caffe.warnings)
    weights = load_weights(graph, args.weights) if args.weights else None
    return lower(graph, weights, seed=args.seed).SerializeToString()


def _not_a_vector(name: str, shape) -> str:
    dims = "x".join(str(d) for d in shape)
    what = "one number" if dims == "1" else dims
    return (f"the first output {name!r} is {what} per image, not a vector of class scores: "
            "netc run reports top-k classes, which needs one (a net that outputs a feature "
            "map, such as a segmentation mask, has no classes to rank)")


def _check_vector(session) -> None:
    """Refuse a first output that is not one vector per image (where its shape is known)."""
    out = session.outputs[0]
    shape = out.shape
    if isinstance(shape, (list, tuple)) and (len(shape) != 2 or shape[1] == 1):
        per_image = [d if isinstance(d, int) else "?" for d in shape[1:]]
        raise UserError(_not_a_vector(out.name, per_image))


def _preprocess(session, args):
    """The input's preparation: the model's metadata, then the command line's overrides."""
    from netc.runtime.images import Preprocess

    meta = session.session.get_modelmeta().custom_metadata_map
    first = session.inputs[0]
    spec = json.loads(meta["netc.inputs"]).get(first.name) if "netc.inputs" in meta else None
    if spec is None:
        spec = {"shape": [d if isinstance(d, int) else 0 for d in first.shape[1:]]}
    prep = Preprocess.from_spec(spec, args.crop)
    changes = {k: getattr(args, k) for k in ("mean", "std", "scale", "layout")
               if getattr(args, k) is not None}
    if changes:
        from dataclasses import replace

        prep = replace(prep, **changes)
    for k in ("mean", "std"):
        v = getattr(prep, k)
        if v is not None and len(v) not in (1, prep.shape[0]):
            raise UserError(f"--{k} needs {prep.shape[0]} numbers (one per channel); got {len(v)}")
    return prep


def _labels(path: str | None, shipped: str | None) -> list[str] | None:
    """``--labels FILE``, else the shipped set the model names (``imagenet1k``), else None."""
    from netc.runtime.labels import parse_labels
    from netc.runtime.labels import shipped as shipped_labels

    if path is None:
        return shipped_labels(shipped) if shipped else None
    from netc.runtime.files import read_file

    try:
        text = read_file(path, "--labels").decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read labels from {path}: {err}") from None
    return parse_labels(text)


def _top(scores: np.ndarray, k: int, labels: list[str] | None) -> list[dict]:
    """The k best classes; ``prob`` is the score itself when the net ends in softmax."""
    is_distribution = scores.min() >= 0 and abs(scores.sum() - 1) < 1e-3
    if is_distribution:
        probs = scores
    else:
        e = np.exp(scores - scores.max())
        probs = e / e.sum()
    out = []
    for i in np.argsort(-scores, kind="stable")[:k]:
        item = {"index": int(i), "score": float(scores[i]), "prob": float(probs[i])}
        if labels is not None and i < len(labels):
            item["label"] = labels[i]
        out.append(item)
    return out
