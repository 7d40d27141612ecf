"""``netc eigenfaces detect | identify | reconstruct | show [SPEC]``: the lecture's uses of
eigenfaces, measured on scikit-image's ``lfw_subset`` (see :mod:`netc.runtime.eigenfaces`).

SPEC defaults to the zoo's ``eigenfaces``. With ``--weights`` the net's fitted layers are taken
from the file (``netc fit eigenfaces --data lfw:0-79 -o faces.safetensors``); without, they are
fitted on faces 0–79 first. Faces 80–99 are always held out.
"""

from __future__ import annotations

import argparse

from netc.runtime.commands.common import add_caffe_arguments
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
        add_caffe_arguments(s)
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
                                "equal-error threshold, cross-validated on faces 0-79 and "
                                "non-faces 100-149)")
            s.add_argument("--splits", type=positive_int, default=None, metavar="N",
                           help="also refit on N random 80/20 splits of the 100 faces and "
                                "print the AUC's mean ± sd (split i uses seed + i)")
            add_seed(s)
        if name == "identify":
            s.add_argument("--copies", type=positive_int, default=5,
                           help="probes per face (default 5)")
            s.add_argument("--noise", type=non_negative_float, default=0.05,
                           help="std of the added noise, pixels in [0, 1] (default 0.05)")
            add_seed(s)
            s.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                           help="repeat with N probe seeds (seed, seed + 1, ...) and print "
                                "mean ± sd (default 1)")


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
        _detect(args, graph, weights)
    elif args.action == "identify":
        if args.copies < 1 or not 0 <= args.noise < 1:
            raise UserError("--copies must be at least 1 and --noise in [0, 1)")
        from netc.runtime.eigenfaces_spread import identify_over_seeds
        from netc.runtime.progress import mean_sd

        runs = identify_over_seeds(graph, weights, args.seeds, args.copies, args.noise,
                                   args.seed)
        probes = f"{20 * args.copies} probes (20 people, shifted up to 2 px, noise {args.noise:g})"
        if args.seeds == 1:
            print(f"nearest face-space code names {100 * runs[0, 0]:.1f}% of {probes}; "
                  f"nearest raw image {100 * runs[0, 1]:.1f}%")
        else:
            print(f"nearest face-space code names {mean_sd(100 * runs[:, 0], 1)}% of {probes}; "
                  f"nearest raw image {mean_sd(100 * runs[:, 1], 1)}% (mean ± sd over "
                  f"{args.seeds} seeds from {args.seed})")
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


def _detect(args, graph, weights) -> None:
    from netc.dsl.diagnostics import UserError
    from netc.runtime import eigenfaces as ef
    from netc.runtime import eigenfaces_spread as spread
    from netc.runtime.progress import mean_sd
    from netc.runtime.views.pictures import progress

    d = ef.detect(graph, weights)
    print(f"distance from face space: held-out faces {d.face_distances.mean():.3f} ± "
          f"{d.face_distances.std():.3f}, non-faces {d.other_distances.mean():.3f} ± "
          f"{d.other_distances.std():.3f}")
    print(f"ROC AUC {d.auc:.3f} (the fixed split: fit on faces 0-79, faces 80-99 vs non-faces "
          "100-199)")
    if args.splits:
        with progress("splits", args.splits) as advance:
            aucs = spread.detect_over_splits(graph, args.splits, args.seed, lambda: advance(1))
        print(f"ROC AUC {mean_sd(aucs)} (mean ± sd over {args.splits} random 80/20 "
              f"splits of the faces from seed {args.seed}; min {aucs.min():.3f}, max "
              f"{aucs.max():.3f}; the fixed split is at percentile "
              f"{100 * (aucs < d.auc).mean():.0f})")
    if args.threshold is not None and args.threshold <= 0:  # finite by its type
        raise UserError(f"--threshold {args.threshold:g}: expected a positive distance")
    if args.images:
        threshold = args.threshold
        if threshold is None:
            t = spread.cross_validated_threshold(graph, weights)
            threshold = t.value
            print(f"threshold {t.value:.4f}: equal error between faces 0-79 ({t.folds}-fold, "
                  "each from a face space fitted without it) and non-faces 100-149; on faces "
                  f"80-99 it accepts {100 * t.face_accuracy:.0f}%, on non-faces 150-199 it "
                  f"rejects {100 * t.other_accuracy:.0f}%")
        for path, dist in zip(args.images, ef.score_files(graph, weights, args.images)):
            verdict = "a face" if dist < threshold else "not a face"
            print(f"{path}: distance {dist:.4f}: {verdict} (threshold {threshold:.4f})")
    if args.output:
        shown, projected, dist = ef.projections(graph, weights)
        ef.write_panel(args.output, [shown, projected])
        print(f"wrote {args.output}: images over their projections; distances "
              + ", ".join(f"{v:.3f}" for v in dist))
