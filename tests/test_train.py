"""``netc train``: accuracy on digits, bit-for-bit repeatability, interrupt and resume, data
sources, augmentation, and DistributedDataParallel on two CPU processes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from netc.compiler.frontend.loader import load
from netc.dsl.diagnostics import UserError
from netc.runtime.data import load_dataset, make_batch, random_crop_flip
from netc.runtime.train import TrainConfig, lr_at, train

SPECS = Path(__file__).parent / "specs" / "torch_nets.net"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(tmp_path, **kw) -> TrainConfig:
    base = dict(data="digits", epochs=2, batch_size=16, steps_per_epoch=6, lr=0.1, seed=1,
                augment=True, checkpoint=str(tmp_path / "tiny.ckpt.pt"),
                output=str(tmp_path / "tiny.safetensors"), progress=False)
    base.update(kw)
    return TrainConfig(**base)


def weights(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_lenet5_learns_digits(tmp_path, cli):
    result = cli("train", f"{SPECS}:lenet5", "--data", "digits", "--epochs", "8",
                 "--optimizer", "adam", "--lr", "0.003", "--weight-decay", "0",
                 "--batch-size", "32", "--seed", "0", "--threads", "1",
                 "--checkpoint", tmp_path / "l5.ckpt.pt", "-o", tmp_path / "l5.safetensors")
    assert result.code == 0, result.err
    lines = [ln for ln in result.out.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 8
    accuracy = float(lines[-1].split("held-out loss")[1].split("acc")[1].split("%")[0])
    assert accuracy >= 95.0, result.out
    # The written weights reproduce the held-out accuracy through the lowering.
    from netc.compiler.lower_torch.module import build_module

    graph = load(f"{SPECS}:lenet5")
    module = build_module(graph, seed=123)
    from netc.runtime.weights import load_weights

    module.load_named(load_weights(graph, tmp_path / "l5.safetensors"))
    data = load_dataset("digits", graph.inputs["image"].shape)
    with torch.no_grad():
        pred = module.eval()(make_batch(data.test_x, graph.inputs["image"])).argmax(1)
    assert float((pred == data.test_y).float().mean()) * 100 == pytest.approx(accuracy, abs=0.01)


def test_a_seed_repeats_bit_for_bit(tmp_path):
    graph = load(f"{SPECS}:tiny")
    a = weights(train(graph, tiny_config(tmp_path / "a"), log=lambda s: None).module)
    b = weights(train(graph, tiny_config(tmp_path / "b"), log=lambda s: None).module)
    c = weights(train(graph, tiny_config(tmp_path / "c", seed=2), log=lambda s: None).module)
    assert_same(a, b)
    assert not torch.equal(a["fc.weight"], c["fc.weight"])
    # The written file holds the weights without batch norm's step counters.
    from safetensors.torch import load_file

    written = load_file(str(tmp_path / "a" / "tiny.safetensors"))
    assert "bn1.num_batches_tracked" in a
    assert_same(written, {k: v for k, v in a.items() if not k.endswith("num_batches_tracked")})


def test_an_interrupted_and_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    graph = load(f"{SPECS}:tiny")
    whole = train(graph, tiny_config(tmp_path / "whole", epochs=3), log=lambda s: None)
    cfg = tiny_config(tmp_path / "cut", epochs=3)
    logs = []
    with pytest.raises(KeyboardInterrupt):  # "Ctrl-C" in the middle of epoch 2
        train(graph, cfg, log=logs.append, interrupt_after=9)
    assert any("interrupted at epoch 2, step 3" in line for line in logs)
    assert not (tmp_path / "cut" / "tiny.safetensors").exists()
    with pytest.raises(KeyboardInterrupt):  # and again, in epoch 3, after resuming
        train(graph, TrainConfig(**{**cfg.__dict__, "resume": True}), log=logs.append,
              interrupt_after=5)
    resumed = train(graph, TrainConfig(**{**cfg.__dict__, "resume": True}), log=logs.append)
    assert_same(weights(whole.module), weights(resumed.module))
    assert [h.__dict__ | {"seconds": 0} for h in whole.history] == \
        [h.__dict__ | {"seconds": 0} for h in resumed.history]
    # Checkpoints are replaced in one rename: no temporary files are left behind.
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == \
        ["tiny.ckpt.pt", "tiny.safetensors"]


def test_resume_from_an_epoch_checkpoint_after_a_kill(tmp_path):
    """A run killed outright keeps its last epoch checkpoint; resuming from it gives the
    uninterrupted run's weights."""
    import shutil

    graph = load(f"{SPECS}:tiny")
    cfg = tiny_config(tmp_path / "whole", epochs=2)
    saved = tmp_path / "after-epoch-1.pt"

    def log(line):  # epoch 2's line is printed before epoch 2's checkpoint replaces epoch 1's
        if line.startswith("epoch 2/2"):
            shutil.copy(cfg.checkpoint, saved)

    whole = train(graph, cfg, log=log)
    resumed = train(graph, TrainConfig(**{**cfg.__dict__, "resume": True,
                                          "checkpoint": str(saved),
                                          "output": str(tmp_path / "resumed.safetensors")}),
                    log=lambda s: None)
    assert len(resumed.history) == 2
    assert_same(weights(whole.module), weights(resumed.module))


