"""The closed-form solvers of compiler/fitting.py against the lecture, numpy and scikit-learn:
least squares with the pseudoinverse, the projector, ridge, streaming moments and PCA."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, Ridge

from netc.compiler.numerics.fitting import Moments, gram_solve, pca, pca_from_moments, pinv_solve, projector

A = np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 9]])  # rank 2: row 3 = 2·row 2 − row 1
MIN_NORM_ROW = [5 / 6, 1 / 3, -1 / 6]  # pinv(A)·A = I − nnᵀ with n = (1, −2, 1)/√6


def test_rank_deficient_least_squares_is_the_minimum_norm_solution():
    sol = pinv_solve(A, A)
    assert sol.rank == 2
    np.testing.assert_allclose(sol.x[0], MIN_NORM_ROW, atol=1e-12)
    np.testing.assert_allclose(np.round(sol.x[0], 4), [0.8333, 0.3333, -0.1667])
    # The normal equations are also solved by X = I (first row [1, 0, 0]), of larger norm.
    np.testing.assert_allclose(A @ np.eye(3), A)
    assert not np.allclose(sol.x[0], [1, 0, 0])
    assert np.linalg.norm(sol.x) < np.linalg.norm(np.eye(3))
    np.testing.assert_allclose(A @ sol.x, A, atol=1e-12)  # still an exact fit
    assert sol.cutoff > 0 and sol.singular_values[2] <= sol.cutoff < sol.singular_values[1]


def test_streaming_gram_route_finds_the_same_minimum_norm_solution():
    sol = gram_solve(A.T @ A, A.T @ A)
    assert sol.rank == 2
    np.testing.assert_allclose(sol.x[0], MIN_NORM_ROW, atol=1e-7)
    # and through Moments without a bias (uncentred), streamed one row at a time
    m = Moments()
    for i in range(3):
        m.update(A[i:i + 1], A[i:i + 1])
    w, b, sol = m.solve(bias=False)
    assert b is None and sol.rank == 2
    np.testing.assert_allclose(w.T[0], MIN_NORM_ROW, atol=1e-7)


def test_projector_is_idempotent_symmetric_and_a_times_pinv_a():
    p = projector(A)
    np.testing.assert_allclose(p @ p, p, atol=1e-12)
    np.testing.assert_allclose(p, p.T, atol=1e-12)
    np.testing.assert_allclose(p, A @ np.linalg.pinv(A), atol=1e-12)
    assert np.isclose(np.trace(p), 2)  # rank of col(A)
    b = np.array([1.0, -2.0, 0.5])
    r = b - p @ b
    np.testing.assert_allclose(A.T @ r, 0, atol=1e-12)  # the residual is orthogonal to col(A)


@pytest.mark.parametrize("shape", [(50, 5), (200, 30)])
def test_full_rank_solution_equals_numpy_lstsq(shape):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=shape), rng.normal(size=(shape[0], 3))
    want = np.linalg.lstsq(a, b, rcond=None)[0]
    assert pinv_solve(a, b).rank == shape[1]
    np.testing.assert_allclose(pinv_solve(a, b).x, want, atol=1e-6)
    np.testing.assert_allclose(gram_solve(a.T @ a, a.T @ b).x, want, atol=1e-6)
    np.testing.assert_allclose(pinv_solve(a, b[:, 0]).x, want[:, 0], atol=1e-6)


def test_streamed_read_out_equals_scikit_learn_regression_and_ridge():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 8)) * [1, 2, 3, 4, 5, 6, 7, 8] + 10
    b = a @ rng.normal(size=(8, 2)) + rng.normal(size=(300, 2)) + 3
    m = Moments()
    for i in range(0, 300, 37):  # uneven batches
        m.update(a[i:i + 37], b[i:i + 37])
    w, bias, sol = m.solve()
    lr = LinearRegression().fit(a, b)
    np.testing.assert_allclose(w, lr.coef_, atol=1e-8)
    np.testing.assert_allclose(bias, lr.intercept_, atol=1e-8)
    w, bias, sol = m.solve(ridge=50.0)
    r = Ridge(alpha=50.0).fit(a, b)
    np.testing.assert_allclose(w, r.coef_, atol=1e-8)
    np.testing.assert_allclose(bias, r.intercept_, atol=1e-8)
    assert sol.ridge == 50.0 and "ridge" in sol.describe()


def test_moments_merge_is_exact_and_memory_does_not_grow():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1000, 6)) * 3 + 100  # a large mean: naive Σxxᵀ − nμμᵀ would cancel
    m = Moments()
    for i in range(0, 1000, 64):
        m.update(x[i:i + 64])
    np.testing.assert_allclose(m.mean_x, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.covariance, np.cov(x.T), rtol=1e-10)
    assert m.scatter.shape == (6, 6)  # the state is F×F, however many samples


@pytest.mark.parametrize("k", [1, 5, 12])
def test_pca_equals_scikit_learn_up_to_sign(k):
    x = load_digits().data  # 1797 × 64
    ours = pca(x, k)
    ref = PCA(n_components=k, svd_solver="full").fit(x)
    np.testing.assert_allclose(ours.explained_variance, ref.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(ours.explained_ratio, ref.explained_variance_ratio_, rtol=1e-5)
    np.testing.assert_allclose(ours.mean, ref.mean_, atol=1e-10)
    signs = np.sign(np.sum(ours.components * ref.components_, axis=1))
    np.testing.assert_allclose(ours.components * signs[:, None], ref.components_, atol=1e-5)
    np.testing.assert_allclose(ours.singular_values, ref.singular_values_, rtol=1e-5)
    # streamed in batches: the same components
    m = Moments()
    for i in range(0, len(x), 100):
        m.update(x[i:i + 100])
    np.testing.assert_allclose(np.abs(pca_from_moments(m, k).components),
                               np.abs(ours.components), atol=1e-8)


def test_reconstruction_error_falls_as_k_grows():
    x = load_digits().data
    errors = []
    for k in (1, 2, 5, 10, 20, 40, 64):
        p = pca(x, k)
        rec = p.mean + (x - p.mean) @ p.components.T @ p.components
        errors.append(float(np.mean((x - rec) ** 2)))
    assert all(a > b for a, b in zip(errors, errors[1:-1]))
    assert errors[-1] < 1e-20 * errors[0] + 1e-18  # all components: exact
    # the mean squared error is the variance left out: Σ_{i>k} λ_i (n−1)/n / F
    p = pca(x, 64)
    left = p.explained_variance[10:].sum() * (len(x) - 1) / len(x) / x.shape[1]
    np.testing.assert_allclose(errors[3], left, rtol=1e-8)


def test_the_module_docstring_example_runs():
    import doctest

    import netc.compiler.numerics.fitting

    result = doctest.testmod(netc.compiler.numerics.fitting)
    assert result.attempted > 0 and result.failed == 0
