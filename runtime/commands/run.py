"""``netc run model.onnx IMAGES…``: classify images with ONNX Runtime.

Images are prepared as the spec's ``input`` line declares (stored in the model by
``netc compile``; ``--mean``/``--std``/``--scale``/``--layout`` override it, and are needed for
an ONNX file netc did not write), run in batches, and the top-k classes of the first output are
printed, or written as JSON with ``--json FILE`` (``-`` for standard output).
"""

from __future__ import annotations

import json

import numpy as np

from dsl.diagnostics import UserError


def add_arguments(p):
    p.add_argument("model", metavar="MODEL", help="an .onnx file (from netc compile)")
    p.add_argument("images", metavar="IMAGE", nargs="+", help="image files (any Pillow format)")
    p.add_argument("--topk", type=int, default=5, help="classes to report per image (default 5)")
    p.add_argument("--labels", metavar="FILE", help="class names, one per line")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (- for stdout)")
    p.add_argument("--batch", type=int, default=8, help="images per run (default 8)")
    p.add_argument("--provider", choices=("tensorrt", "cuda", "cpu"),
                   help="force an ONNX Runtime provider (default: the best that loads)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--mean", type=_floats, help="per-channel mean, e.g. 0.485,0.456,0.406")
    p.add_argument("--std", type=_floats, help="per-channel std, e.g. 0.229,0.224,0.225")
    p.add_argument("--scale", type=float, help="pixel scale: 1 (torchvision) or 255 (Caffe)")
    p.add_argument("--layout", choices=("rgb", "bgr", "gray"), help="channel order")
    p.add_argument("--crop", type=float, default=0.875,
                   help="centre crop as a fraction of the resized image (default 0.875)")


def _floats(text: str) -> tuple[float, ...]:
    import argparse

    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas; got {text!r}")


def run(args) -> int:
    from runtime.files import atomic_write_bytes
    from runtime.images import load_batch
    from runtime.ort import open_session

    if args.topk < 1 or args.batch < 1:
        raise UserError("--topk and --batch must be at least 1")
    session = open_session(args.model, args.provider, args.threads)
    quiet = args.json == "-"
    if not quiet:
        print(session.describe())
    prep = _preprocess(session, args)
    labels = _labels(args.labels)
    first = session.inputs[0].name
    results = []
    for start in range(0, len(args.images), args.batch):
        paths = args.images[start:start + args.batch]
        scores = session.run({first: load_batch(paths, prep)})[0].astype(np.float64)
        scores = scores.reshape(len(paths), -1)
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


def _preprocess(session, args):
    """The input's preparation: the model's metadata, then the command line's overrides."""
    from runtime.images import Preprocess

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


def _labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    from runtime.files import read_file

    try:
        text = read_file(path, "--labels").decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read labels from {path}: {err}") from None
    return [line.strip() for line in text.splitlines()]


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
