"""SIGINT or SIGTERM at a random moment of ``train``, ``recipe``, ``fit``, ``compile`` and
``weights import`` leaves every output complete or absent, no temporary file, one line and the
shell's status (130 or 143), and a training run resumable from its checkpoint; two processes
writing one ``-o`` at once leave one whole file.

Each command runs once uninterrupted (its reference outputs, and the span of the run), then ten
times in a subprocess each, killed after a seeded random delay drawn across that span. The
delay counts from the moment the child has imported netc (it says so on stderr): a signal
during Python's own start-up reaches no program's code. Every test works in its own tmp_path,
so the file runs in parallel under pytest-xdist (``-n 2``); runs are small (LeNet-5 on 8x8
digits, a tiny VGG, a 64-value read-out) and use one thread each.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "specs" / "torch_nets.net"
TINY = ROOT / "tests" / "recipe_data" / "tiny.net"
KILLS = 10
READY = "netc-test-ready"
# The child: netc's own main(), after a line that says the imports are done.
LAUNCH = ("import sys; from netc.runtime.cli import console; from netc.runtime import interrupts; "
          f"interrupts.install(); print({READY!r}, file=sys.stderr, flush=True); "
          "console(sys.argv[1:])")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class Child:
    """One ``netc`` run in a subprocess, its output and error text in files."""

    def __init__(self, argv: list, cwd: Path, tag: str):
        self.err_path, self.out_path = cwd / f"{tag}.err", cwd / f"{tag}.out"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, *map(str, argv)], cwd=cwd, env=ENV,
            stdout=self.out_path.open("w"), stderr=self.err_path.open("w"))
        self.ready_at = None

    def wait_ready(self, timeout: float = 120) -> float:
        """Seconds until the child said it is ready (or ended)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if READY in self.err_path.read_text() or self.proc.poll() is not None:
                self.ready_at = time.monotonic()
                return self.ready_at - start
            time.sleep(0.01)
        raise AssertionError("the child never started")

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        return code, self.err_path.read_text().replace(READY + "\n", "")


def run_whole(argv, cwd: Path, tag: str = "ref") -> float:
    """Run uninterrupted; return its span from ready to exit."""
    child = Child(argv, cwd, tag)
    child.wait_ready()
    code, err = child.finish()
    assert code == 0, err
    return time.monotonic() - child.ready_at


def run_killed(argv, cwd: Path, delay: float, signum: int, tag: str) -> tuple[int, str]:
    child = Child(argv, cwd, tag)
    child.wait_ready()
    time.sleep(max(0.0, delay - (time.monotonic() - child.ready_at)))
    if child.proc.poll() is None:
        child.proc.send_signal(signum)
    return child.finish()


def check_stop(code: int, err: str, signum: int, said: str = "netc: interrupted") -> bool:
    """Whether the run finished: status 0, or stopped by ``signum`` after its work was done
    (status -signum: Python gives signals back their default action while it shuts down; or
    128 + signum with no stop message: :func:`netc.runtime.interrupts.settle` ends the process
    quietly once the command has returned); the caller checks that every output is then
    complete. Else it stopped cleanly: status 128 + signum, its last line ``said`` (``netc:
    interrupted (SIGTERM)``), no traceback."""
    assert "Traceback" not in err and "core dumped" not in err, err
    if code in (0, -signum):
        return True
    name = signal.Signals(signum).name
    assert code == 128 + signum, (code, err)
    lines = err.strip().splitlines()
    if not lines or not lines[-1].startswith(said):
        return True  # stopped as it ended: the caller finds every output complete, or fails
    assert said != "netc: interrupted" or name in lines[-1], err
    return False


def no_temporaries(folder: Path) -> None:
    assert not [p.name for p in folder.rglob(".*.tmp")], list(folder.rglob("*"))


def kills(name: str, span: float):
    """(index, delay, signal) for each kill, seeded by the command's name."""
    rng = random.Random(f"interrupts-{name}")
    for i in range(KILLS):
        yield i, rng.uniform(0.0, span), rng.choice([signal.SIGINT, signal.SIGTERM])