def test_training_errors_are_user_errors(tmp_path, cli):
    r = cli("train", "fractalnet", "--data", "digits", "--set", "classes=3", "--epochs", "1")
    assert r.code == 1 and "digits has 10 classes but fractalnet scores 3" in r.err
    r = cli("train", f"{SPECS}:tiny", "--resume", "--checkpoint", tmp_path / "none.pt")
    assert r.code == 1 and "no checkpoint at" in r.err
    r = cli("train", f"{SPECS}:tiny", "--data", "mnist")
    assert r.code == 1 and "expected digits, folder:PATH or cifar10:PATH" in r.err
    r = cli("train", f"{SPECS}:tiny", "--data", f"folder:{tmp_path / 'missing'}")
    assert r.code == 1 and "no such folder" in r.err
    assert all("Traceback" not in x for x in (r.err, r.out))


def test_lr_schedules():
    cfg = TrainConfig(lr=0.1, schedule="step", milestones=(0.5, 0.75))
    assert [round(lr_at(cfg, p), 6) for p in (0, 0.49, 0.5, 0.8)] == [0.1, 0.1, 0.01, 0.001]
    cfg = TrainConfig(lr=0.1, schedule="cosine")
    assert lr_at(cfg, 0) == pytest.approx(0.1) and lr_at(cfg, 0.5) == pytest.approx(0.05)


def test_random_crop_and_flip():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6) + 1
    out = random_crop_flip(x, pad=0)  # no padding: each image is itself or its mirror
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))
    out = random_crop_flip(x.repeat(50, 1, 1, 1), pad=2)
    assert out.shape == (100, 3, 6, 6)
    # Every crop is a 6x6 window of the zero-padded image, shifted by at most 2 pixels.
    padded = torch.nn.functional.pad(x.repeat(50, 1, 1, 1), (2, 2, 2, 2))
    for i in range(0, 100, 7):
        windows = [padded[i, :, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    assert (out == 0).any()  # some crops reach into the padding


def test_make_batch_resizes_and_normalises():
    from netc.compiler.ir import InputSpec

    imgs = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    spec = InputSpec("image", (3, 16, 16), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    x = make_batch(imgs, spec)
    assert x.shape == (2, 3, 16, 16)
    torch.testing.assert_close(x, torch.full_like(x, 2.0))


def test_folder_data_set(tmp_path):
    from PIL import Image

    for label, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / label).mkdir()
        for i in range(5):
            Image.new("RGB", (12, 10), colour).save(tmp_path / label / f"{i}.png")
    (tmp_path / "red" / "notes.txt").write_text("not an image")
    data = load_dataset(f"folder:{tmp_path}", (3, 8, 8), holdout=0.2)
    assert data.classes == ["blue", "red"]
    assert len(data.train_y) == 8 and len(data.test_y) == 2
    assert data.train_x.shape[1:] == (3, 8, 8)
    red = data.train_x[data.train_y == 1]
    assert torch.all(red[:, 0] == 255) and torch.all(red[:, 2] == 0)
    (tmp_path / "blue" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read image"):
        load_dataset(f"folder:{tmp_path}", (3, 8, 8))


def write_cifar(root: Path, n: int = 20) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n)]}
        with open(root / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)


