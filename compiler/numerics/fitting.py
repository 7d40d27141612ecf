"""Closed-form solvers for fitted layers: least squares, the pseudoinverse, ridge and PCA.

The lecture's first half, in numpy (float64 throughout):

- least squares ``min ‖AX − B‖²``: the normal equations ``AᵀA X = AᵀB`` have many solutions when
  A is not of full column rank; the Moore–Penrose pseudoinverse via the SVD ``A = UΣVᵀ``,
  ``A⁺ = VΣ⁻¹Uᵀ``, picks the one of minimum norm (:func:`pinv_solve`). Singular values at or
  below a cut-off count as zero; the rank and the cut-off used are reported in a
  :class:`Solution`. ``P = UUᵀ = AA⁺`` is the orthogonal projector onto col(A)
  (:func:`projector`).
- ridge ``min ‖AX − B‖² + λ‖X‖²`` (scikit-learn's ``Ridge(alpha=λ)``):
  ``X = V diag(σ/(σ² + λ)) UᵀB``, the same SVD.
- PCA: the top-k right singular vectors of the centred data, the directions of largest
  variance; explained variance ``σ²/(n − 1)``.

Data rarely fits in memory, so :class:`Moments` accumulates what these solvers need in one
streaming pass: the count, the mean and the centred scatter ``Σ(x − μ)(x − μ)ᵀ`` (and the cross
scatter with a target), merged batch by batch with Chan et al.'s update, which keeps the sums
centred and so avoids the cancellation of ``Σxxᵀ − nμμᵀ``. Memory is O(F² + F·T) for F input
and T target values, whatever the number of samples. The solvers then work on the scatter
``S = AᵀA`` with its eigendecomposition ``S = V diag(σ²) Vᵀ`` (the SVD's V and Σ, without U):
``A⁺B = S⁺AᵀB`` exactly, so the minimum-norm solution is the same; only the precision of the
smallest singular values differs (about √ε·σ₁ instead of ε·σ₁), which is why the streaming
cut-off defaults to :data:`GRAM_RCOND`, and a smaller one is refused (:class:`FitError`): the
eigendecomposition would count its rounding noise as rank and invert it.

So where the data fit in memory (``Moments(keep_bytes=…)``), least squares and ridge are solved
from the SVD of the (centred) data itself, numpy's ``lstsq`` way, which resolves singular values
down to ε·max(n, F)·σ₁ (numpy's ``matrix_rank`` tolerance; a smaller cut-off is refused for
the same reason). Either way the solution is checked to be finite.

**The intercept convention** of a read-out with a bias, ``y ≈ Wx + b``: the problem is solved
on centred data, ``W = argmin ‖(X − 1μxᵀ)Wᵀ − (Y − 1μyᵀ)‖²`` (+ λ‖W‖² for ridge), and
``b = μy − Wμx``: the intercept is not penalised and not part of the minimum-norm choice, as in
scikit-learn's ``LinearRegression`` and ``Ridge`` (``fit_intercept=True``); it is not the
pseudoinverse of the data with a column of ones appended (``pinv([X 1])``), whose rank, cut-off
and minimum-norm solution differ.

    >>> import numpy as np
    >>> a = np.array([[1., 2, 3], [4, 5, 6], [7, 8, 9]])
    >>> sol = pinv_solve(a, a)
    >>> sol.rank, np.round(sol.x[0], 4).tolist()
    (2, [0.8333, 0.3333, -0.1667])
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

EPS = np.finfo(np.float64).eps


class FitError(ValueError):
    """The data or the settings admit no trustworthy solution; the message says why."""

# Relative cut-off on singular values recovered from a Gram matrix: its rounding errors are
# about ε·σ₁², so a singular value below ~√ε·σ₁ (1.5e-8) cannot be told from zero.
GRAM_RCOND = 1e-7


@dataclass(frozen=True)
class Solution:
    """A least-squares solution and how it was found.

    ``x``: the solution (n×t); ``rank``: singular values kept; ``cutoff``: the absolute
    singular-value threshold used (σ ≤ cutoff counts as zero; 0 for ridge, which keeps all);
    ``singular_values``: σ of A, largest first; ``ridge``: λ (0 for plain least squares).
    """

    x: np.ndarray
    rank: int
    cutoff: float
    singular_values: np.ndarray
    ridge: float = 0.0

    def describe(self) -> str:
        n = len(self.singular_values)
        if self.ridge:
            return f"ridge λ={self.ridge:g}, rank {self.rank} of {n}"
        return f"least squares, rank {self.rank} of {n} (σ cut-off {self.cutoff:.3g})"


def _filter(sigma: np.ndarray, ridge: float, rcond: float) -> tuple[np.ndarray, int, float]:
    """The factors f(σ) with X = V diag(f) (UᵀB): 1/σ above the cut-off (λ = 0), else σ/(σ²+λ)."""
    top = float(sigma[0]) if sigma.size else 0.0
    if ridge:
        f = sigma / (sigma**2 + ridge)
        return f, int(np.count_nonzero(sigma > rcond * top)), 0.0
    cutoff = rcond * top
    keep = sigma > cutoff
    f = np.zeros_like(sigma)
    f[keep] = 1.0 / sigma[keep]
    return f, int(keep.sum()), cutoff


def pinv_solve(a, b, ridge: float = 0.0, rcond: float | None = None) -> Solution:
    """The minimum-norm solution of ``min ‖AX − B‖² + λ‖X‖²`` from the SVD of A.

    ``rcond`` is relative to the largest singular value (default numpy's ``lstsq`` cut-off,
    ε·max(m, n)). ``b`` may be a vector (the solution is then a vector).
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    vector = b.ndim == 1
    b2 = b[:, None] if vector else b
    if rcond is None:
        rcond = EPS * max(a.shape)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    f, rank, cutoff = _filter(s, ridge, rcond)
    x = vt.T @ (f[:, None] * (u.T @ b2))
    return Solution(x[:, 0] if vector else x, rank, cutoff, s, ridge)


