"""Long compiles say what they are doing; quick ones stay quiet."""

from __future__ import annotations

import numpy as np

from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.runtime.files import save_onnx as save
from netc.compiler.analyses.summary import summarize
from netc.compiler.numerics.seeded_weights import init_weights


def big_net(tmp_path):
    spec = tmp_path / "big.net"  # 4200·4096 + 4096 weights: 65.6 MiB, just past the threshold
    spec.write_text("net big { input x: 4200x1x1\n  x -> flatten -> fc(4096) }\n")
    return spec


def test_progress_counts_every_weight_and_byte(tmp_path):
    graph = load("resnet18")
    seen = []
    weights = init_weights(graph, 0, lambda done, total: seen.append((done, total)))
    s = summarize(graph)
    total = s.params + s.buffers
    assert seen[-1] == (total, total) == (sum(w.size for w in weights.values()),) * 2
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    for key, w in init_weights(graph, 0).items():  # the same numbers with or without it
        np.testing.assert_array_equal(w, weights[key])
    written = []
    size = save(lower(load("lenet5")), tmp_path / "l.onnx", lambda d, t: written.append((d, t)))
    assert written[-1] == (size, size) == ((tmp_path / "l.onnx").stat().st_size,) * 2


def test_a_big_compile_reports_its_steps_and_a_small_one_does_not(cli, tmp_path):
    r = cli("compile", big_net(tmp_path), "-o", tmp_path / "big.onnx")
    assert r.code == 0, r.err
    assert "compiling big: 65.6 MiB of weights" in r.err
    assert "drawing weights, building and checking the ONNX graph:" in r.err
    assert f"writing {tmp_path / 'big.onnx'}:" in r.err
    small = cli("compile", "lenet5", "-o", tmp_path / "l.onnx")
    assert small.code == 0 and small.err == ""
