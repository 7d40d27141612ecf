"""Running data through a net to fit its fitted layers (``netc fit``) and to probe its codes
(``netc probe``).

**Fitting.** The fitted nodes (:func:`netc.compiler.ops.fitted.is_fitted`: ``pca``,
``pca_reconstruct``, ``pca_distance``, ``fc(fit=...)``) are solved in graph order: nodes with no
fitted node upstream first, in one pass over the data; then those that depend only on those, and
so on. Every other weight stays as given (``--weights``, else netc's seeded initialiser). Each
pass streams the data in batches through the torch module, tapping the inputs of the nodes it
fits, into one :class:`netc.compiler.numerics.fitting.Moments` per node (count, mean, centred
scatter; and for
an ``fc`` the cross scatter with the one-hot class label), so the memory of a fit is
O(F² + F·classes) per node whatever the number of images. (The images themselves are held as a
uint8 or float tensor by the data loader, as ``netc train`` holds them.)

**Probing** (Alain & Bengio 2016): the frozen code of each named layer, flattened, gets a ridge
read-out onto the one-hot labels; λ is chosen on a fifth of the training split from a grid
relative to σ₁², the read-out is refitted on the whole training split, and the accuracy on the
held-out split is reported. Codes are held in memory here (n × F), and solved with the SVD of
:func:`netc.compiler.numerics.fitting.ridge_path`. A wide code is easier to separate linearly
whatever it
encodes (Cover's theorem), so ``features=N`` maps every wider code to N values by a fixed random
projection first, and layers compare at one width.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from netc.compiler.ir import Graph
from netc.compiler.numerics.fitting import FitError, Moments, ridge_path
from netc.compiler.ops.fitted import is_fitted
from netc.dsl.diagnostics import Diagnostic, DiagnosticError, UserError
from netc.runtime.data import load_dataset, make_batch, read_flat_folder

LFW_FACES = 100  # skimage.data.lfw_subset(): rows 0-99 are faces, 100-199 are not
# A fit keeps an F×F float64 scatter per fitted layer, a probe the n×F codes of a layer: past
# this many bytes they are refused with the numbers, rather than exhausting memory.
MAX_BYTES = 2 * 2**30
# A fitted layer's inputs (and targets) are kept while they take at most this many bytes, so
# least squares is solved from the SVD of the data (precise to ε·σ₁, not √ε·σ₁); past it, from
# the streamed scatter alone.
KEEP_BYTES = 256 * 2**20


@dataclass
class Images:
    """Images for fitting: ``x`` uint8-scaled floats or uint8 (N×C×H×W, 0..255), optional
    integer ``labels`` with their ``classes``."""

    name: str
    x: torch.Tensor
    labels: torch.Tensor | None = None
    classes: list[str] | None = None


def lfw_rows(spec: str = "") -> np.ndarray:
    """Rows of ``skimage.data.lfw_subset()`` as float64 images in [0, 1]; ``spec`` is "" (the
    100 faces) or ``A-B`` (rows A to B inclusive)."""
    from skimage import data

    images = data.lfw_subset()
    if not spec:
        return images[:LFW_FACES]
    lo, sep, hi = spec.partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise UserError(f"--data lfw:{spec}: expected rows as A-B, e.g. lfw:0-79") from None
    if not 0 <= a <= b < len(images):
        raise UserError(f"--data lfw:{spec}: rows must lie in 0-{len(images) - 1}")
    return images[a:b + 1]


def load_images(source: str, input_shape) -> Images:
    """``digits`` (its training split, with labels), ``lfw`` / ``lfw:A-B``, ``folder:PATH``
    (class sub-folders give labels; a flat folder of images has none), ``cifar10:PATH``."""
    kind, _, arg = source.partition(":")
    if kind == "lfw":
        rows = lfw_rows(arg)
        return Images(f"lfw_subset {arg or '0-99'}", torch.from_numpy(rows[:, None] * 255.0))
    if kind == "folder" and arg and _flat_folder(Path(arg)):
        return Images(source, read_flat_folder(Path(arg), input_shape))
    if kind in ("digits", "folder", "cifar10"):
        d = load_dataset(source, input_shape)
        return Images(d.name + " (training split)", d.train_x, d.train_y, d.classes)
    raise UserError(f"--data {source!r}: expected digits, lfw, lfw:A-B, folder:PATH or "
                    "cifar10:PATH")


def _flat_folder(root: Path) -> bool:
    return root.is_dir() and not any(p.is_dir() and not p.name.startswith(".")
                                     for p in root.iterdir())


def batches(graph: Graph, images: Images, batch_size: int):
    """(network input, labels or None) per batch, prepared as the spec's input line says."""
    spec = next(iter(graph.inputs.values()))
    for i in range(0, len(images.x), batch_size):
        x = make_batch(images.x[i:i + batch_size], spec)
        y = None if images.labels is None else images.labels[i:i + batch_size]
        yield x, y


