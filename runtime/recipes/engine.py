"""The recipe engine: optimise an image under a recipe's loss with L-BFGS, Adam or DeepDream.

- **L-BFGS** (``torch.optim.LBFGS``): as jcjohnson/neural-style runs torch/optim's lbfgs.lua:
  learning rate 1, history 100, no line search unless ``line_search=true``, and never stopping
  early (tolerances −1). One step is one evaluation of the loss. The image is not clipped while
  L-BFGS runs (clipping would break its curvature pairs); the saved image is.
- **Adam**: ``lr`` in pixel units of [0, 1] images, multiplied by ``gamma`` at each of the
  ``milestones`` steps; an optional random ``jitter`` (a circular roll of up to that many pixels,
  undone on the gradient); the image is clipped after each step.
- **dream**: google/deepdream's ``make_step`` and ``deepdream`` (SEMANTICS.md e): a random
  circular jitter of up to ``jitter`` pixels, the gradient of the loss, a step of
  ``step / mean|g|`` (``step`` in 0-255 units, so ``step/255`` here), the jitter undone, the
  image clipped to the valid range; over ``octaves`` scales ``octave_scale`` apart, smallest
  first, the detail each octave added carried up to the next by bilinear zoom
  (the notebook uses scipy's order-1 zoom, which also interpolates linearly).

:class:`Run` holds the current image, so ``netc recipe`` can save it when Ctrl-C arrives.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from netc.compiler.frontend.recipe import Plan
from netc.runtime.recipes.objective import Objective, to_image

# Called after every step with (step, total steps, loss, terms).
Listener = Callable[[int, int, float, dict[str, float]], None]


class Run:
    """One optimisation. ``image()`` is the current image at any moment (even mid-step)."""

    def __init__(self, plan: Plan, objective: Objective, start: torch.Tensor, *,
                 tile: int = 0, seed: int = 0, listener: Listener | None = None,
                 save_every: int = 0, saver: Callable[[int, np.ndarray], None] | None = None):
        self.plan, self.objective, self.tile = plan, objective, tile
        self.x = start.clone()
        self.final_size = tuple(start.shape[-2:])
        self.rng = np.random.default_rng(seed)
        self.listener, self.save_every, self.saver = listener, save_every, saver
        self.step = 0
        self.history: list[float] = []
        torch.manual_seed(seed)

    # ---- shared pieces -----------------------------------------------------------------------
    def image(self) -> np.ndarray:
        """The current image at the final size, clipped to [0, 1]."""
        x = self.x.detach()
        if tuple(x.shape[-2:]) != self.final_size:
            x = F.interpolate(x, size=self.final_size, mode="bilinear", align_corners=False)
        return to_image(x)

    def evaluate(self, x: torch.Tensor) -> tuple[float, dict[str, float]]:
        """Loss and terms at ``x``, filling ``x.grad`` (tiled when a tile size is set)."""
        if x.grad is not None:
            x.grad = None
        if self.tile and max(x.shape[-2:]) > self.tile:
            return self.objective.tiled_gradient(x, self.tile, self.rng)
        return self.objective.gradient(x)

    def after_step(self, total_steps: int, loss: float, parts: dict[str, float]) -> None:
        self.step += 1
        self.history.append(loss)
        if self.listener:
            self.listener(self.step, total_steps, loss, parts)
        if self.save_every and self.saver and self.step % self.save_every == 0:
            self.saver(self.step, self.image())

    # ---- optimisers --------------------------------------------------------------------------
    def run(self) -> np.ndarray:
        kind = self.plan.optimizer.kind
        h, w = self.final_size
        if kind == "dream":
            self.dream()
        else:
            self.objective.prepare(h, w)
            self.lbfgs() if kind == "lbfgs" else self.adam()
        return self.image()

    def lbfgs(self) -> None:
        opt_ = self.plan.optimizer
        steps = opt_.steps
        self.x.requires_grad_(True)
        opt = torch.optim.LBFGS(
            [self.x], lr=1.0, max_iter=steps, max_eval=steps, tolerance_grad=-1.0,
            tolerance_change=-1.0, history_size=int(opt_.option("history")),
            line_search_fn="strong_wolfe" if opt_.option("line_search") else None)

        def closure():
            loss, parts = self.evaluate(self.x)
            self.after_step(steps, loss, parts)
            return torch.tensor(loss)

        opt.step(closure)
        self.x = self.x.detach()

    def adam(self) -> None:
        opt_ = self.plan.optimizer
        steps, jitter = opt_.steps, int(opt_.option("jitter"))
        self.x.requires_grad_(True)
        opt = torch.optim.Adam([self.x], lr=float(opt_.option("lr")))
        schedule = torch.optim.lr_scheduler.MultiStepLR(
            opt, list(opt_.option("milestones")), gamma=float(opt_.option("gamma")))
        for _ in range(steps):
            if jitter:
                # Evaluate a rolled copy, then roll its gradient back onto the image.
                oy, ox = (int(v) for v in self.rng.integers(-jitter, jitter + 1, 2))
                view = torch.roll(self.x.detach(), (oy, ox), (-2, -1)).requires_grad_(True)
                loss, parts = self.evaluate(view)
                self.x.grad = torch.roll(view.grad, (-oy, -ox), (-2, -1))
            else:
                loss, parts = self.evaluate(self.x)
            opt.step()
            schedule.step()
            if self.plan.clip:
                with torch.no_grad():
                    self.x.clamp_(0.0, 1.0)
            self.after_step(steps, loss, parts)
        self.x = self.x.detach()

    def octave_sizes(self) -> list[tuple[int, int]]:
        """Octave sizes, largest first; octaves too small for the tapped layers are dropped."""
        opt_ = self.plan.optimizer
        h, w = self.final_size
        smallest = min_side(self.plan)
        sizes = [(h, w)]
        if self.plan.fixed_size:
            return sizes  # a layer past a flatten needs the declared size: one octave
        for _ in range(int(opt_.option("octaves")) - 1):
            ph, pw = sizes[-1]
            s = float(opt_.option("octave_scale"))
            nh, nw = round(ph / s), round(pw / s)
            if min(nh, nw) < smallest:
                break
            sizes.append((nh, nw))
        return sizes

    def dream(self) -> None:
        opt_ = self.plan.optimizer
        steps, jitter = opt_.steps, int(opt_.option("jitter"))
        step_size = float(opt_.option("step")) / 255.0
        sizes = self.octave_sizes()
        total = steps * len(sizes)
        base = self.x.detach()
        octaves = [base] + [F.interpolate(base, size=s, mode="bilinear", align_corners=False)
                            for s in sizes[1:]]
        detail = torch.zeros_like(octaves[-1])
        for octave_base in reversed(octaves):
            h, w = octave_base.shape[-2:]
            if detail.shape[-2:] != (h, w):
                detail = F.interpolate(detail, size=(h, w), mode="bilinear", align_corners=False)
            self.objective.prepare(h, w)
            self.x = octave_base + detail
            for _ in range(steps):
                oy, ox = (int(v) for v in self.rng.integers(-jitter, jitter + 1, 2))
                x = torch.roll(self.x, (oy, ox), (-2, -1)).requires_grad_(True)
                loss, parts = self.evaluate(x)
                g = x.grad
                # The loss is minimised, so a step against g raises -loss (the activation).
                x = x.detach() - step_size / max(float(g.abs().mean()), 1e-12) * g
                x = torch.roll(x, (-oy, -ox), (-2, -1))
                self.x = x.clamp(0.0, 1.0) if self.plan.clip else x
                self.after_step(total, loss, parts)
            detail = self.x - octave_base


def min_side(plan: Plan) -> int:
    """The smallest image side for which every tapped layer still has at least 2×2 positions."""
    _, h0, w0 = plan.input.shape
    side = 8
    for name in plan.taps:
        shape = plan.graph[name].shape
        if len(shape) == 3:
            side = max(side, math.ceil(2 * h0 / shape[1]), math.ceil(2 * w0 / shape[2]))
    return side


class ProgressLine:
    """Progress on stderr: a rich bar on a terminal, else a line about every tenth of the run."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bar = None
        self.start = time.perf_counter()
        if getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            from rich.progress import TimeRemainingColumn

            self.bar = Progress(TextColumn("step"), MofNCompleteColumn(), BarColumn(),
                                TimeRemainingColumn(), TextColumn("{task.description}"),
                                console=Console(file=self.stream), transient=False)
            self.task = None

    def __call__(self, step: int, total: int, loss: float, parts: dict[str, float]) -> None:
        terms = "  ".join(f"{k} {v:.4g}" for k, v in parts.items())
        text = f"loss {loss:.4g}  {terms}"
        if self.bar is not None:
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task(text, total=total)
            self.bar.update(self.task, completed=step, description=text)
            return
        every = max(1, total // 10)
        if step == 1 or step % every == 0 or step == total:
            rate = step / max(time.perf_counter() - self.start, 1e-9)
            print(f"step {step}/{total}  {text}  ({rate:.2f} steps/s)", file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.stop()
