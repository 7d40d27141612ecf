"""Numeric faults: non-finite options refused where they are read, a diverging training run
stopped at its step with the last good checkpoint kept and no weights written, fits checked to
be finite and of the data's rank, and least squares that does not count rounding noise as rank
(against numpy's lstsq and scikit-learn's LinearRegression, intercept unpenalised)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from sklearn.linear_model import LinearRegression

from netc.compiler.numerics.fitting import GRAM_RCOND, FitError, Moments
from netc.dsl.diagnostics import UserError
from netc.runtime.train import TrainConfig, train

SPECS = Path(__file__).parent / "specs" / "torch_nets.net"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- options ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flag,value", [("--lr", "nan"), ("--lr", "inf"), ("--momentum", "nan"),
                                        ("--weight-decay", "-inf"), ("--gamma", "nan"),
                                        ("--holdout", "nan"), ("--milestones", "0.5,nan")])
def test_train_refuses_non_finite_options_before_any_work(tmp_path, capsys, flag, value):
    from netc.runtime.cli import main

    out = tmp_path / "w.safetensors"
    try:  # exit 1 (a user error) or 2 (argparse's, should options.py refuse it first)
        code = main(["train", f"{SPECS}:lenet5", "--data", "digits", "--epochs", "1",
                     f"{flag}={value}", "-o", str(out), "--checkpoint", str(tmp_path / "c.pt")])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code in (1, 2), err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("usage:", " "))]
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in err, err
    assert not out.exists() and not (tmp_path / "c.pt").exists()


# ---- divergence -------------------------------------------------------------------------------
def config(tmp_path, **kw) -> TrainConfig:
    base = dict(data="digits", epochs=1, batch_size=16, steps_per_epoch=4, lr=0.05, seed=0,
                checkpoint=str(tmp_path / "run.ckpt.pt"), output=str(tmp_path / "run.safetensors"),
                progress=False, threads=1, schedule="constant")
    base.update(kw)
    return TrainConfig(**base)


def test_a_run_that_diverges_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    from netc.compiler.frontend.loader import load

    graph = load(f"{SPECS}:lenet5")
    train(graph, config(tmp_path), log=lambda s: None)  # one good epoch: its checkpoint
    ckpt, out = tmp_path / "run.ckpt.pt", tmp_path / "run.safetensors"
    before = digest(ckpt)
    out.unlink()
    # The same run continued with a learning rate no net survives: a real divergence (the
    # loss overflows within a few steps), not a NaN option.
    with pytest.raises(UserError) as err:
        train(graph, config(tmp_path, epochs=3, lr=1e20, resume=True), log=lambda s: None)
    text = str(err.value)
    assert "training stopped at epoch 2, step " in text and "not finite" in text, text
    assert f"the last checkpoint, {ckpt}, is kept" in text and "--lr" in text, text
    assert digest(ckpt) == before  # not overwritten by the diverged weights
    assert not out.exists()  # no NaN weights written
    assert not list(tmp_path.glob(".*.tmp"))
    # and the kept checkpoint still resumes into a finished run at a sane learning rate
    result = train(graph, config(tmp_path, epochs=2, resume=True), log=lambda s: None)
    weights = load_file(str(out))
    assert len(result.history) == 2
    assert all(np.isfinite(v).all() for v in weights.values())


def test_a_run_that_diverges_in_its_first_epoch_says_there_is_no_checkpoint(tmp_path, cli):
    result = cli("train", f"{SPECS}:lenet5", "--data", "digits", "--epochs", "1",
                 "--steps-per-epoch", "4", "--lr", "1e20", "--threads", "1", "--no-progress",
                 "--checkpoint", tmp_path / "c.pt", "-o", tmp_path / "w.safetensors")
    assert result.code == 1
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("netc: error: training stopped at epoch 1, step "), result.err
    assert "no checkpoint yet" in line and "Traceback" not in result.err
    assert not list(tmp_path.iterdir())


# ---- fits -------------------------------------------------------------------------------------
def rank_deficient(n=400, features=36, rank=29, targets=3, seed=0):
    """Data of a known rank with a spread of singular values, and noisy affine targets."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(rank, features)) * np.logspace(0, -4, rank)[:, None]
    x = rng.normal(size=(n, rank)) @ basis + rng.normal(size=features)
    y = x @ rng.normal(size=(features, targets)) + 0.5 + 0.01 * rng.normal(size=(n, targets))
    return x, y


def streamed(x, y, keep_bytes=0, batch=64):
    m = Moments(keep_bytes=keep_bytes)
    for i in range(0, len(x), batch):
        m.update(x[i:i + batch], y[i:i + batch])
    return m


