"""Batch-norm running statistics for seeded weights, computed analytically (no data, no torch).

A fresh batch norm's running statistics (mean 0, variance 1) make it the identity in eval mode,
so a seeded net in eval mode is its bare convolutions: under torchvision's own init (kaiming
``fan_out``) a depthwise 3x3 conv over C channels scales its input's variance by 2/C, and
MobileNet-V2's seeded logits come out near 5e-9; a pre-activation ResNet-1001, whose bodies end
in a conv, multiplies its activations by about 2 per block and overflows to NaN; DenseNet's
concatenations reach 3e7. In training mode every bn normalises, so none of this happens.

So the seeded initialiser gives each bn the statistics it would measure on standard-normal input
images: one pass over the graph carries each channel's mean and variance, under the usual
independence approximation (inputs of a weighted sum are independent; spatial positions too):

- conv/fc/deconv: mean = Σ w·μ + b, variance = Σ w²·σ² over the channels a weight reads (its
  actual drawn weights, per output channel);
- bn: running_mean, running_var := the incoming mean and variance; out: mean β, variance γ²;
- pointwise activations: the mean and variance of f(X), X ~ N(μ, σ²), by Gauss–Hermite
  quadrature on f's numpy form (relu, relu6, sigmoid, hardsigmoid, hardswish, silu, tanh...);
- residual/add: sums (the body scaled by its survival, as in eval mode); mean join: the average
  of independent inputs; mul (squeeze-excitation gates): E[xy] = μx·μy, E[x²y²] = E[x²]·E[y²];
- max pool: the largest of its window's values taken as independent normals; concat: the
  channels side by side; shortcut_pad: zero channels appended; flatten: each channel's moments
  repeated over its positions; average pools and vanishing ops keep the moments;
- any other op: the moments of its first input (averaged over channels when it changes them).

It is the data-free counterpart of ``NetModule.calibrate_batchnorm``: deterministic, cheap (one
matrix-vector product per conv), the same numbers for torch and ONNX, and it changes no
parameter, only buffers, so every torch↔ONNX Runtime comparison still sees every layer.
"""

from __future__ import annotations

import numpy as np

from netc.compiler.ir import Graph

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(48)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # probabilists' Hermite: E f(Z) = Σ w_i f(z_i), Z ~ N(0,1)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


POINTWISE = {  # numpy forms of the activations in eval mode
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "hardsigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "hardswish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "leaky_relu": None,  # takes a parameter: see _pointwise
    "elu": None,
    "gelu": lambda x: 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x ** 3))),
    "softplus": None,
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
}
KEEP = ("dropout", "identity", "avgpool", "gap", "adaptive_avgpool", "lrn")


def _pointwise(node, mu, var):
    a = node.attrs
    if node.op == "leaky_relu":
        f = lambda x: np.where(x > 0, x, a.slope * x)  # noqa: E731
    elif node.op == "elu":
        f = lambda x: np.where(x > 0, x, a.alpha * np.expm1(np.minimum(x, 0.0)))  # noqa: E731
    elif node.op == "softplus":
        f = lambda x: np.logaddexp(0.0, a.beta * x) / a.beta  # noqa: E731
    else:
        f = POINTWISE[node.op]
    x = mu[:, None] + np.sqrt(np.maximum(var, 0.0))[:, None] * _NODES[None, :]
    y = f(x)
    m = y @ _WEIGHTS
    return m, np.maximum((y * y) @ _WEIGHTS - m * m, 0.0)


_GRID = np.linspace(-8.0, 8.0, 801)


def _max_of(n: int, mu, var):
    """Moments of the largest of n independent N(μ, σ²) (a max pool's window, positions taken
    as independent): density n·φ·Φ^(n−1) on a grid."""
    from math import erf, sqrt

    phi = np.exp(-0.5 * _GRID ** 2) / sqrt(2 * np.pi)
    cdf = 0.5 * (1.0 + np.array([erf(z / sqrt(2)) for z in _GRID]))
    dens = n * phi * cdf ** (n - 1)
    dens /= dens.sum()
    m1, m2 = dens @ _GRID, dens @ _GRID ** 2
    sd = np.sqrt(np.maximum(var, 0.0))
    return mu + sd * m1, var * (m2 - m1 * m1)


