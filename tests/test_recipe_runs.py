"""`netc recipe` end to end on a small VGG-like net: style, dream, inversion, interrupts, errors.

Images are tiny (64x64 or less) and runs short, so the whole file takes seconds.
"""

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("netc.compiler.lower_torch.module")

from PIL import Image  # noqa: E402

from netc.runtime.cli import main  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two workers share two cores

TINY = (Path(__file__).parent / "recipe_data" / "tiny.net").resolve()

RECIPES = f'''
recipe style(content_weight=1, style_weight=1e3) {{
  net "{TINY}:tinyvgg"
  size 64
  init noise
  optimizer lbfgs(steps=30)
  loss = content_weight * content(conv4_2)
       + style_weight * style(conv1_1, conv2_1, conv3_1, conv4_1)
}}

recipe dream {{
  net "{TINY}:tinyvgg"
  content "coffee"
  init content
  size 48
  optimizer dream(steps=4, octaves=2)
  loss = -activation(conv3_2)
}}

recipe invert {{
  net "{TINY}:tinyvgg"
  init noise
  optimizer adam(steps=40, lr=0.05, milestones=[30])
  loss = code(fc8) + alpha_norm(6) + tv(2)
}}
'''


@pytest.fixture
def recipes(tmp_path):
    f = tmp_path / "tiny.recipe"
    f.write_text(RECIPES)
    return f


def run(capsys, *argv):
    code = main(["recipe", *map(str, argv)])
    return code, capsys.readouterr().err


def losses(err):
    first, last = re.search(r"loss (\S+) -> (\S+) in \d+ steps", err).groups()
    return float(first), float(last)


def term_values(err, label):
    return [float(v) for v in re.findall(re.escape(label) + r" (\S+)", err)]


def png(path):
    with Image.open(path) as im:
        im.load()
        return im.format, im.size, np.asarray(im.convert("RGB"))


def test_style_run_lowers_the_loss_and_writes_a_png(recipes, tmp_path, capsys):
    out = tmp_path / "style.png"
    code, err = run(capsys, f"{recipes}:style", "-o", out)
    assert code == 0, err
    first, last = losses(err)
    assert last < first / 20, err  # 30 L-BFGS steps: typically 245 -> 6
    assert "warning: no --weights given" in err and err.count("warning:") == 1
    assert re.search(r"tinyvgg at 64x64, computes 19 of 22 nodes", err)  # not relu4_2, fc8
    fmt, size, pixels = png(out)
    assert fmt == "PNG" and size == (64, 64) and pixels.std() > 1


def test_dream_changes_the_image_and_raises_the_activation(recipes, tmp_path, capsys):
    from netc.runtime.recipes.images import fit, load_image, to_uint8

    out = tmp_path / "dream.png"
    code, err = run(capsys, f"{recipes}:dream", "-o", out)
    assert code == 0, err
    first, last = losses(err)
    assert first < 0 and last < 2 * first  # -½‖a‖² at least doubled in magnitude
    _, size, pixels = png(out)
    original = to_uint8(fit(load_image("coffee"), 48))
    assert size == (48, 32) and np.abs(pixels.astype(int) - original).mean() > 2


@pytest.mark.parametrize("extra, factor", [((), 5), (("--set", "jitter=1"), 2)])
def test_inversion_lowers_the_code_loss(recipes, tmp_path, capsys, extra, factor):
    code, err = run(capsys, f"{recipes}:invert", *extra, "-o", tmp_path / "inv.png")
    assert code == 0, err
    values = term_values(err, "code(fc8)")
    assert values[-1] < values[0] / factor, values  # typically 0.58 -> 0.05 (jitter: 0.13)
    assert "at 64x64" in err  # fc8 is past a flatten: the declared input size


def test_same_seed_same_image_other_seed_other_image(recipes, tmp_path, capsys):
    outs = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        out = tmp_path / f"{name}.png"
        assert run(capsys, f"{recipes}:dream", "-o", out, "--seed", seed, "--steps", 2)[0] == 0
        outs.append(png(out)[2])
    assert np.array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])