def fit_order(graph: Graph) -> list[list[str]]:
    """Fitted nodes in passes: a node's pass is the number of fitted nodes upstream of it."""
    level: dict[str, int] = {}
    passes: dict[int, list[str]] = {}
    for node in graph:
        up = max((level[i] + (1 if is_fitted(graph[i]) else 0) for i in node.inputs), default=0)
        level[node.name] = up
        if is_fitted(node):
            passes.setdefault(up, []).append(node.name)
    return [passes[k] for k in sorted(passes)]


def fit_graph(graph: Graph, weights: dict[str, np.ndarray], images: Images,
              batch_size: int = 256, log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """``weights`` with every fitted node solved from ``images`` (see the module docstring)."""
    from netc.compiler.lower_torch.module import build_module

    order = fit_order(graph)
    if not order:
        raise UserError(f"{graph.name} has no fitted layers (pca, pca_reconstruct, "
                        "pca_distance, fc(..., fit=...))")
    weights = dict(weights)
    for names in order:
        for name in names:
            node = graph[name]
            features = int(np.prod(graph[node.inputs[0]].shape))
            if 8 * features * features > MAX_BYTES:
                raise UserError(f"{name}: its input has {features:,} values; fitting it keeps "
                                f"a {features:,}x{features:,} scatter matrix "
                                f"({8 * features**2 / 2**30:.1f} GiB, the limit is "
                                f"{MAX_BYTES / 2**30:.0f} GiB): pool or project the input first")
            if node.op == "fc":
                if images.labels is None:
                    raise UserError(f"{name}: a fitted fc needs class labels; {images.name} "
                                    "has none (use digits or a folder with class sub-folders)")
                if node.attrs.out != len(images.classes):
                    raise UserError(f"{name}: fc({node.attrs.out}) cannot be fitted to "
                                    f"{len(images.classes)} classes of {images.name}")
        module = build_module(graph, weights).eval()
        taps = list(dict.fromkeys(graph[n].inputs[0] for n in names))
        moments = {n: Moments(keep_bytes=KEEP_BYTES) for n in names}
        with torch.no_grad():
            for x, y in batches(graph, images, batch_size):
                codes = module(x, taps=taps)
                for n in names:
                    code = codes[graph[n].inputs[0]].flatten(1).double().numpy()
                    target = None
                    if graph[n].op == "fc":
                        target = np.eye(graph[n].attrs.out)[y.numpy()]
                    moments[n].update(code, target)
        for n in names:
            node = graph[n]
            fitted, line = _solve(graph, node, moments[n], images)
            for key, value in fitted.items():
                weights[f"{n}.{key}"] = value
            log(f"{n}: {line}")
    return weights


def _solve(graph: Graph, node, moments: Moments, images: Images):
    """``node``'s fitted weights and its line; a bad fit is one error: about the data (too
    few images, non-finite codes) naming them, about the spec (an rcond the solver cannot
    honour) located at the node."""
    if moments.n < 2:
        raise UserError(f"{node.name}: fitting needs at least 2 images; {images.name} has "
                        f"{moments.n}")
    k = node.attrs.get("k")  # a subspace: k directions need k + 1 centred samples
    if k and moments.n <= k:
        raise UserError(f"{node.name}: {k} principal components need at least {k + 1} images "
                        f"(n images span n - 1 directions about their mean); {images.name} "
                        f"has {moments.n}")
    if not moments.finite:
        raise UserError(f"{node.name}: its input has NaN or infinite values for some of "
                        f"{images.name} (the weights upstream of it?), so nothing can be fitted")
    ins = [graph[i].shape for i in node.inputs]
    try:
        fitted, line = node.opdef.fit_weights(node.attrs, ins, node.shape, moments)
    except FitError as err:
        if node.span is None:
            raise UserError(f"{node.name}: {err}") from None
        raise DiagnosticError([Diagnostic(node.span, f"{node.name}: {err}")]) from None
    bad = [k for k, v in fitted.items() if not np.isfinite(v).all()]
    if bad:  # float32 overflow of a finite float64 solution, say
        raise UserError(f"{node.name}: the fitted {', '.join(bad)} is not finite")
    return fitted, line


def fit_signature(graph: Graph) -> str:
    """What the fitted weights depend on: for each fitted node, the ops on its backward slice
    (``flatten1=flatten,prepared=unitnorm,face_space=pca``), one line per node."""
    lines = []
    for node in graph:
        if node.op != "input" and is_fitted(node):
            ops = ",".join(f"{n.name}={n.op}" for n in graph.slice([node.name]) if n.op != "input")
            lines.append(ops)
    return "\n".join(lines)


def check_fitted_for(graph: Graph, path) -> None:
    """Refuse weights that ``netc fit`` solved for another net (say, one without unitnorm):
    their fitted layers would not mean what this net's mean. Files without the record pass."""
    from netc.runtime.weights import read_metadata

    recorded = read_metadata(path).get("netc_fit")
    if recorded is not None and recorded != fit_signature(graph):
        mine = set(fit_signature(graph).replace("\n", ",").split(","))
        theirs = set(recorded.replace("\n", ",").split(","))
        diff = ", ".join(sorted(theirs - mine)) or "(different layers)"
        raise UserError(f"{path} was fitted for another net ({diff}); refit it with netc fit "
                        "for this one, or give the same --set values")


@dataclass(frozen=True)
class ProbeResult:
    """One layer's probe: its code width (after any projection), the ridge λ used, and the
    accuracy of the read-out on the training and on the held-out split."""

    layer: str
    features: int
    ridge: float
    train_accuracy: float
    accuracy: float


def codes(graph: Graph, module, x: torch.Tensor, layers: list[str], spec,
          features: int | None = None, batch_size: int = 256) -> dict[str, np.ndarray]:
    """The flattened code of each layer for uint8 images ``x`` (float64, n × F); with
    ``features``, codes wider than that go through :func:`random_projection` batch by batch."""
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    projections: dict[str, np.ndarray | None] = {}
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            taps = module(make_batch(x[i:i + batch_size], spec), taps=layers)
            for layer in layers:
                code = taps[layer].flatten(1).double().numpy()
                if layer not in projections:
                    width = code.shape[1]
                    wide = features is not None and width > features
                    kept = features if wide else width
                    if 8 * len(x) * kept > MAX_BYTES:
                        raise UserError(f"{layer}: {len(x):,} codes of {kept:,} values need "
                                        f"{8 * len(x) * kept / 2**30:.1f} GiB (the limit is "
                                        f"{MAX_BYTES / 2**30:.0f} GiB); compare at one width "
                                        "with --features N")
                    projections[layer] = random_projection(width, features, layer) if wide \
                        else None
                if projections[layer] is not None:
                    code = code @ projections[layer]
                out[layer].append(code)
    return {layer: np.concatenate(parts) for layer, parts in out.items()}


def _ridge_fits(a, y_onehot, ridges, relative=False):
    """(W, b) of the centred ridge read-out for each λ from one SVD, and the λ used."""
    mu_a, mu_y = a.mean(0), y_onehot.mean(0)
    ws, lams = ridge_path(a - mu_a, y_onehot - mu_y, ridges, relative)
    return [(w, mu_y - mu_a @ w) for w in ws], lams


def _accuracy(a, w, b, labels) -> float:
    return float(np.mean(np.argmax(a @ w + b, axis=1) == labels))


RIDGE_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)  # λ as a fraction of σ₁² of the codes