def ridge_path(a, b, ridges, relative: bool = False) -> tuple[list[np.ndarray], list[float]]:
    """Ridge solutions of ``min ‖AX − B‖² + λ‖X‖²`` for several λ from one SVD of A; with
    ``relative`` each λ is a fraction of σ₁². Returns (solutions, the λ used)."""
    a = np.asarray(a, np.float64)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    utb = u.T @ np.asarray(b, np.float64)
    lams = [float(r * s[0] ** 2) if relative else float(r) for r in ridges]
    return [vt.T @ ((s / (s**2 + lam))[:, None] * utb) for lam in lams], lams


def gram_solve(gram, atb, ridge: float = 0.0, rcond: float = GRAM_RCOND) -> Solution:
    """The same solution from ``S = AᵀA`` and ``AᵀB`` alone (what streaming sums give).

    With ``S = V diag(σ²) Vᵀ``: ``X = V diag(f(σ)/σ) Vᵀ AᵀB``, since ``UᵀB = Σ⁻¹VᵀAᵀB``.
    """
    gram = np.asarray(gram, np.float64)
    atb = np.asarray(atb, np.float64)
    w, v = np.linalg.eigh(gram)
    w, v = w[::-1], v[:, ::-1]
    sigma = np.sqrt(np.clip(w, 0.0, None))
    f, rank, cutoff = _filter(sigma, ridge, rcond)
    scale = np.zeros_like(sigma)
    nz = sigma > 0
    scale[nz] = f[nz] / sigma[nz]
    x = v @ (scale[:, None] * (v.T @ atb))
    return Solution(x, rank, cutoff, sigma, ridge)