def _weighted(w, b, groups, mu, var):
    """Moments of a (grouped) weighted sum: w is (out, in/groups, ...) as in torch."""
    out, cin = w.shape[0], w.shape[1]
    w1 = w.reshape(out, cin, -1).astype(np.float64)
    wm, w2 = w1.sum(2), (w1 * w1).sum(2)
    g = groups
    mu_g, var_g = mu.reshape(g, cin), var.reshape(g, cin)
    m = np.einsum("goi,gi->go", wm.reshape(g, out // g, cin), mu_g).reshape(out)
    v = np.einsum("goi,gi->go", w2.reshape(g, out // g, cin), var_g).reshape(out)
    return (m if b is None else m + b), v


def _channels(shape) -> int:
    return shape[0]


def set_batchnorm_statistics(graph: Graph, weights: dict[str, np.ndarray]) -> None:
    """Set every bn's running statistics in ``weights`` (in place) to the analytic moments of
    its input for standard-normal input images (see the module docstring)."""
    if not any(n.op == "bn" for n in graph):
        return
    moments: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for node in graph:
        c = _channels(node.shape)
        if node.op == "input":
            moments[node.name] = (np.zeros(c), np.ones(c))
            continue
        ins = [moments[i] for i in node.inputs]
        mu, var = ins[0]
        a, key = node.attrs, node.name
        if node.op in ("conv", "fc"):
            b = weights.get(f"{key}.bias")
            mu, var = _weighted(weights[f"{key}.weight"], b, a.get("groups", 1), mu, var)
        elif node.op == "deconv" and a.get("groups", 1) == 1:
            w = weights[f"{key}.weight"].swapaxes(0, 1)  # (out, in, kh, kw)
            mu, var = _weighted(w, weights.get(f"{key}.bias"), 1, mu, var)
            per = np.prod(a.stride) if isinstance(a.stride, tuple) else a.stride ** 2
            mu, var = mu / per, var / per  # each output position meets 1/stride² of the taps
        elif node.op == "bn":
            weights[f"{key}.running_mean"] = mu.astype(np.float32)
            weights[f"{key}.running_var"] = var.astype(np.float32)
            gamma = weights[f"{key}.weight"].astype(np.float64)
            mu = weights[f"{key}.bias"].astype(np.float64)
            var = gamma ** 2 * var / (var + a.eps)
        elif node.op in POINTWISE:
            mu, var = _pointwise(node, mu, var)
        elif node.op == "residual":
            s = a.survival if a.get("mode", "batch") == "batch" else 1.0
            (mb, vb), (ms, vs) = ins
            mu, var = s * mb + ms, s * s * vb + vs
        elif node.op == "add" and all(len(m) == c for m, _ in ins):
            mu, var = sum(m for m, _ in ins), sum(v for _, v in ins)
        elif node.op == "mean" and all(len(m) == c for m, _ in ins):
            n = len(ins)
            mu, var = sum(m for m, _ in ins) / n, sum(v for _, v in ins) / n ** 2
        elif node.op == "mul" and all(len(m) == c for m, _ in ins):
            m2 = np.prod([m for m, _ in ins], axis=0)
            s2 = np.prod([v + m * m for m, v in ins], axis=0)
            mu, var = m2, np.maximum(s2 - m2 * m2, 0.0)
        elif node.op == "concat":
            mu = np.concatenate([m for m, _ in ins])
            var = np.concatenate([v for _, v in ins])
        elif node.op == "shortcut_pad":
            extra = np.zeros(c - len(mu))
            mu, var = np.concatenate([mu, extra]), np.concatenate([var, extra])
        elif node.op == "flatten" and len(graph[node.inputs[0]].shape) == 3:
            mu, var = np.repeat(mu, c // len(mu)), np.repeat(var, c // len(var))
        elif node.op == "maxpool":
            mu, var = _max_of(a.kernel[0] * a.kernel[1], mu, var)
        elif node.op in KEEP:
            pass
        if len(mu) != c:  # an op that rearranges channels: their average, broadcast
            mu, var = np.full(c, mu.mean()), np.full(c, var.mean())
        moments[key] = (mu, var)
