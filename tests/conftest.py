"""Shared fixtures: run the CLI in-process and capture what a user would see."""

from __future__ import annotations

import pytest

from runtime.cli import main


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