def projector(a, rcond: float | None = None) -> np.ndarray:
    """The orthogonal projector onto col(A): ``P = UᵣUᵣᵀ`` over the kept singular vectors."""
    a = np.asarray(a, np.float64)
    u, s, _ = np.linalg.svd(a, full_matrices=False)
    rcond = EPS * max(a.shape) if rcond is None else rcond
    ur = u[:, s > rcond * s[0]]
    return ur @ ur.T


class Moments:
    """Streaming count, mean and centred (cross-)scatter of samples ``x`` and targets ``y``.

    ``update(x, y=None)`` takes a batch (rows are samples). After the pass: ``n``, ``mean_x``,
    ``scatter`` = Σ(x − μx)(x − μx)ᵀ, and with targets ``mean_y`` and ``cross`` =
    Σ(x − μx)(y − μy)ᵀ. Memory does not grow with the number of samples.
    """

    def __init__(self, keep_bytes: int = 0):
        self.n = 0
        self.mean_x: np.ndarray | None = None
        self.scatter: np.ndarray | None = None
        self.mean_y: np.ndarray | None = None
        self.cross: np.ndarray | None = None
        # The samples themselves, while they fit in keep_bytes: then least squares is solved
        # from the SVD of the data (see the module docstring); None once they do not.
        self.keep_bytes = keep_bytes
        self.rows: list[tuple[np.ndarray, np.ndarray | None]] | None = [] if keep_bytes else None
        self._kept = 0

    def update(self, x, y=None) -> None:
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        nb = len(x)
        if nb == 0:
            return
        self._keep(x, y)
        mx = x.mean(0)
        dx = x - mx
        sb = dx.T @ dx
        if y is not None:
            y = np.asarray(y, np.float64).reshape(nb, -1)
            my = y.mean(0)
            cb = dx.T @ (y - my)
        if self.n == 0:
            self.n, self.mean_x, self.scatter = nb, mx, sb
            if y is not None:
                self.mean_y, self.cross = my, cb
            return
        if x.shape[1] != self.mean_x.shape[0]:
            raise ValueError(f"batch has {x.shape[1]} features, earlier ones "
                             f"{self.mean_x.shape[0]}")
        na, n = self.n, self.n + nb
        delta = mx - self.mean_x
        self.scatter += sb + np.outer(delta, delta) * (na * nb / n)
        self.mean_x = self.mean_x + delta * (nb / n)
        if y is not None:
            dy = my - self.mean_y
            self.cross += cb + np.outer(delta, dy) * (na * nb / n)
            self.mean_y = self.mean_y + dy * (nb / n)
        self.n = n

    @property
    def covariance(self) -> np.ndarray:
        """The sample covariance Σ(x − μ)(x − μ)ᵀ / (n − 1)."""
        return self.scatter / max(self.n - 1, 1)

    def _keep(self, x: np.ndarray, y) -> None:
        if self.rows is None:
            return
        y = None if y is None else np.asarray(y, np.float64).reshape(len(x), -1)
        self._kept += x.nbytes + (0 if y is None else y.nbytes)
        if self._kept > self.keep_bytes:
            self.rows = None  # too many to keep: the solvers use the scatter alone
            return
        self.rows.append((x.copy(), y))

    @property
    def finite(self) -> bool:
        """Whether every sample and target seen so far was finite (the sums say so)."""
        parts = [self.scatter, self.mean_x, self.cross, self.mean_y]
        return all(np.isfinite(p).all() for p in parts if p is not None)

    def solve(self, ridge: float = 0.0, bias: bool = True, rcond: float = GRAM_RCOND):
        """Weights and bias of the affine read-out ``y ≈ W x + b`` (W is T×F, as in ``fc``).

        With a bias the problem is solved on centred data and ``b = μy − W μx`` (the intercept
        convention of the module docstring: scikit-learn's ``LinearRegression``); without, on
        the raw data. From the SVD of the data when they were kept (``keep_bytes``), else from
        the scatter. Returns ``(W, b or None, Solution)``; :class:`FitError` when ``rcond`` is
        below what that solver resolves, or when the solution is not finite.
        """
        if self.cross is None:
            raise ValueError("Moments.solve needs targets (update(x, y))")
        if not self.finite:
            raise FitError("its input or target has NaN or infinite values")
        if self.rows is not None:
            a = np.concatenate([x for x, _ in self.rows])
            b = np.concatenate([y for _, y in self.rows])
            if bias:
                a, b = a - self.mean_x, b - self.mean_y
            _check_rcond(rcond, ridge, EPS * max(a.shape), "the SVD of the data")
            sol = pinv_solve(a, b, ridge, rcond)
            # fewer samples than features: the missing singular values are zeros, so the
            # rank reads "of F" as the scatter's does
            sigma = np.pad(sol.singular_values, (0, a.shape[1] - len(sol.singular_values)))
            sol = replace(sol, singular_values=sigma)
        elif bias:
            _check_rcond(rcond, ridge, GRAM_RCOND, "the eigendecomposition of AᵀA")
            sol = gram_solve(self.scatter, self.cross, ridge, rcond)
        else:
            _check_rcond(rcond, ridge, GRAM_RCOND, "the eigendecomposition of AᵀA")
            gram = self.scatter + self.n * np.outer(self.mean_x, self.mean_x)
            atb = self.cross + self.n * np.outer(self.mean_x, self.mean_y)
            sol = gram_solve(gram, atb, ridge, rcond)
        w = sol.x.T
        b = self.mean_y - w @ self.mean_x if bias else None
        if not (np.isfinite(w).all() and (b is None or np.isfinite(b).all())):
            raise FitError(f"the solution is not finite ({sol.describe()})")
        return w, b, sol


