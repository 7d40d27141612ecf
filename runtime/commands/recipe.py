"""``netc recipe FILE``: run an image recipe (feature inversion, DeepDream, neural style).

Everything a user can get wrong is checked before the first tensor is made, in this order: the
recipe and its layers (located diagnostics), the flags, the images (each read once), the
weights file, and whether the run fits in memory (tiled when it does not and the loss allows it,
refused with a message when it cannot). Then the network is built, the targets computed, and
the image optimised with a progress line; Ctrl-C saves the current image before exiting.
"""

from __future__ import annotations

import sys
from pathlib import Path

from netc.dsl.diagnostics import Diagnostic, DiagnosticError, UserError
from netc.runtime.commands.options import (
    add_max_memory,
    add_output,
    add_seed,
    add_set,
    add_threads,
    add_weights,
    non_negative_int,
    positive_int,
)


def add_arguments(p):
    p.add_argument("recipe", metavar="FILE", help="a .recipe file, or FILE:NAME for one of several")
    p.add_argument("--content", metavar="IMG", help="content image: a file or a sample name "
                                                   "(astronaut, coffee, ...)")
    p.add_argument("--style", metavar="IMG", nargs="+", help="style image(s), blended equally "
                                                            "unless the recipe says otherwise")
    p.add_argument("--image", metavar="IMG", help="starting image (with `init image`)")
    add_output(p, "PNG picture", "OUT.png", default_text="NAME.png")
    p.add_argument("--size", type=positive_int, metavar="N",
                   help="longer side of the working image, in pixels")
    p.add_argument("--steps", type=positive_int, metavar="N",
                   help="optimiser steps (per octave for dream)")
    add_set(p)
    add_weights(p, "netc's seeded random weights, with a warning")
    p.add_argument("--save-every", type=non_negative_int, default=0, metavar="N",
                   help="also write OUT_<step>.png every N steps")
    add_seed(p, default=None, default_text="the recipe's seed")
    add_threads(p, "torch's, the physical cores, printed")
    add_max_memory(p, "the memory available now; past it the image is tiled where the loss "
                      "allows")


def plan_from_args(args):
    """The checked plan with the command line's overrides applied (no torch yet)."""
    from netc.compiler.frontend.recipe import load_recipe

    plan = load_recipe(args.recipe, args.overrides)
    changes = {}
    if args.content:
        changes["content"] = args.content
    if args.style:
        changes["styles"] = tuple(args.style)
        if len(args.style) != len(plan.blend):
            changes["blend"] = tuple(1.0 for _ in args.style)
    if args.image:
        changes["image"] = args.image
    if args.weights:
        changes["weights"] = args.weights
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.size is not None:
        from netc.compiler.frontend.recipe import MAX_IMAGE_SIDE

        if args.size > MAX_IMAGE_SIDE:
            raise UserError(f"--size must be at most {MAX_IMAGE_SIDE:,}; got {args.size:,}")
        changes["size"] = args.size
        changes["spans"] = {k: v for k, v in plan.spans.items() if k != "size"}
    if args.steps is not None:
        from netc.compiler.frontend.recipe import MAX_STEPS

        if args.steps > MAX_STEPS:
            raise UserError(f"--steps must be at most {MAX_STEPS:,}; got {args.steps:,}")
        changes["optimizer"] = plan.optimizer.with_options(steps=args.steps)
    return plan.replace(**changes)


def read_images(plan):
    """Every image the plan needs, read now so a bad file stops the run before any work."""
    from netc.runtime.recipes.images import load_image

    if plan.init == "image" and not plan.image:
        raise UserError(f"recipe {plan.name} starts from `init image`: give one with --image")
    content = load_image(plan.content) if plan.content else None
    styles = [load_image(s) for s in plan.styles] if plan.needs("style") else []
    start = load_image(plan.image) if plan.init == "image" else None
    return content, styles, start


