"""The README's other figures (issue 23, item 4): each names the command that makes it, a figure
that depends on a seed gives its spread over seeds, and where a run is cheap it is run here at
small size and its output checked against what the README says.

The eigenfaces, t-SNE and probe figures have their own checks in ``tests/test_figures.py``.
``python -m pytest -s tests/test_readme_figures.py`` prints the figures it measures;
``NETC_README_SLOW=1`` adds the full-size runs.
"""

from __future__ import annotations

import os
import re
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SLOW = pytest.mark.skipif(not os.environ.get("NETC_README_SLOW"),
                          reason="full-size run; NETC_README_SLOW=1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN = ("train lenet5 --data digits --optimizer adam --lr 0.003 --threads 1 --no-progress "
         "--seed 0").split()

# Each figure: words of its paragraph (or bullet), the command it must name there, and whether
# it depends on a seed (then the paragraph must give a spread, ±).
FIGURES = {
    "LeNet-5, Adam, held-out accuracy": ("reaches 95.54% held-out accuracy",
                                         "for s in 0 1 2 3 4; do netc train lenet5", True),
    "LeNet-5, SGD, held-out accuracy": ("leave tanh's plateau",
                                        "for s in 0 1 2 3 4; do netc train lenet5", True),
    "training time per epoch": ("s per epoch with", "netc train lenet5", False),
    "1 vs 2 threads": ("threads differ by", "tests/test_readme_figures.py -k threads", False),
    "draw timings": ("whole `netc draw` process", "netc draw resnet152", False),
    "top-activations traced peak": ("traced peak", "tests/test_readme_figures.py -k traced",
                                    False),
    "style texture loss": ("gravel-like texture", "netc recipe examples/style.recipe", True),
    "Caffe conformance worst case": ("the worst, MVN", "tests/test_caffe_conformance.py", False),
    "Caffe-trained LeNet on digits": ("1529 of scikit-learn's 1797 digits",
                                      "tests/test_caffe_conformance.py", False),
    "seeded outputs": ("largest |logit|", "tests/test_readme_figures.py -k seeded", False),
    # benchmarks/figures.py's figures (tests/test_figures.py runs the commands small)
    "detection AUC": ("separates faces from non-faces", "netc eigenfaces detect --splits", True),
    "identification": ("the nearest 20-component code", "netc eigenfaces identify", True),
    "t-SNE 5-NN": ("output codes give", "netc embed lenet5", True),
    "f6 codes": ("The 84-dimensional f6 codes", "benchmarks/figures.py --part lenet", True),
    "linear probes": ("mapped to 64 values", "benchmarks/figures.py --part lenet", True),
}


def _paragraph(anchor: str) -> str:
    blocks = re.split(r"\n\s*\n|\n(?=\s*- )", README)
    found = [b for b in blocks if anchor in re.sub(r"\s+", " ", b)]
    assert found, f"the README no longer says {anchor!r}"
    return re.sub(r"\s+", " ", found[0])


@pytest.mark.parametrize("what", FIGURES)
def test_readme_names_the_command_and_the_spread(what):
    anchor, command, seeded = FIGURES[what]
    text = _paragraph(anchor)
    assert command in text, f"{what}: {text!r} does not name {command!r}"
    if seeded:
        assert re.search(r"\d ± \d", text), f"{what}: {text!r} has no spread over seeds"


