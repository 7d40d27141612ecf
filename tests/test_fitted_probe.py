"""Linear probes (Alain & Bengio 2016) on a LeNet-5 trained here on scikit-learn's digits.

Codes are compared at one width (64 values: a fixed random projection of every wider code),
since a wide code is linearly separable whatever it encodes; at full width this LeNet's widest
early layers are the easiest to read (measured: c1 4,704 values 98.6%, s2 99.4%, f6 96.1%).
Measured at width 64 when this test was written, held-out accuracy by depth: image 92.5, c1 93.3,
s2 91.6, c3 93.3, s4 93.3, c5 94.2, f6 96.7, output 95.5; on the untrained net f6 gives 94.2 and
the output 61.8."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from netc.compiler.frontend.loader import load
from netc.runtime.fit import probe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAYERS = ["image", "c1_tanh", "s2", "c3_tanh", "s4", "c5_tanh", "f6_tanh", "output"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    from netc.runtime.train import TrainConfig, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("lenet")
    cfg = TrainConfig(data="digits", epochs=8, optimizer="adam", lr=0.003, progress=False,
                      output=str(out / "lenet.safetensors"), checkpoint=str(out / "c.pt"))
    result = train(load("lenet5"), cfg, log=lambda line: None)
    assert result.history[-1].test_acc > 0.93
    return out / "lenet.safetensors"


def test_separability_grows_with_depth_on_a_trained_lenet(trained):
    from netc.runtime.weights import load_weights

    graph = load("lenet5")
    results = probe(graph, load_weights(graph, trained), "digits", LAYERS, features=64,
                    log=lambda line: None)
    acc = [r.accuracy for r in results]
    assert [r.features for r in results] == [64] * 7 + [10]
    assert acc[LAYERS.index("f6_tanh")] >= acc[0] + 0.02, acc
    assert max(acc[-2:]) >= max(acc[:5]) + 0.01, acc
    rho = spearmanr(np.arange(len(acc)), acc).statistic
    assert rho >= 0.6, (rho, acc)
    untrained = probe(graph, None, "digits", ["f6_tanh", "output"], features=64,
                      log=lambda line: None)
    assert untrained[1].accuracy < acc[-1] - 0.1  # random class scores read out badly


def test_probe_command(trained, cli):
    r = cli("probe", "lenet5", "--layers", "s4,f6_tanh", "--weights", str(trained),
            "--ridge", "0.1")
    assert r.code == 0, r.err
    assert "s4" in r.out and "f6_tanh" in r.out and "held-out" in r.out
    r = cli("probe", "lenet5", "--layers", "c9")
    assert r.code == 1 and "no layer named 'c9'" in r.err


def test_a_folder_too_small_to_probe_is_one_line(cli, tmp_path):
    """Two images split into one training and one held-out image leave nothing to choose λ
    on: one line naming --data, not an IndexError from the SVD of no rows."""
    from PIL import Image

    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        Image.new("L", (28, 28), 40 if cls == "a" else 200).save(tmp_path / "data" / cls / "x.png")
    r = cli("probe", "lenet5", "--data", f"folder:{tmp_path / 'data'}", "--layers", "c1")
    assert r.code == 1 and "Traceback" not in r.err, r.err
    assert "--data folder:" in r.err and "a probe needs at least" in r.err, r.err
