"""The code keeps the shape the project asks of it: modules of at most 500 lines, functions of
at most 15 paths (ruff's C901), and ruff's whole configuration clean.

The limits are the project's (STYLE.md: "most modules 100–500 lines"; pyproject.toml's
``[tool.ruff.lint]``). A module past the limit is split by what it holds, not trimmed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
FOLDERS = ("netc", "dsl", "compiler", "runtime")  # the installed code; tests are not counted


def test_no_module_is_over_500_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(encoding="utf-8").splitlines())
             for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")}
    assert len(sizes) > 100, "the walk found too few modules: fix the test"
    over = {path: n for path, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


def test_complexity_limit_is_configured():
    lint = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    assert "C901" in lint["select"] and lint["mccabe"]["max-complexity"] == 15


def test_ruff_is_clean():
    pytest.importorskip("ruff", reason="ruff is in the test extra: pip install -e '.[test]'")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                           "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
