"""``pip install .`` resolves on macOS, ARM Linux, x86-64 Linux and Windows.

pyproject.toml asks for onnxruntime-gpu only where it has wheels (x86-64 Linux and Windows) and
for onnxruntime elsewhere. The markers are evaluated here for each target platform (pip itself
evaluates markers against the machine it runs on, even with ``--platform``), and pip then
resolves every direct dependency to a binary wheel for that platform, against the registry
(``pip install --dry-run --only-binary=:all: --platform ...``: metadata only, nothing is
installed). Each dependency's own dependencies are not resolved for the foreign platform, for
the same reason (their markers would be read on this machine). Skipped when the registry
cannot be reached.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# platform tags for pip (glibc 2.28 also runs manylinux_2_17 wheels: pip takes the list as
# given), and the PEP 508 environment of a machine with them
PLATFORMS = {
    "macos-arm64": ("macosx_14_0_arm64", {"sys_platform": "darwin", "platform_machine": "arm64",
                                          "platform_system": "Darwin", "os_name": "posix"}),
    "linux-aarch64": ("manylinux_2_28_aarch64 manylinux_2_17_aarch64 manylinux2014_aarch64", {"sys_platform": "linux", "os_name": "posix",
                                                 "platform_machine": "aarch64",
                                                 "platform_system": "Linux"}),
    "linux-x86_64": ("manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64", {"sys_platform": "linux", "os_name": "posix",
                                               "platform_machine": "x86_64",
                                               "platform_system": "Linux"}),
    "windows-amd64": ("win_amd64", {"sys_platform": "win32", "platform_machine": "AMD64",
                                    "platform_system": "Windows", "os_name": "nt"}),
}
PYTHON = "3.12"
NETWORK_TROUBLE = ("Could not fetch URL", "Max retries exceeded", "NewConnectionError",
                   "Temporary failure in name resolution", "Network is unreachable",
                   "ConnectionError", "Read timed out")


def requirements(env: dict) -> list[Requirement]:
    """The runtime dependencies whose markers hold in ``env``."""
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    full = {"python_version": PYTHON, "python_full_version": PYTHON + ".0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", **env}
    reqs = [Requirement(d) for d in deps]
    return [r for r in reqs if r.marker is None or r.marker.evaluate(full)]


def resolve(platform: str, reqs: list[str], tmp_path: Path) -> dict[str, str]:
    """pip's choice of wheel for each requirement on ``platform`` (name -> file name)."""
    report = tmp_path / "report.json"
    tags = [arg for tag in platform.split() for arg in ("--platform", tag)]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
           "--no-deps", "--only-binary=:all:", *tags, "--python-version",
           PYTHON, "--target", str(tmp_path / "target"), "--report", str(report), *reqs]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired:
        pytest.skip("the package registry did not answer in 4 minutes")
    if done.returncode != 0:
        if any(s in done.stderr for s in NETWORK_TROUBLE):
            pytest.skip("the package registry is unreachable: " + done.stderr.strip()[-200:])
        raise AssertionError(f"pip cannot resolve {reqs} for {platform}:\n{done.stderr[-2000:]}")
    chosen = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["download_info"]["url"].rsplit("/", 1)[-1]
            for i in chosen}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Skip unless the registry answers for a platform this machine is not."""
    tmp = tmp_path_factory.mktemp("probe")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
             "--timeout", "15", "--retries", "1",  # an offline machine answers in seconds
             "--ignore-installed", "--only-binary=:all:", "--platform", "macosx_14_0_arm64",
             "--python-version", PYTHON, "--target", str(tmp), "packaging"],
            capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.skip("the package registry did not answer")
    if done.returncode != 0:
        pytest.skip("the package registry is unreachable: " + done.stderr.strip()[-200:])


def test_markers_pick_exactly_one_onnxruntime_per_platform():
    for name, (_, env) in PLATFORMS.items():
        ort = [r.name for r in requirements(env) if r.name.startswith("onnxruntime")]
        gpu = name in ("linux-x86_64", "windows-amd64")
        assert ort == (["onnxruntime-gpu"] if gpu else ["onnxruntime"]), name


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_every_dependency_has_a_wheel(registry, name, tmp_path):
    platform, env = PLATFORMS[name]
    reqs = requirements(env)
    chosen = resolve(platform, [str(r).split(";")[0] for r in reqs], tmp_path)
    assert set(chosen) == {r.name.lower() for r in reqs}
    for pkg, wheel in chosen.items():
        assert wheel.endswith(".whl"), (pkg, wheel)
