"""torch's CPU thread count: chosen once, deterministic, printed (``netc train``, ``recipe``)."""

from __future__ import annotations

import pytest
import torch

from netc.dsl.diagnostics import UserError
from netc.runtime.threads import set_cpu_threads, usable_cores


@pytest.fixture(autouse=True)
def keep_threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def test_default_is_torchs_capped_at_the_usable_cores():
    default = torch.get_num_threads()
    line = set_cpu_threads(None)
    n = torch.get_num_threads()
    assert n == max(1, min(default, usable_cores()))
    assert line.startswith(f"torch: {n} CPU thread") and "--threads N to change" in line


def test_threads_flag_wins_and_is_checked():
    assert set_cpu_threads(1) == "torch: 1 CPU thread (--threads)"
    assert torch.get_num_threads() == 1
    with pytest.raises(UserError, match="--threads must be at least 1"):
        set_cpu_threads(0)


def test_train_prints_its_thread_count(cli, tmp_path):
    r = cli("train", "lenet5", "--epochs", "1", "--steps-per-epoch", "2", "--threads", "1",
            "--no-progress", "-o", tmp_path / "w.safetensors",
            "--checkpoint", tmp_path / "c.pt")
    assert r.code == 0, r.err
    assert "torch: 1 CPU thread (--threads)" in r.out



@pytest.mark.parametrize("argv", [["train", "lenet5"],
                                  ["recipe", "examples/style.recipe", "--size", "32"]])
def test_threads_zero_is_a_command_line_error(argv, capsys):
    from netc.runtime.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--threads", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --threads: expected a positive integer" in err
