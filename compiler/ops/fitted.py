"""Fitted layers: ops whose weights are solved in closed form from data (``netc fit``), not by
gradient descent. The lecture's first half as layers of the language:

- ``unitnorm(center=true)``: per image, x ← (x − mean(x)) / ‖x − mean(x)‖ over all its values
  (nothing to fit; it makes distances in face space compare faces, not brightness);
- ``pca(k, whiten=false)``: the code y = W(x − μ), W the top-k right singular vectors of the
  centred data (k×F, orthonormal rows); ``whiten`` divides by σ/√(n − 1);
- ``pca_reconstruct(k)``: x̂ = μ + WᵀW(x − μ), the orthogonal projection onto the subspace
  (P = UUᵀ in the lecture);
- ``pca_distance(k)``: ‖x − x̂‖, the "distance from face space" (one value per sample);
- ``fc(out, fit=lstsq | ridge(λ))`` (in ``conv.py``): a read-out solved by least squares with
  the pseudoinverse, minimum-norm when the problem is rank-deficient.

Each subspace op holds its own ``mean``, ``components`` and ``variance`` (state-dict names
``<layer>.mean`` …): two of them on the same input fit to the same subspace, since ``netc fit``
solves each from the same data with the same deterministic solver. Their ``fit_weights`` face
takes the :class:`netc.compiler.numerics.fitting.Moments` of the op's input and returns the
weights, with a line saying what was solved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netc.compiler.ops.base import ArgError, ShapeError, not_flat
from netc.compiler.ops.domains import POSITIVE, between
from netc.compiler.ops.opdef import REGISTRY, OpDef, keep_moments, register
from netc.compiler.ops.params import BOOL, FLOAT, INT, Param, Symbol

FIT_METHODS = ("lstsq", "ridge")


@dataclass(frozen=True)
class Fit:
    """How a fitted ``fc`` is solved: ``lstsq`` (pseudoinverse, σ ≤ rcond·σ₁ dropped) or
    ``ridge`` with λ (scikit-learn's ``Ridge(alpha=λ)``: ‖AX − B‖² + λ‖X‖²)."""

    method: str
    ridge: float = 0.0
    rcond: float | None = None

    def __str__(self) -> str:
        if self.method == "ridge":
            return f"ridge({self.ridge:g})"
        return "lstsq" if self.rcond is None else f"lstsq(rcond={self.rcond:g})"


def fit_value(v) -> Fit | None:
    """``fit=`` as written: ``lstsq``, ``lstsq(rcond=…)``, ``ridge(λ)``; ArgError otherwise."""
    if v is None or isinstance(v, Fit):
        return v
    if isinstance(v, Symbol) and str(v) == "lstsq":
        return Fit("lstsq")
    if isinstance(v, Symbol) and str(v) == "ridge":
        raise ArgError("fit=ridge needs its λ: fit=ridge(0.1)", "fit")
    raise ArgError(f"fit must be lstsq or ridge(λ); got {v!r}", "fit")


def make_ridge(args, kwargs) -> Fit:
    """``ridge(λ)`` as an argument value (``fc(10, fit=ridge(0.1))``)."""
    values = list(args) + [kwargs[k] for k in kwargs if k == "lam"]
    lam = values[0] if len(values) == 1 and len(args) + len(kwargs) == 1 else None
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not 0 < lam < float("inf"):
        raise ArgError("ridge takes one positive number, its λ: ridge(0.1)")
    return Fit("ridge", float(lam))


def make_lstsq(args, kwargs) -> Fit:
    """``lstsq(rcond=1e-6)``: least squares with a chosen relative singular-value cut-off."""
    values = list(args) + [kwargs[k] for k in kwargs if k == "rcond"]
    rcond = values[0] if len(values) == 1 and len(args) + len(kwargs) == 1 else None
    if isinstance(rcond, bool) or not isinstance(rcond, (int, float)) or not 0 <= rcond < 1:
        raise ArgError("lstsq takes one cut-off in [0, 1): lstsq(rcond=1e-6)")
    return Fit("lstsq", 0.0, float(rcond))


VALUE_CALLS = {"ridge": make_ridge, "lstsq": make_lstsq}


def _flat(op: str, shape) -> int:
    if len(shape) != 1:
        raise not_flat(op, shape, "add flatten before it")
    return shape[0]


@register
class UnitNorm(OpDef):
    name = "unitnorm"
    doc = ("per-image normalisation: x - mean(x), divided by its norm, over all values of one "
           "sample: unitnorm(center=true, eps=1e-8)")
    params = (Param("center", BOOL, True),
              Param("eps", FLOAT, 1e-8, domain=between(0, 1, lo_open=True, hi_open=True)))
    family = "norm"
    seeded_moments = keep_moments  # left out of the seeded statistics

    def infer_shape(self, a, ins):
        return ins[0]

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.fitted import UnitNorm as Module

        return Module(a.center, a.eps)

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        axes = list(range(1, len(tape.shape(inputs[0])) + 1))
        x = inputs[0]
        if node.attrs.center:
            mean = tape.op("ReduceMean", [x], name=f"{n}/mean", axes=axes, keepdims=1)
            x = tape.op("Sub", [x, mean], name=f"{n}/center")
        ss = tape.op("ReduceSumSquare", [x], name=f"{n}/sumsq", axes=axes, keepdims=1)
        norm = tape.op("Sqrt", [ss], name=f"{n}/norm")
        norm = tape.op("Max", [norm, tape.float_constant(f"{n}.eps", node.attrs.eps)],
                       name=f"{n}/clamp")
        return tape.op("Div", [x, norm], name=n)


class _Subspace(OpDef):
    """The k-dimensional PCA subspace of a flat input; subclasses choose what they output."""

    mode = "code"
    params = (Param("k", INT, domain=POSITIVE),)
    seeded_moments = keep_moments  # left out of the seeded statistics (their average)

    def fitted(self, a):
        return True

    def infer_shape(self, a, ins):
        f = _flat(self.name, ins[0])
        if a.k > f:
            raise ShapeError(f"{self.name}({a.k}): the input has only {f} values, so at most "
                             f"{f} components")
        return self.out_shape(a, f)

    def out_shape(self, a, f):
        raise NotImplementedError

    def param_count(self, a, ins, out):
        return a.k * ins[0][0] + ins[0][0]  # components and mean

    def macs(self, a, ins, out):
        return (1 if self.mode == "code" else 2) * a.k * ins[0][0]

    def init_weights(self, a, ins, out, rng):
        # Unfitted: a random orthonormal basis around 0, so the layer computes something sane.
        f = ins[0][0]
        q, _ = np.linalg.qr(rng.standard_normal((f, a.k)))
        return {"mean": np.zeros(f, np.float32), "components": q.T.astype(np.float32),
                "variance": np.ones(a.k, np.float32)}

    def fit_weights(self, a, ins, out, moments):
        """The subspace of the input's moments: (weights, a line describing the fit)."""
        from netc.compiler.numerics.fitting import pca_from_moments

        p = pca_from_moments(moments, a.k)
        weights = {"mean": p.mean.astype(np.float32),
                   "components": p.components.astype(np.float32),
                   "variance": np.maximum(p.explained_variance, 1e-12).astype(np.float32)}
        kept = float(p.explained_ratio.sum())
        return weights, (f"PCA of {p.n:,} samples x {p.mean.size} values: {a.k} components "
                         f"keep {100 * kept:.1f}% of the variance")

    def to_torch(self, a, ins, out):
        from netc.compiler.lower_torch.fitted import Subspace

        return Subspace(ins[0][0], a.k, self.mode, bool(a.get("whiten", False)))

    def to_onnx(self, tape, node, inputs, weights):
        n = node.name
        # An all-zero mean (netc's seeded, unfitted weights) writes no Sub or Add of zeros, which
        # a simplifier would remove.
        mean = (tape.initializer(f"{n}.mean", weights[f"{n}.mean"])
                if np.any(weights[f"{n}.mean"]) else None)
        comps = tape.initializer(f"{n}.components", weights[f"{n}.components"])
        last = self.mode == "code" and not node.attrs.get("whiten", False)
        d = tape.op("Sub", [inputs[0], mean], name=f"{n}/center") if mean else inputs[0]
        y = tape.op("Gemm", [d, comps], name=n if last else f"{n}/code", transB=1)
        if self.mode == "code":
            if last:
                return y
            var = tape.initializer(f"{n}.variance", weights[f"{n}.variance"])
            std = tape.op("Sqrt", [var], name=f"{n}/std")
            return tape.op("Div", [y, std], name=n)
        if self.mode == "reconstruct" and not mean:
            return tape.op("MatMul", [y, comps], name=n)
        p = tape.op("MatMul", [y, comps], name=f"{n}/project")
        if self.mode == "reconstruct":
            return tape.op("Add", [p, mean], name=n)
        r = tape.op("Sub", [d, p], name=f"{n}/residual")
        ss = tape.op("ReduceSumSquare", [r], name=f"{n}/sumsq", axes=[1], keepdims=1)
        return tape.op("Sqrt", [ss], name=n)


@register
class PCA(_Subspace):
    name = "pca"
    doc = ("principal components of a flat input, fitted by netc fit: y = W(x - mean), W the "
           "top-k right singular vectors; whiten divides by sigma/sqrt(n-1): "
           "pca(k, whiten=false)")
    mode = "code"
    params = (Param("k", INT, domain=POSITIVE), Param("whiten", BOOL, False))

    def out_shape(self, a, f):
        return (a.k,)

    def param_count(self, a, ins, out):
        return super().param_count(a, ins, out) + (a.k if a.whiten else 0)


@register
class PCAReconstruct(_Subspace):
    name = "pca_reconstruct"
    doc = ("projection onto the k-dimensional PCA subspace, fitted by netc fit: "
           "mean + W^T W (x - mean): pca_reconstruct(k)")
    mode = "reconstruct"

    def out_shape(self, a, f):
        return (f,)


@register
class PCADistance(_Subspace):
    name = "pca_distance"
    doc = ("distance from the k-dimensional PCA subspace (from face space), fitted by "
           "netc fit: ||x - reconstruction||, one value: pca_distance(k)")
    mode = "distance"

    def out_shape(self, a, f):
        return (1,)


def is_fitted(node) -> bool:
    """Whether ``netc fit`` solves this node's weights (its op's ``fitted`` face: a subspace op,
    or an fc with fit=); False for a graph input."""
    op = REGISTRY.get(node.op)
    return op is not None and op.fitted(node.attrs)