def complete_or_absent(path: Path, reference: Path) -> bool:
    """True when ``path`` is the whole reference output, False when absent; else a failure.
    A .safetensors file is compared by its tensors and metadata (the header's order of the
    metadata keys varies from run to run)."""
    if not path.exists():
        return False
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        def read(p):
            with safe_open(str(p), "numpy") as f:
                return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}

        (meta, tensors), (want_meta, want) = read(path), read(reference)
        assert meta == want_meta and tensors.keys() == want.keys(), path
        assert all(np.array_equal(tensors[k], want[k]) for k in want), f"{path} differs"
    else:
        # compared outside the assert: pytest would diff two 45 MB byte strings for the message
        same = path.read_bytes() == reference.read_bytes()
        assert same, f"{path} is not whole"
    return True


def keep_reference(target: Path) -> Path:
    """Move the uninterrupted run's output aside, as the reference."""
    return target.rename(target.parent.parent / f"reference{target.suffix}")


# ---- the five commands ------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["compile", "fit", "weights-import"])
def test_a_killed_run_leaves_its_output_complete_or_absent(tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    argv = {
        "compile": ["compile", "resnet18", "-o", out / "r.onnx"],
        "fit": ["fit", f"{ROOT / 'examples' / 'readout.net'}:direct", "--data", "digits",
                "-o", out / "r.safetensors"],
        "weights-import": ["weights", "import", "resnet18", source_weights(tmp_path),
                           "-o", out / "r.safetensors"],
    }[command]
    target = Path(argv[-1])
    span = run_whole(argv, tmp_path)
    reference = keep_reference(target)
    finished = 0
    for i, delay, signum in kills(command, span):
        code, err = run_killed(argv, tmp_path, delay, signum, f"kill{i}")
        done = check_stop(code, err, signum)
        whole = complete_or_absent(target, reference)
        assert whole or not done, err
        finished += whole
        no_temporaries(tmp_path)
        target.unlink(missing_ok=True)
    assert finished < KILLS, "no kill landed before the end: the delays do not span the run"


def source_weights(tmp_path: Path, seed: int = 3) -> Path:
    """ResNet-18's seeded weights under other names (a foreign state dict), as .safetensors."""
    from safetensors.numpy import save_file

    from netc.compiler.frontend.loader import load
    from netc.compiler.numerics.seeded_weights import init_weights

    weights = init_weights(load("resnet18"), seed)
    path = tmp_path / f"foreign{seed}.safetensors"
    save_file({f"model.{k}": np.ascontiguousarray(v) for k, v in weights.items()}, str(path))
    return path


def test_a_killed_recipe_leaves_a_whole_png_or_none(tmp_path):
    from PIL import Image

    recipe = tmp_path / "r.recipe"
    recipe.write_text(f'recipe invert {{\n  net "{TINY}:tinyvgg"\n  init noise\n'
                      "  optimizer adam(steps=40, lr=0.05, milestones=[30])\n"
                      "  loss = code(fc8) + alpha_norm(6) + tv(2)\n}\n")
    target = tmp_path / "out" / "r.png"
    argv = ["recipe", f"{recipe}:invert", "--threads", "1", "-o", target]
    span = run_whole(argv, tmp_path)
    size = Image.open(target).size
    target.unlink()
    for i, delay, signum in kills("recipe", span):
        code, err = run_killed(argv, tmp_path, delay, signum, f"kill{i}")
        # before the optimisation: netc's line; during it: the recipe's, and the image so far
        said = "interrupted at step " if "interrupted at step" in err else "netc: interrupted"
        done = check_stop(code, err, signum, said)
        if target.exists():
            with Image.open(target) as img:
                img.load()  # a truncated PNG fails here
                assert img.size == size
        else:
            assert not done, err
        no_temporaries(tmp_path)
        target.unlink(missing_ok=True)


def test_a_killed_training_run_resumes_to_the_uninterrupted_result(tmp_path):
    """The weights are complete or absent, the checkpoint too, and ``--resume`` from any
    checkpoint a kill left ends with the very weights of an uninterrupted run."""
    import torch

    target, ckpt = tmp_path / "out" / "w.safetensors", tmp_path / "out" / "w.ckpt.pt"
    argv = ["train", f"{SPECS}:lenet5", "--data", "digits", "--epochs", "2",
            "--steps-per-epoch", "4", "--batch-size", "32", "--threads", "1", "--seed", "0",
            "--no-progress", "--checkpoint", ckpt, "-o", target]
    span = run_whole(argv, tmp_path)
    reference = keep_reference(target)
    resumed = 0
    for i, delay, signum in kills("train", span):
        target.unlink(missing_ok=True)
        ckpt.unlink(missing_ok=True)
        code, err = run_killed(argv, tmp_path, delay, signum, f"kill{i}")
        done = check_stop(code, err, signum)
        no_temporaries(tmp_path)
        if complete_or_absent(target, reference):
            continue
        assert not done, err
        if not ckpt.exists():
            continue  # stopped before the first checkpoint: nothing to resume
        state = torch.load(str(ckpt), map_location="cpu", weights_only=True)  # whole
        assert state["format"] == "netc-train-1"
        run_whole([*argv, "--resume"], tmp_path, f"resume{i}")
        assert complete_or_absent(target, reference), f"kill {i} at {delay:.2f} s"
        resumed += 1
    assert resumed, "no kill left a checkpoint to resume from"


# ---- two writers, one file --------------------------------------------------------------------
@pytest.mark.parametrize("command", ["compile", "weights-import"])
def test_two_processes_writing_one_output_leave_one_whole_file(tmp_path, command):
    target = tmp_path / "out" / ("r.onnx" if command == "compile" else "r.safetensors")

    def argv(seed: int):
        if command == "compile":
            return ["compile", "resnet18", "--seed", seed, "-o", target]
        source = tmp_path / f"foreign{seed}.safetensors"
        if not source.exists():
            source_weights(tmp_path, seed)
        return ["weights", "import", "resnet18", source, "-o", target]

    references = []
    for seed in (1, 2):
        run_whole(argv(seed), tmp_path, f"ref{seed}")
        references.append(target.rename(tmp_path / f"reference{seed}{target.suffix}"))
    children = [Child(argv(seed), tmp_path, f"both{seed}") for seed in (1, 2)]
    for child in children:
        code, err = child.finish()
        assert code == 0, err
    matches = []
    for reference in references:
        try:
            matches.append(complete_or_absent(target, reference))
        except AssertionError:
            matches.append(False)
    assert sum(matches) == 1, "the file is not one whole output of either writer"
    no_temporaries(tmp_path)


def test_the_stop_message_starts_a_line_of_its_own():
    """print() writes its text and its newline in two calls; a signal between them used to glue
    'netc: interrupted' to the end of the half-printed line (seen in CI)."""
    import io

    from netc.runtime.interrupts import LineEnds, fresh_line

    stream = LineEnds(io.StringIO())
    assert fresh_line(stream) == ""
    stream.write("torch: 1 CPU thread (--threads)")
    assert fresh_line(stream) == "\n"
    stream.write("\n")
    assert fresh_line(stream) == "" and stream.getvalue().endswith("\n")
    assert fresh_line(io.StringIO()) == ""  # a plain stream (main called in-process)


def test_a_stop_delivered_as_a_write_returns_still_gets_a_fresh_line():
    """A signal that arrives while a write blocks is handled just as the write returns: the
    stream must already know the line is unfinished (seen in CI: the message glued again)."""
    import io

    from netc.runtime.interrupts import LineEnds, fresh_line

    class Stopped(io.StringIO):
        def write(self, text):
            super().write(text)
            raise KeyboardInterrupt  # the handler's exception, right after the system call

    stream = LineEnds(Stopped())
    with pytest.raises(KeyboardInterrupt):
        stream.write("warning: no --weights given")
    assert fresh_line(stream) == "\n"
