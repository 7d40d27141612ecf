"""benchmarks/gpu.py without a GPU: the one line it prints, and the logic it runs on one
(netc's float16 ONNX, the agreement check, a whole run on the CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import gpu  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py")], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and "no GPU figures measured" in lines[0]
    assert "Traceback" not in r.stderr


def test_agreement_holds_within_the_tolerance_of_each_precision():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((4, 10)).astype(np.float32) * 5
    assert gpu.agreement(ref, ref, "float32")["ok"]
    half = ref.astype(np.float16)  # one rounding: within float16's tolerance, not float32's
    assert gpu.agreement(half, ref, "float16")["ok"]
    assert 0 < gpu.agreement(half, ref, "float16")["rel"] <= 2.0 ** -11
    shifted = ref + 2e-3 * np.abs(ref).max()  # past float32's 1e-3, within float16's 1e-2
    assert not gpu.agreement(shifted, ref, "float32")["ok"]
    assert gpu.agreement(shifted, ref, "float16")["ok"]
    off = ref.copy()
    off[0, :] = off[0, ::-1]  # one image's scores reordered: its top-1 moves
    check = gpu.agreement(off, ref, "float16")
    assert not check["ok"] and check["top1"] == 0.75
    assert not gpu.agreement(np.full_like(ref, np.nan), ref, "float16")["ok"]


def test_netc_float16_onnx_agrees_with_float32_within_its_tolerance():
    from netc.compiler.frontend.loader import load
    from netc.runtime.ort import open_session

    models = gpu.onnx_models(load("mobilenet_v2"))
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype(np.float32)
    outs = {}
    for precision, model in models.items():
        session = open_session(model, "cpu")
        assert session.input_dtype == np.dtype(precision)
        outs[precision] = session.run({session.inputs[0].name: x})[0]
    assert outs["float16"].dtype == np.float16
    check = gpu.agreement(outs["float16"], outs["float32"], "float16")
    assert check["ok"], check
    assert check["rel"] > 1e-5  # really computed in half precision


def test_a_whole_run_on_the_cpu_measures_every_variant_and_checks_it():
    results = gpu.measure_net("lenet5", 2, "cpu", "aot_eager", rounds=2)
    names = [r["variant"] for r in results["rows"]]
    assert names == ["torch eager", "torch.compile (aot_eager)", "ONNX Runtime cpu float32",
                     "ONNX Runtime cpu float16"]
    assert all(r["ok"] and r["ms"] > 0 for r in results["rows"])
    text = gpu.render([results], [], "CPU")
    assert text.count("| `lenet5` | 2 |") == 4 and "**no**" not in text