def test_save_every_writes_intermediate_images(recipes, tmp_path, capsys):
    out = tmp_path / "s.png"
    code, _ = run(capsys, f"{recipes}:style", "-o", out, "--steps", 6, "--save-every", 3)
    assert code == 0
    assert sorted(p.name for p in tmp_path.glob("s*.png")) == ["s.png", "s_0003.png",
                                                              "s_0006.png"]


def test_interrupt_writes_the_current_image(recipes, tmp_path, capsys, monkeypatch):
    from netc.runtime.recipes import engine

    def interrupt_at_third_step(self, step, total, loss, parts):
        if step == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine.ProgressLine, "__call__", interrupt_at_third_step)
    out = tmp_path / "cut.png"
    code, err = run(capsys, f"{recipes}:style", "-o", out)
    assert code == 130
    assert "interrupted at step 3; wrote the current image" in err
    fmt, size, _ = png(out)
    assert fmt == "PNG" and size == (64, 64)
    assert not list(tmp_path.glob(".cut.png.*"))  # no temporary file left behind


def test_unknown_layer_stops_before_any_work(tmp_path, capsys):
    f = tmp_path / "bad.recipe"
    f.write_text(f'recipe bad {{\n  net "{TINY}:tinyvgg"\n  loss = content(conv9_1)\n}}\n')
    out = tmp_path / "never.png"
    code, err = run(capsys, f, "-o", out)
    assert code == 1
    assert "bad.recipe:3:18: error: no layer 'conv9_1' in tinyvgg" in err
    assert "warning" not in err and "budget" not in err and not out.exists()


@pytest.mark.parametrize("content, message", [
    ("/nonexistent/photo.jpg", "cannot read image '/nonexistent/photo.jpg': no such file"),
    ("NOT_AN_IMAGE", "not an image Pillow can read"),
])
def test_unreadable_image_is_a_clear_error_before_any_work(recipes, tmp_path, capsys, content,
                                                           message):
    if content == "NOT_AN_IMAGE":
        content = tmp_path / "notes.png"
        content.write_text("this is text, not a PNG")
    out = tmp_path / "never.png"
    code, err = run(capsys, f"{recipes}:style", "--content", content, "-o", out)
    assert code == 1 and err.startswith("netc: error: cannot read image") and message in err
    assert "Traceback" not in err and "warning" not in err and not out.exists()


def test_a_run_that_cannot_fit_is_refused(recipes, tmp_path, capsys):
    code, err = run(capsys, f"{recipes}:invert", "--max-memory", "100K",
                    "-o", tmp_path / "x.png")
    assert code == 1
    assert "needs about" in err and "cannot be tiled (its loss reads a layer past a flatten)" \
        in err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("recipe, budget, steps, size", [
    ("dream", "1.5M", 4, (64, 43)),
    ("style", "2.5M", 10, (64, 64)),  # Grams summed over tiles, content per tile
])
def test_a_run_too_big_for_memory_is_tiled(recipes, tmp_path, capsys, recipe, budget, steps,
                                           size):
    out = tmp_path / "tiled.png"
    code, err = run(capsys, f"{recipes}:{recipe}", "--size", 64, "--max-memory", budget,
                    "--steps", steps, "-o", out)
    assert code == 0, err
    assert "tiles of 32x32 pixels with random offsets" in err
    first, last = losses(err)
    assert last < first and (last < 0 if recipe == "dream" else last < first / 2)
    assert png(out)[1] == size