def _check_rcond(rcond: float, ridge: float, floor: float, solver: str) -> None:
    """Refuse a least-squares cut-off below what ``solver`` resolves (ridge keeps every σ)."""
    if ridge or rcond >= floor:
        return
    raise FitError(f"lstsq(rcond={rcond:g}) asks for singular values down to {rcond:g}·σ₁, but "
                   f"{solver} resolves them only down to about {floor:.2g}·σ₁: below that "
                   f"they are rounding noise, and counting them as rank gives huge, wrong "
                   f"weights; use rcond={floor:.2g} or more")


@dataclass(frozen=True)
class PCAFit:
    """Principal components: ``components`` (k×F, orthonormal rows), the ``mean``, the
    ``explained_variance`` σ²/(n − 1) of each, and the share of the total variance they keep."""

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    total_variance: float
    n: int

    @property
    def explained_ratio(self) -> np.ndarray:
        return self.explained_variance / self.total_variance if self.total_variance else \
            np.zeros_like(self.explained_variance)

    @property
    def singular_values(self) -> np.ndarray:
        return np.sqrt(self.explained_variance * max(self.n - 1, 1))


def pca_from_moments(m: Moments, k: int) -> PCAFit:
    """The top-k principal components from streamed moments (eigenvectors of the covariance).

    Signs follow scikit-learn's ``svd_flip`` convention on the components (the largest entry of
    each component, by absolute value, is positive), so results compare with
    ``sklearn.decomposition.PCA`` directly.
    """
    if m.n < 2:
        raise FitError(f"PCA needs at least 2 samples; got {m.n}")
    features = m.mean_x.shape[0]
    if k > features:
        raise FitError(f"pca({k}): the input has only {features} values")
    cov = m.covariance
    w, v = np.linalg.eigh(cov)
    order = np.argsort(w)[::-1][:k]
    comps = v[:, order].T
    var = np.clip(w[order], 0.0, None)
    biggest = np.argmax(np.abs(comps), axis=1)
    comps *= np.sign(comps[np.arange(k), biggest])[:, None]
    return PCAFit(m.mean_x.copy(), comps, var, float(np.trace(cov)), m.n)


def pca(x, k: int) -> PCAFit:
    """PCA of the rows of ``x`` in memory (one :class:`Moments` update)."""
    m = Moments()
    m.update(x)
    return pca_from_moments(m, k)