@pytest.mark.parametrize("rcond", [1e-10, 1e-13, GRAM_RCOND])
def test_a_small_rcond_is_honoured_by_the_svd_of_the_data(rcond):
    x, y = rank_deficient()
    w, b, sol = streamed(x, y, keep_bytes=2**26).solve(rcond=rcond)
    xc = x - x.mean(0)
    assert sol.rank == np.linalg.matrix_rank(xc) == 29, sol.describe()
    want, _, rank, _ = np.linalg.lstsq(xc, y - y.mean(0), rcond=rcond)
    assert rank == 29
    np.testing.assert_allclose(w, want.T, rtol=1e-6, atol=1e-8)
    ref = LinearRegression().fit(x, y)  # centred problem, intercept unpenalised
    np.testing.assert_allclose(w, ref.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(b, ref.intercept_, rtol=1e-8, atol=1e-8)
    residual = np.linalg.norm(x @ w.T + b - y)
    assert residual <= np.linalg.norm(ref.predict(x) - y) * (1 + 1e-9)


def test_the_streamed_solver_refuses_an_rcond_it_cannot_honour():
    x, y = rank_deficient()
    m = streamed(x, y)  # keep_bytes=0: only the scatter
    with pytest.raises(FitError, match=r"resolves them only down to about 1e-07.*rounding noise"):
        m.solve(rcond=1e-10)
    w, b, sol = m.solve()  # the default cut-off: the data's rank, sklearn's weights
    assert sol.rank == 29
    ref = LinearRegression().fit(x, y)
    np.testing.assert_allclose(w, ref.coef_, rtol=1e-4, atol=1e-6)


def test_rcond_zero_and_non_finite_data_are_refused():
    x, y = rank_deficient()
    with pytest.raises(FitError, match="rounding noise"):
        streamed(x, y, keep_bytes=2**26).solve(rcond=0.0)
    x[5, 3] = np.nan
    with pytest.raises(FitError, match="NaN or infinite"):
        streamed(x, y, keep_bytes=2**26).solve()


def test_data_past_the_budget_fall_back_to_the_scatter():
    x, y = rank_deficient()
    m = streamed(x, y, keep_bytes=x.nbytes // 2)
    assert m.rows is None
    assert m.solve()[2].rank == 29


def test_fit_with_a_tiny_rcond_matches_scikit_learn_on_digits(tmp_path, cli):
    """Digits have pixels that are always 0: a rank-deficient read-out, fitted end to end."""
    from sklearn.datasets import load_digits

    from netc.runtime.data import load_dataset

    spec = tmp_path / "r.net"
    spec.write_text("net r {\n  input image: 1x8x8\n"
                    "  image -> flatten -> fc(10, fit=lstsq(rcond=1e-12)) as scores\n}\n")
    out = tmp_path / "r.safetensors"
    result = cli("fit", f"{spec}:r", "--data", "digits", "-o", out)
    assert result.code == 0, result.err
    data = load_dataset("digits", (1, 8, 8))
    x = (data.train_x.flatten(1).float() / 255.0).double().numpy()  # what the net reads
    onehot = np.eye(10)[data.train_y.numpy()]
    rank = np.linalg.matrix_rank(x - x.mean(0))
    assert rank < 64 and f"rank {rank} of 64" in result.out, result.out
    assert load_digits().data.shape[1] == 64
    w = load_file(str(out))
    ref = LinearRegression().fit(x, onehot)
    np.testing.assert_allclose(w["scores.weight"], ref.coef_, atol=2e-5)
    np.testing.assert_allclose(w["scores.bias"], ref.intercept_, atol=2e-5)


def test_fit_with_one_image_is_one_line_not_a_traceback(tmp_path, cli):
    out = tmp_path / "f.safetensors"
    result = cli("fit", "eigenfaces", "--data", "lfw:0-0", "-o", out)
    assert result.code == 1
    assert result.err.strip() == ("netc: error: face_space: fitting needs at least 2 images; "
                                  "lfw_subset 0-0 has 1")
    assert not out.exists()


def test_fit_with_fewer_images_than_components_is_refused(tmp_path, cli):
    """Three faces span two directions about their mean: a third component would be noise."""
    result = cli("fit", "eigenfaces", "--set", "k=3", "--data", "lfw:0-2",
                 "-o", tmp_path / "f.safetensors")
    assert result.code == 1
    assert result.err.strip() == ("netc: error: face_space: 3 principal components need at "
                                  "least 4 images (n images span n - 1 directions about their "
                                  "mean); lfw_subset 0-2 has 3")
    assert cli("fit", "eigenfaces", "--set", "k=2", "--data", "lfw:0-2",
               "-o", tmp_path / "f.safetensors").code == 0


def test_the_rank_is_out_of_the_features_when_samples_are_fewer():
    x, y = rank_deficient(n=20)  # 20 samples of 36 values: rank 19 once centred
    w, b, sol = streamed(x, y, keep_bytes=2**26).solve()
    assert sol.rank == 19 and "rank 19 of 36" in sol.describe()
    ref = LinearRegression().fit(x, y)
    np.testing.assert_allclose(w, ref.coef_, rtol=1e-6, atol=1e-8)


def test_why_the_scatter_route_refuses_a_small_rcond():
    """What the refusal prevents: through the eigendecomposition of AᵀA a cut-off of 1e-10·σ₁
    counts rounding noise as rank (measured: rank 32 where the data have 29) and inflates W."""
    from netc.compiler.numerics.fitting import gram_solve

    x, y = rank_deficient()
    xc, yc = x - x.mean(0), y - y.mean(0)
    noisy = gram_solve(xc.T @ xc, xc.T @ yc, rcond=1e-10)
    assert noisy.rank > np.linalg.matrix_rank(xc) == 29
    w = streamed(x, y, keep_bytes=2**26).solve(rcond=1e-10)[0]
    assert np.abs(noisy.x).max() > 2 * np.abs(w).max()
