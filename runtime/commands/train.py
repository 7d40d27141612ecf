"""``netc train SPEC --data ...``: train a spec's network (see :mod:`netc.runtime.train`).

The same command runs on one process or, under ``torchrun --nproc_per_node N``, on N with
DistributedDataParallel. Torch is imported only when the command runs.
"""

from __future__ import annotations

from netc.runtime.commands.common import add_spec_arguments, load_graph
from netc.runtime.commands.options import (
    add_compile,
    add_output,
    add_seed,
    add_threads,
    add_weights,
    fraction,
    momentum,
    non_negative_float,
    positive_float,
    positive_int,
)


def add_arguments(p):
    add_spec_arguments(p)
    g = p.add_argument_group("data")
    g.add_argument("--data", default="digits", metavar="SOURCE",
                   help="digits (scikit-learn's 8x8 digits), folder:PATH (one sub-folder per "
                        "class) or cifar10:PATH (the python CIFAR-10 batches); default digits")
    g.add_argument("--augment", action="store_true",
                   help="random crop with zero padding and horizontal flip")
    g.add_argument("--holdout", type=fraction, default=0.2,
                   help="held-out fraction when the data has no split of its own (default 0.2)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=positive_int, default=10)
    o.add_argument("--batch-size", type=positive_int, default=64, help="per process (default 64)")
    o.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="SGD with momentum (default) or Adam")
    o.add_argument("--lr", type=positive_float, default=0.05,
                   help="peak learning rate (default 0.05)")
    o.add_argument("--momentum", type=momentum, default=0.9)
    o.add_argument("--nesterov", action="store_true")
    o.add_argument("--weight-decay", type=non_negative_float, default=5e-4)
    o.add_argument("--schedule", choices=["cosine", "step", "constant"], default="cosine",
                   help="learning-rate schedule (default cosine)")
    o.add_argument("--milestones", default="0.5,0.75", metavar="F,F",
                   help="step schedule: fractions of the run where lr is multiplied by --gamma")
    o.add_argument("--gamma", type=positive_float, default=0.1)
    o.add_argument("--steps-per-epoch", type=positive_int, default=None,
                   help="cap the steps of an epoch (quick runs)")
    r = p.add_argument_group("run")
    add_seed(r)
    add_weights(r, "netc's seeded initial weights; a whole FractalNet's weights may start its "
                   "deepest column", flag="--init")
    r.add_argument("--checkpoint", metavar="PATH",
                   help="checkpoint file, written every epoch and on Ctrl-C "
                        "(default NET.ckpt.pt)")
    r.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    add_output(r, "final weights", "OUT.safetensors", default_text="NET.safetensors")
    r.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda if present)")
    add_threads(r, "torch's, the physical cores capped at the usable ones, printed; fewer "
                   "helps on a busy machine")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_compile(r)


def run(args) -> int:
    import math

    from netc.dsl.diagnostics import UserError
    from netc.runtime.train import TrainConfig, train

    try:
        milestones = tuple(float(m) for m in args.milestones.split(",") if m.strip())
    except ValueError:
        raise UserError(f"--milestones expects fractions like 0.5,0.75; got "
                        f"{args.milestones!r}") from None
    # --lr, --momentum, --weight-decay, --gamma and --holdout are finite by their types
    if not all(math.isfinite(m) for m in milestones):
        raise UserError(f"--milestones must be finite fractions; got {args.milestones!r}")
    graph = load_graph(args)
    cfg = TrainConfig(
        data=args.data, epochs=args.epochs, batch_size=args.batch_size,
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov,
        weight_decay=args.weight_decay, schedule=args.schedule, milestones=milestones,
        gamma=args.gamma, augment=args.augment, holdout=args.holdout, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, checkpoint=args.checkpoint, resume=args.resume,
        output=args.output, init=args.init, progress=not args.no_progress, device=args.device,
        threads=args.threads, compile=args.compile)
    train(graph, cfg, log=lambda line: print(line, flush=True))
    return 0
