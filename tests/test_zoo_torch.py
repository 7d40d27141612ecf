"""The zoo's counts agree with PyTorch's: the lowered module of a zoo net has exactly the
parameters ``netc summary`` reports, and running it gives every shape the IR inferred."""

from __future__ import annotations

import pytest

from netc.compiler.frontend.loader import load
from netc.compiler.analyses.summary import summarize

torch = pytest.importorskip("torch")

# One net per family, small enough to build in well under a second each (VGG's and AlexNet's
# fc layers would spend seconds drawing random weights; their counts are checked against Caffe).
NETS = ["lenet5", "allcnn_c", "cifar_resnet20", "cifar_resnet110_sd", "googlenet", "resnet18",
        "resnet50"]


@pytest.mark.parametrize("name", NETS)
def test_torch_module_has_the_summarys_parameters_and_shapes(name):
    from netc.compiler.lower_torch.module import build_module

    graph = load(name)
    net = build_module(graph, seed=0).eval()
    assert sum(p.numel() for p in net.parameters()) == summarize(graph).params
    (inp,) = graph.inputs.values()
    taps = [n.name for n in graph if n.op != "input"]
    with torch.no_grad():
        values = net(torch.zeros((1,) + inp.shape), taps=taps)
    wrong = {t: tuple(values[t].shape[1:]) for t in taps
             if tuple(values[t].shape[1:]) != graph[t].shape}
    assert not wrong, f"{name}: torch shapes differ from the IR: {wrong}"


def test_lenet5_subsampling_is_one_coefficient_and_bias_per_map():
    from netc.compiler.lower_torch.module import build_module

    net = build_module(load("lenet5"), seed=0)
    state = net.state_dict()
    assert tuple(state["s2.coef.weight"].shape) == (6, 1, 1, 1)
    assert tuple(state["s4.coef.bias"].shape) == (16,)