def test_tiled_gradient_equals_the_whole_image_gradient():
    """With 1x1 convolutions tiles are independent, so tiling must be exact (Gram trick)."""
    import netc.compiler.frontend.recipe as cr
    from netc.compiler.lower_torch.module import build_module
    from netc.compiler.frontend.loader import load
    from netc.runtime.recipes.objective import Objective

    graph = load(f"{TINY}:pointwise")
    terms = (
        cr.Term("style", 2.0, ("conv1", "relu2"), ("conv1", "relu2"), (0.5, 1.5), ()),
        cr.Term("content", 0.5, ("relu1",), ("relu1",), (1.0,), ()),
        cr.Term("activation", -0.1, ("conv2",), ("conv2",), (1.0,), (("channel", 3),)),
        cr.Term("tv", 0.3, (), (), (), (("beta", 2), ("bound", 80.0))),
    )
    plan = cr.Plan("t", "t", "t", graph, terms, cr.Optimizer("adam", (("steps", 1),)),
                   styles=("s",), blend=(1.0,))
    rng = np.random.default_rng(0)
    content, style = rng.random((16, 16, 3), np.float32), rng.random((16, 16, 3), np.float32)
    objective = Objective(plan, build_module(graph, seed=1).eval(), content, [style])
    objective.prepare(16, 16)
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    whole, whole_parts = objective.gradient(x)
    g_whole = x.grad.clone()
    x.grad = None
    tiled, tiled_parts = objective.tiled_gradient(x, 5, np.random.default_rng(1))
    assert tiled == pytest.approx(whole, rel=1e-4)
    for k in whole_parts:
        assert tiled_parts[k] == pytest.approx(whole_parts[k], rel=1e-4, abs=1e-6), k
    torch.testing.assert_close(x.grad, g_whole, rtol=1e-4, atol=1e-6)


def test_weights_file_is_read_by_name_and_checked(recipes, tmp_path, capsys):
    from safetensors.numpy import save_file

    from netc.compiler.frontend.loader import load
    from netc.compiler.numerics.seeded_weights import init_weights

    weights = init_weights(load(f"{TINY}:tinyvgg"), seed=5)  # the whole net, fc8 included
    good, short = tmp_path / "good.safetensors", tmp_path / "short.safetensors"
    save_file(weights, str(good))
    save_file({k: v for k, v in weights.items() if not k.startswith("conv2_1.")}, str(short))
    code, err = run(capsys, f"{recipes}:style", "--weights", good, "--steps", 2,
                    "-o", tmp_path / "w.png")
    assert code == 0 and "warning" not in err
    code, err = run(capsys, f"{recipes}:style", "--weights", short, "-o", tmp_path / "x.png")
    assert code == 1 and "does not fit tinyvgg: missing: conv2_1.bias, conv2_1.weight" in err
    assert not (tmp_path / "x.png").exists()


def test_ctrl_c_on_a_real_process_saves_the_image(recipes, tmp_path):
    """SIGINT to a running `netc recipe` (what Ctrl-C sends) writes the current image."""
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "sig.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "netc.runtime.cli", "recipe", f"{recipes}:dream", "--steps", "100000",
         "-o", str(out)], stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        for line in proc.stderr:  # the first progress line: the loop is running
            if line.startswith("step 1/"):
                break
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert code == 130, err
    assert "wrote the current image" in err and png(out)[0] == "PNG"


def test_dream_step_is_normalised_and_jitter_and_octaves_keep_the_base(recipes):
    """google/deepdream: x += step/mean|g| · g (step in 0-255 units); with step 0, jitter undone
    and the detail carried through the octaves leave the image exactly as it was."""
    from netc.compiler.lower_torch.module import build_module
    from netc.compiler.frontend.recipe import load_recipe
    from netc.runtime.recipes.engine import Run
    from netc.runtime.recipes.objective import Objective

    plan = load_recipe(f"{recipes}:dream").replace(clip=False)
    net = build_module(plan.prefix(), seed=0).eval()
    objective = Objective(plan, net)
    start = 0.3 + 0.4 * torch.rand(1, 3, 32, 48)  # far from 0 and 1: nothing clipped

    def dream(**options):
        p = plan.replace(optimizer=plan.optimizer.with_options(**options))
        return Run(p, objective, start, seed=1).run()

    one = dream(steps=1, step=1.5, jitter=0, octaves=1)
    assert np.abs(one - start[0].permute(1, 2, 0).numpy()).mean() == pytest.approx(1.5 / 255,
                                                                                   rel=1e-3)
    still = dream(steps=3, step=0.0, jitter=8, octaves=3)
    np.testing.assert_allclose(still, start[0].permute(1, 2, 0).numpy(), atol=1e-6)