def _train(cli, tmp_path, name: str, *extra: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    out = tmp_path / f"{name}.safetensors"
    r = cli(*TRAIN, "--checkpoint", tmp_path / f"{name}.ckpt.pt", "-o", out, *extra)
    assert r.code == 0, r.err
    # The figure the README's loop reads: the last epoch's held-out accuracy.
    assert re.search(r"^epoch (\d+)/\1 .* held-out loss \S+ acc \d+\.\d\d%", r.out, re.M), r.out
    return load_file(out)


def test_threads_repeat_bit_for_bit_and_differ_only_by_rounding(cli, tmp_path, capsys):
    """One seed and thread count repeats exactly; 1 and 2 threads differ in rounding only."""
    one = _train(cli, tmp_path, "one", "--epochs", "2")
    again = _train(cli, tmp_path, "again", "--epochs", "2")
    two = _train(cli, tmp_path, "two", "--epochs", "2", "--threads", "2")
    assert all(np.array_equal(one[k], again[k]) for k in one)
    diff = max(float(np.abs(one[k] - two[k]).max()) for k in one)
    with capsys.disabled():
        print(f"\n1 and 2 threads, LeNet-5 after two epochs: max |difference| {diff:.2g}")
    stated = float(re.search(r"threads differ by (\S+) in", _paragraph("threads differ by"))
                   .group(1))
    assert diff < 1e-6 and stated < 1e-6  # rounding, not another trajectory


def test_draw_prints_what_it_laid_out(cli, tmp_path):
    r = cli("draw", "resnet152", "-o", tmp_path / "r.svg")
    assert r.code == 0, r.err
    assert re.search(r"wrote \S+: resnet152, 516 nodes, 50 calls", r.out + r.err), r.out
    assert (tmp_path / "r.svg").read_text().lstrip().startswith("<")


def _traced_peak(n: int) -> float:
    """The top-activations stream over ``digits:n`` (LeNet-5 c3, 16 units, k=4), as
    ``tests/test_top_activations.py`` runs it: Python's traced peak in decimal MB, after one
    untraced warm-up batch (the first call's one-off allocations moved the peak of 200 digits
    between 0.97 and 1.7 MB, depending on what the process had run before)."""
    import torch

    from netc.compiler.analyses.receptive import fields
    from netc.compiler.frontend.loader import load
    from netc.compiler.lower_torch.module import build_module
    from netc.runtime.images import Preprocess
    from netc.runtime.views.sources import batches, open_source
    from netc.runtime.views.top import TopK

    src = open_source(f"digits:{n}")
    prep = Preprocess((1, 32, 32), layout="gray", crop=1.0)
    graph = load("lenet5")
    net = build_module(graph).eval()
    top = TopK(list(range(16)), 4, fields(graph)["c3"])
    with torch.no_grad():
        items, pics, x = next(iter(batches(src.items[:32], prep, 32)))
        TopK([0], 4, fields(graph)["c3"]).add([i.name for i in items], pics,
                                              net(torch.from_numpy(x), taps=["c3"])["c3"].numpy())
    tracemalloc.start()
    with torch.no_grad():
        for items, pics, x in batches(src.items, prep, 32):
            acts = net(torch.from_numpy(x), taps=["c3"])["c3"].numpy()
            top.add([i.name for i in items], pics, acts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert top.seen == n
    return peak / 1e6


def _stated_peaks() -> list[float]:
    # "0.86–0.89 MB for 200 digits, 0.98–1.01 MB for all 1,797": a range over processes
    m = re.search(r"traced peak[^:]*: ([\d.]+)(?:–[\d.]+)? MB for 200 digits, "
                  r"([\d.]+)(?:–[\d.]+)? MB for all 1,797", _paragraph("traced peak"))
    assert m, "the README's traced-peak sentence changed"
    return [float(m.group(1)), float(m.group(2))]


def test_traced_peak_for_200_digits(capsys):
    peak = _traced_peak(200)
    with capsys.disabled():
        print(f"\ntop-activations traced peak, 200 digits: {peak:.2f} MB")
    assert peak == pytest.approx(_stated_peaks()[0], rel=0.1)


@SLOW
def test_traced_peak_for_all_digits(capsys):
    peak = _traced_peak(1797)
    with capsys.disabled():
        print(f"\ntop-activations traced peak, 1,797 digits: {peak:.2f} MB")
    assert peak == pytest.approx(_stated_peaks()[1], rel=0.1)


CONFORMANCE = ROOT / ".." / "shared" / "reference" / "caffe" / "conformance"


def _caffe_errors(case: Path, tmp_path: Path, cli) -> float:
    """One conformance case through ``netc weights import`` + ``netc compile`` + ONNX Runtime:
    max |error| / max |Caffe's output|."""
    import onnxruntime as ort

    proto, args = case / "model.prototxt", []
    if (case / "weights.caffemodel").exists():
        r = cli("weights", "import", proto, case / "weights.caffemodel", "-o", tmp_path / "w.safetensors")
        assert r.code == 0, r.err
        args = ["--weights", tmp_path / "w.safetensors"]
    assert cli("compile", proto, "-o", tmp_path / "m.onnx", *args).code == 0
    xs = ([np.load(case / "input.npy")] if (case / "input.npy").exists()
          else [np.load(case / f"input_{i}.npy") for i in range(2)])
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    out = session.run(None, {i.name: x for i, x in zip(session.get_inputs(), xs)})[-1]
    ref = np.load(case / "expected.npy")
    return float(np.abs(out.reshape(ref.shape) - ref).max() / np.abs(ref).max())


@SLOW
@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="no shared/reference/caffe/conformance")
def test_caffe_conformance_worst_case(cli, tmp_path, capsys):
    cases = [p for p in sorted(CONFORMANCE.iterdir()) if (p / "expected.npy").exists()]
    errors = {p.name: _caffe_errors(p, tmp_path, cli) for p in cases}
    worst = sorted(errors, key=errors.get, reverse=True)
    with capsys.disabled():
        print("\nCaffe conformance, worst |error| / max|ref| through ONNX Runtime: "
              + ", ".join(f"{n} {errors[n]:.2g}" for n in worst[:3]))
    stated = re.search(r"the worst, MVN, (\S+) through", _paragraph("the worst, MVN"))
    assert worst[0] == "layer_mvn"
    assert errors["layer_mvn"] == pytest.approx(float(stated.group(1)), rel=0.1)


def test_style_recipe_prints_the_losses_the_readme_quotes(cli, tmp_path):
    """The texture run at small size: it prints "loss A -> B", the figure the README gives over
    seeds (the full size, 128 px and 150 steps, takes about 46 s of CPU a seed)."""
    out = tmp_path / "t.png"
    r = cli("recipe", ROOT / "examples" / "style.recipe", "--size", "32", "--steps", "3",
            "--set", "content_weight=0", "--set", "style_weight=1e6", "--threads", "1",
            "--seed", "1", "-o", out)
    assert r.code == 0, r.err
    m = re.search(r"loss (\S+) -> (\S+) in 3 steps", r.out + r.err)
    assert m, r.out + r.err
    assert float(m.group(2)) < float(m.group(1)) and out.stat().st_size > 0


def test_seeded_outputs_are_of_the_size_the_readme_says(capsys):
    """Eval mode, ``--seed 0``, two standard-normal images: the largest |logit| per net."""
    import torch

    import netc

    text = _paragraph("largest |logit|")
    for name in ("cifar_resnet1202", "mobilenet_v2", "preact_resnet1001"):
        net = netc.load(name)
        [shape] = net.inputs.values()
        x = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            top = float(net.to_torch(seed=0).eval()(x).abs().max())
        with capsys.disabled():
            print(f"\n{name}: largest |logit| {top:.3g}")
        stated = re.search(rf"([\d.]+) for `{name}`", text)
        assert stated, f"the README gives no figure for {name}"
        assert top == pytest.approx(float(stated.group(1)), rel=0.1)


def test_the_hostile_corpus_holds_what_the_readme_says():
    """"over 1,800 such inputs" (Robustness and Development): the cases of the default run."""
    from hostile.corpus import all_cases

    said = {int(m.replace(",", "")) for m in re.findall(
        r"over ([\d,]+) (?:such|hostile) inputs", README)}
    assert said == {1800}
    assert len(list(all_cases(False))) > 1800