def test_cifar10_batches_and_a_refused_pickle(tmp_path):
    write_cifar(tmp_path / "cifar")
    data = load_dataset(f"cifar10:{tmp_path / 'cifar'}", (3, 32, 32))
    assert data.train_x.shape == (100, 3, 32, 32) and data.test_x.shape == (20, 3, 32, 32)
    assert data.classes[0] == "airplane"
    with open(tmp_path / "cifar" / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    np.testing.assert_array_equal(data.test_x[3].numpy().reshape(-1), raw[b"data"][3])

    class Payload:
        def __reduce__(self):
            return (os.system, ("true",))

    with open(tmp_path / "cifar" / "test_batch", "wb") as f:
        pickle.dump({b"data": Payload(), b"labels": []}, f)
    with pytest.raises(UserError, match="refused to load"):
        load_dataset(f"cifar10:{tmp_path / 'cifar'}", (3, 32, 32))


def test_two_cpu_processes_under_torchrun_end_with_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(Path(__file__).parent / "torch_ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert_same(rank0, rank1)
    # Training moved the weights (so the equality means something), and rank 0's file holds
    # the same weights.
    from netc.compiler.numerics.seeded_weights import init_weights
    from safetensors.torch import load_file

    start = init_weights(load(f"{SPECS}:tiny"), seed=3)
    assert not np.array_equal(rank0["fc.weight"].numpy(), start["fc.weight"])
    final = load_file(str(tmp_path / "final.safetensors"))
    assert_same({k: rank0[k] for k in final}, final)


def test_gated_net_resumes_bit_for_bit_and_skips_blocks(tmp_path):
    """Stochastic depth and drop-path skip bodies in training; the gates come from
    (seed, step), so a run cut in the middle of an epoch and resumed ends where a whole one
    does."""
    graph = load(f"{SPECS}:gated_tiny")
    cfg = dict(augment=False, batch_size=8, steps_per_epoch=5)
    whole = train(graph, tiny_config(tmp_path / "whole", epochs=2, **cfg), log=lambda s: None)
    cut = tiny_config(tmp_path / "cut", epochs=2, **cfg)
    with pytest.raises(KeyboardInterrupt):
        train(graph, cut, log=lambda s: None, interrupt_after=7)
    resumed = train(graph, TrainConfig(**{**cut.__dict__, "resume": True}), log=lambda s: None)
    assert_same(weights(whole.module), weights(resumed.module))
    # What the steps of that run drew: some steps closed a block (its convs did not run).
    module = whole.module.train()
    ran = []
    conv = module.get_submodule("conv5")  # the last conv of block2's body
    hook = conv.register_forward_hook(lambda *a: ran.append(1))
    closed = 0
    for step in range(10):
        module.seed_gates(1, step)
        before = len(ran)
        module(torch.zeros(2, 1, 8, 8))
        closed += len(ran) == before
    hook.remove()
    assert 0 < closed < 10  # block2 survives with p = 0.5


def test_two_gated_processes_agree_with_each_other_and_with_one_process(tmp_path):
    """Two gloo ranks draw the same gates for every step (so they skip the same blocks), end
    with identical weights, and — the net has no batch norm, so per-rank batches of 8 are one
    batch of 16 — with the weights of one process trained on the same examples."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(Path(__file__).parent / "torch_ddp_worker.py"), str(tmp_path), "gated_tiny",
           "8"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert_same(rank0, rank1)
    graph = load(f"{SPECS}:gated_tiny")
    single = train(graph, TrainConfig(data="digits", epochs=2, batch_size=16, steps_per_epoch=4,
                                      lr=0.1, seed=3, augment=False, progress=False,
                                      checkpoint=str(tmp_path / "one.pt"),
                                      output=str(tmp_path / "one.safetensors")),
                   log=lambda s: None)
    one = weights(single.module)
    assert one.keys() == rank0.keys()
    for k in one:  # the same sums in another order: equal to float32 rounding
        torch.testing.assert_close(rank0[k], one[k], rtol=1e-5, atol=1e-6)