def working_size(plan, content, start) -> tuple[int, int]:
    """The optimised image's height and width."""

    _, h0, w0 = plan.input.shape
    if plan.fixed_size:
        if plan.size is not None and plan.size != max(h0, w0):
            raise UserError(f"recipe {plan.name} reads a layer past a flatten or tokens of "
                            f"{plan.graph.name}, so the image must be {h0}x{w0}; "
                            f"--size {plan.size} cannot be used")
        return h0, w0
    size = plan.size or max(h0, w0)
    reference = start if start is not None else content
    if reference is None:
        return size, size
    return fit_size(reference.shape[:2], size)


def fit_size(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """The (height, width) :func:`~netc.runtime.recipes.images.fit` would give, without resizing:
    the cost is checked before any pixel is resampled (``size 1000000`` would take GBs)."""
    h, w = shape
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def check_size(plan, height: int, width: int, what: str = "the image") -> None:
    """Refuse a working size the tapped layers cannot take, located at the recipe's ``size``
    line when the size came from there."""
    from netc.compiler.frontend.recipe import size_problem

    problem = size_problem(plan, height, width)
    if problem is None:
        return
    message = f"{what} is too small for {plan.graph.name}: {problem}"
    span = plan.spans.get("size") if what == "the image" else plan.spans.get("tile")
    if span is not None:
        raise DiagnosticError(Diagnostic(span, message))
    raise UserError(message + " (use a larger --size)")


def check_cost(plan, height, width, budget, stream) -> int:
    """Print the cost; return the tile size (0: whole image), or refuse with a UserError."""
    from netc.compiler.analyses.summary import human_bytes
    from netc.runtime.recipes.cost import choose_tile, estimate

    cost = estimate(plan.graph, plan.taps, height, width)
    print(f"recipe {plan.name}: {plan.graph.name} at {cost.describe()}; "
          f"budget {human_bytes(budget)}", file=stream)
    why = ("its loss reads a layer past a flatten" if plan.fixed_size else
           "a code term compares whole-image codes" if plan.needs("code") else None)
    if plan.tile:
        if why:
            raise UserError(f"recipe {plan.name} sets `tile {plan.tile}`, but it cannot be "
                            f"tiled: {why}")
        check_size(plan, min(plan.tile, height), min(plan.tile, width), "a tile")
        check_whole_image(plan, height, width, budget)
        print(f"  tiles of {plan.tile}x{plan.tile} pixels (the recipe's `tile` setting)",
              file=stream)
        return plan.tile
    if cost.total <= budget:
        return 0
    tile = None if why else choose_tile(plan.graph, plan.taps, height, width, budget)
    if tile is None:
        hint = why or "even a 32x32 tile does not fit"
        raise UserError(f"recipe {plan.name} needs about {human_bytes(cost.total)} at "
                        f"{height}x{width} but {human_bytes(budget)} is available, and it "
                        f"cannot be tiled ({hint}); use a smaller --size or a larger "
                        "--max-memory")
    check_size(plan, min(tile, height), min(tile, width), "a tile")
    check_whole_image(plan, height, width, budget)
    print(f"  too big for memory at once: tiles of {tile}x{tile} pixels with random offsets",
          file=stream)
    return tile


def check_whole_image(plan, height: int, width: int, budget: int) -> None:
    """Tiles bound the activations, never the image: it, its gradient, the optimiser's state
    and the content are whole-image float32 arrays (about four) whatever the tiling."""
    from netc.compiler.analyses.summary import human_bytes

    images = 4 * 4 * 3 * height * width
    if images > budget:
        raise UserError(f"recipe {plan.name}: a {height}x{width} image needs about "
                        f"{human_bytes(images)} for itself, its gradient and the optimiser's "
                        f"state, more than {human_bytes(budget)}; use a smaller --size")


def read_weights(plan) -> dict | None:
    """The weights of the part of the net the loss needs, from the plan's file (the whole file
    checked against the whole net: :func:`netc.runtime.weights.load_weights`); None without."""
    from netc.runtime.weights import load_weights

    if not plan.weights:
        return None
    return load_weights(plan.graph, plan.weights, layers=[n.name for n in plan.prefix()])


def build_network(plan, weights: dict | None):
    """The torch module of the part of the net the loss needs, with ``weights`` (from
    :func:`read_weights`) or random ones (with a warning). Layers past the last tap are never
    built or initialised."""
    from netc.compiler.lower_torch.module import build_module

    graph = plan.prefix()
    if weights is not None:
        net = build_module(graph, weights, seed=plan.seed)
    else:
        print(f"warning: no --weights given: {plan.graph.name} has random weights (netc's "
              f"seeded initialiser), so the result shows what random features do; bring "
              f"trained weights with `netc weights import` and pass --weights FILE",
              file=sys.stderr)
        net = build_module(graph, seed=plan.seed)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def start_image(plan, content, start, height, width):
    import torch
    from netc.runtime.recipes.images import cover
    from netc.runtime.recipes.objective import Preprocess, to_tensor

    if plan.init == "content":
        return to_tensor(cover(content, height, width))
    if plan.init == "image":
        return to_tensor(cover(start, height, width))
    gen = torch.Generator().manual_seed(plan.seed)
    noise = torch.randn(1, 3, height, width, generator=gen) * plan.init_scale
    return (Preprocess(plan.input).mean_pixel + noise).clamp(0.0, 1.0)


def run(args) -> int:
    from netc.runtime.files import check_destination
    from netc.runtime.recipes.cost import available_memory
    from netc.runtime.recipes.images import save_png

    plan = plan_from_args(args)
    out = Path(args.output or f"{plan.name}.png")
    if out.suffix.lower() != ".png":
        raise UserError(f"the output is a PNG file; got {str(out)!r}")
    check_destination(out)  # before the work: -o onto a FIFO or a read-only file is refused
    content, styles, start = read_images(plan)
    weights = read_weights(plan)  # checked before the cost, read before any tensor is made
    height, width = working_size(plan, content, start)
    check_size(plan, height, width)
    budget = args.max_memory or available_memory()
    tile = check_cost(plan, height, width, budget, sys.stderr)

    import torch
    from netc.runtime.recipes.engine import ProgressLine, Run
    from netc.runtime.recipes.objective import Objective
    from netc.runtime.threads import set_cpu_threads

    print(set_cpu_threads(args.threads), file=sys.stderr)  # recipes run on the CPU
    torch.manual_seed(plan.seed)
    net = build_network(plan, weights)
    objective = Objective(plan, net, content, styles)

    def save_step(step, img):
        save_png(out.with_name(f"{out.stem}_{step:04d}{out.suffix}"), img)

    progress = ProgressLine()
    engine = Run(plan, objective, start_image(plan, content, start, height, width),
                 tile=tile, seed=plan.seed, listener=progress, save_every=args.save_every,
                 saver=save_step)
    try:
        image = engine.run()
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the image so far, whole
        from netc.runtime.interrupts import exit_status

        progress.close()
        save_png(out, engine.image())
        print(f"\ninterrupted at step {engine.step}; wrote the current image to {out}",
              file=sys.stderr)
        return exit_status(err)
    progress.close()
    import numpy as np

    if not np.isfinite(np.asarray(image)).all():
        bad = next((i + 1 for i, v in enumerate(engine.history) if not np.isfinite(v)), None)
        when = f" (the loss was {engine.history[bad - 1]} at step {bad})" if bad else ""
        raise UserError(f"recipe {plan.name}: the image became NaN or infinite{when}; lower "
                        f"the learning rate or the weights. Nothing was written to {out}")
    save_png(out, image)
    first, last = (engine.history[0], engine.history[-1]) if engine.history else (0.0, 0.0)
    print(f"wrote {out} ({width}x{height}); loss {first:.4g} -> {last:.4g} in "
          f"{engine.step} steps", file=sys.stderr)
    return 0
