"""Shared fixtures: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

import pytest

from netc.runtime.cli import main


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    """``cli("check", "vgg16")`` runs ``netc check vgg16`` and returns code, stdout, stderr."""

    def run(*argv: str) -> CliResult:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def one_torch_thread():
    """One torch thread: CI runs two test workers on two cores, and oversubscribed OpenMP
    threads make small nets many times slower. Use with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