def probe_layer(train, train_y, test, test_y, classes: int, ridge: float | None = None,
                layer: str = "") -> ProbeResult:
    """A ridge read-out of one layer's codes (λ chosen on a fifth of ``train`` when None)."""
    onehot = np.eye(classes)[train_y]
    if ridge is None:
        n_val = max(1, len(train) // 5)
        fit_a, val_a = train[n_val:], train[:n_val]
        fits, grid = _ridge_fits(fit_a, onehot[n_val:], RIDGE_GRID, relative=True)
        scores = [_accuracy(val_a, w, b, train_y[:n_val]) for w, b in fits]
        ridge = grid[int(np.argmax(scores))]
    ((w, b),), _ = _ridge_fits(train, onehot, [ridge])
    return ProbeResult(layer, train.shape[1], float(ridge), _accuracy(train, w, b, train_y),
                       _accuracy(test, w, b, test_y))


def random_projection(features: int, width: int, layer: str, seed: int = 0) -> np.ndarray:
    """A fixed Gaussian F×N projection (entries N(0, 1/N)), seeded by the layer's name."""
    rng = np.random.default_rng([seed, zlib.crc32(layer.encode())])
    return rng.standard_normal((features, width)) / np.sqrt(width)


def probe(graph: Graph, weights, source: str, layers: list[str], ridge: float | None = None,
          features: int | None = None, log: Callable[[str], None] = print,
          seed: int = 0) -> list[ProbeResult]:
    """Held-out accuracy of a ridge read-out on each layer's frozen code (module docstring).

    ``features``: codes wider than this are first mapped to this many values by a fixed random
    projection, so layers of different widths compare at one width (a wide code is easier to
    separate linearly whatever it encodes: Cover's theorem). ``weights`` None: netc's seeded
    initial weights for ``seed`` (random features).
    """
    from netc.compiler.lower_torch.module import build_module

    module = build_module(graph, weights, seed=seed).eval()
    module.resolve_taps(layers)  # unknown names fail before any work
    spec = next(iter(graph.inputs.values()))
    data = load_dataset(source, spec.shape)
    log(data.describe())
    need = 1 if ridge is not None else 2  # choosing λ holds out a fifth, at least one image
    if len(data.train_x) < need or len(data.test_x) < 1:
        raise UserError(f"--data {source}: {len(data.train_x)} training and {len(data.test_x)} "
                        f"held-out images; a probe needs at least {need} and 1")
    train = codes(graph, module, data.train_x, layers, spec, features)
    test = codes(graph, module, data.test_x, layers, spec, features)
    results = []
    for layer in layers:
        r = probe_layer(train[layer], data.train_y.numpy(), test[layer], data.test_y.numpy(),
                        len(data.classes), ridge, layer)
        results.append(r)
    return results
