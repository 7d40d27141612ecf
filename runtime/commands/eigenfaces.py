"""``netc eigenfaces detect | identify | reconstruct | show [SPEC]``: the lecture's uses of
eigenfaces, measured on scikit-image's ``lfw_subset`` (see :mod:`netc.runtime.eigenfaces`).

SPEC defaults to the zoo's ``eigenfaces``. With ``--weights`` the net's fitted layers are taken
from the file (``netc fit eigenfaces --data lfw:0-79 -o faces.safetensors``); without, they are
fitted on faces 0–79 first. Faces 80–99 are always held out.
"""

from __future__ import annotations

import argparse

from netc.runtime.commands.options import (
    add_output,
    add_seed,
    add_set,
    add_weights,
    check_outputs,
    finite_float,
    non_negative_float,
    positive_int,
)


def add_arguments(p):
    from netc.compiler.frontend.context import DEFAULT_MAX_NODES

    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    helps = {
        "detect": "is it a face: ROC AUC of the distance from face space, held-out faces vs "
                  "non-faces",
        "identify": "who is it: nearest face-space code, on shifted and noisy copies",
        "reconstruct": "reconstruct occluded faces from the eigenfaces (the lecture's Figure 13)",
        "show": "a picture of the mean face and the eigenfaces",
    }
    for name, text in helps.items():
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("spec", nargs="?", default="eigenfaces", metavar="SPEC",
                       help="an eigenfaces net (default: the zoo's eigenfaces)")
        add_set(s)
        s.add_argument("--max-nodes", type=positive_int, default=DEFAULT_MAX_NODES,
                       help=argparse.SUPPRESS)
        add_weights(s, "fit the net on lfw_subset faces 0-79 first")
        if name in ("reconstruct", "show"):
            add_output(s, "PNG picture", "OUT.png", required=True)
        if name == "detect":
            add_output(s, "PNG picture of 3 held-out faces and 3 non-faces over their "
                          "projections onto face space (the lecture's Figure 4)", "OUT.png",
                       default_text="none")
            s.add_argument("--images", nargs="+", metavar="IMAGE", default=[],
                           help="also score these images: a face when the distance is below "
                                "the threshold")
            s.add_argument("--threshold", type=finite_float, default=None,
                           help="distance below which an image is a face (default: the "
                                "equal-error threshold measured on lfw_subset)")
        if name == "identify":
            s.add_argument("--copies", type=positive_int, default=5,
                           help="probes per face (default 5)")
            s.add_argument("--noise", type=non_negative_float, default=0.05,
                           help="std of the added noise, pixels in [0, 1] (default 0.05)")
            add_seed(s)


def _check_images(paths) -> None:
    """Refuse an --images entry that is no regular file before the fit, not after it."""
    from netc.dsl.diagnostics import UserError
    from netc.dsl.sources import NotRegular, check_regular

    for path in paths:
        try:
            check_regular(path)
        except NotRegular as err:
            raise UserError(f"--images: {err}") from None


def run(args) -> int:
    from netc.dsl.diagnostics import UserError
    from netc.runtime import eigenfaces as ef
    from netc.runtime.commands.common import load_graph

    check_outputs(getattr(args, "output", None))
    graph = load_graph(args)
    _check_images(getattr(args, "images", []))
    weights = None
    if args.weights:
        from netc.runtime.fit import check_fitted_for
        from netc.runtime.weights import load_weights

        check_fitted_for(graph, args.weights)
        weights = load_weights(graph, args.weights)
    weights = ef.fitted_weights(graph, weights, log=lambda line: print("fit " + line))
    if args.action == "detect":
        d = ef.detect(graph, weights)
        print(f"distance from face space: held-out faces {d.face_distances.mean():.3f} ± "
              f"{d.face_distances.std():.3f}, non-faces {d.other_distances.mean():.3f} ± "
              f"{d.other_distances.std():.3f}")
        print(f"ROC AUC {d.auc:.3f} (faces 80-99 vs non-faces 100-199); equal-error "
              f"threshold {d.threshold:.4f}")
        if args.images:
            threshold = d.threshold if args.threshold is None else args.threshold
            for path, dist in zip(args.images, ef.score_files(graph, weights, args.images)):
                verdict = "a face" if dist < threshold else "not a face"
                print(f"{path}: distance {dist:.4f}: {verdict} (threshold {threshold:.4f})")
        if args.output:
            shown, projected, dist = ef.projections(graph, weights)
            ef.write_panel(args.output, [shown, projected])
            print(f"wrote {args.output}: images over their projections; distances "
                  + ", ".join(f"{v:.3f}" for v in dist))
    elif args.action == "identify":
        if args.copies < 1 or not 0 <= args.noise < 1:
            raise UserError("--copies must be at least 1 and --noise in [0, 1)")
        code, raw = ef.identify(graph, weights, args.copies, args.noise, args.seed)
        print(f"nearest face-space code names {100 * code:.1f}% of {20 * args.copies} probes "
              f"(20 people, shifted up to 2 px, noise {args.noise:g}); nearest raw image "
              f"{100 * raw:.1f}%")
    elif args.action == "reconstruct":
        faces = ef.lfw_rows("0-99")[ef.HELD_OUT]
        r = ef.reconstruct(graph, weights, faces, ef.eyes_mask(faces.shape[1:]))
        show = range(min(6, len(faces)))
        ef.write_panel(args.output, [[r.occluded[i] for i in show],
                                     [r.reconstructed[i] for i in show],
                                     [faces[i] for i in show]])
        print(f"hidden-pixel RMSE {r.rmse:.4f} from face space (rank {r.rank}), "
              f"{r.mean_face_rmse:.4f} for the mean face, on 20 held-out faces")
        print(f"wrote {args.output}: occluded / reconstructed / original")
    else:
        images = ef.eigenface_images(graph, weights)
        ef.write_panel(args.output, [images])
        print(f"wrote {args.output}: the mean face and {len(images) - 1} eigenfaces")
    return 0
