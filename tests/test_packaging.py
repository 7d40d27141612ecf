"""The distribution installs one import package, ``netc``, holding every file of the project.

``pip install --no-deps --no-build-isolation --target DIR`` builds and installs a copy of the
project's sources (a copy: setuptools builds in the source tree, and a stale ``build/`` there
would install modules that were deleted since). DIR then holds ``netc`` and nothing else
beside its ``.dist-info`` and ``bin/``. A fresh virtual environment, started in an empty
folder so that neither the repository nor its editable install is in sight, imports ``netc``
from DIR and cannot import ``compiler``, ``dsl``, ``runtime`` or ``model_specs``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIR: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
PACKAGES: list[str] = PYPROJECT["tool"]["setuptools"]["packages"]
JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")


def repo_packages() -> set[str]:
    """Dotted names of the folders with an ``__init__.py`` under each mapped folder."""
    found = set()
    for package, folder in PACKAGE_DIR.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    return found


def project_files() -> dict[str, set[str]]:
    """Each mapped folder's files (what must be installed), relative to the folder."""
    return {package: {str(p.relative_to(ROOT / folder)) for p in (ROOT / folder).rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts}
            for package, folder in PACKAGE_DIR.items()}


def test_the_packages_list_is_the_folders_with_an_init():
    assert sorted(PACKAGES) == sorted(repo_packages())
    assert len(PACKAGES) == len(set(PACKAGES))


def test_every_folder_with_python_files_is_a_package():
    # A folder of modules without __init__.py would be left out of the install, silently.
    loose = sorted(str(d.relative_to(ROOT)) for folder in PACKAGE_DIR.values()
                   for d in [ROOT / folder, *(ROOT / folder).rglob("*")]
                   if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
                   and not (d / "__init__.py").exists())
    assert not loose


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The project installed by pip into an empty target folder, from a copy of its sources."""
    if shutil.which("pip") is None and subprocess.run(
            [sys.executable, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("pip is not installed in this environment")
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in PACKAGE_DIR.values():
        shutil.copytree(ROOT / folder, source / folder, ignore=JUNK)
    target = tmp / "target"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--no-compile", "--quiet", "--disable-pip-version-check", "--target", str(target),
         str(source)], capture_output=True, text=True, timeout=300, cwd=tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def test_the_install_holds_one_top_level_package(installed):
    entries = {p.name for p in installed.iterdir()}
    dist_info = {e for e in entries if e.endswith(".dist-info")}
    from netc.runtime import __version__

    assert dist_info == {f"netc-{__version__}.dist-info"}  # `netc --version` is what pip sees
    assert entries - {e for e in entries if e.endswith(".dist-info")} == {"netc", "bin"}
    assert sorted(p.name for p in (installed / "bin").iterdir()) == ["netc"]
    assert "from netc.runtime.cli import console" in (installed / "bin" / "netc").read_text()


def test_the_install_holds_every_file_of_the_project(installed):
    for package, files in project_files().items():
        where = installed.joinpath(*package.split("."))
        got = {str(p.relative_to(where)) for p in where.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
        if package == "netc":  # the other packages are folders inside it
            got = {f for f in got if f.split("/")[0] not in
                   {k.split(".")[1] for k in PACKAGE_DIR if "." in k}}
        assert got == files, (package, sorted(files ^ got)[:10])


def test_a_fresh_environment_imports_netc_and_nothing_else(installed, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The installed netc first; then this environment's libraries (lark, numpy, torch) as
    # plain folders, so that no .pth file there (an editable install's finder) runs.
    libraries = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    libraries.update(dict.fromkeys(p for p in sys.path if p.endswith("-packages")))
    (site / "netc_test.pth").write_text("\n".join([str(installed), *libraries]) + "\n")
    probe = tmp_path / "probe"
    probe.mkdir()
    code = f"""
import importlib.util, sys
for name in ("compiler", "dsl", "runtime", "model_specs"):
    spec = importlib.util.find_spec(name)  # PyPI has packages named compiler and runtime
    assert spec is None or not spec.origin.startswith(({str(installed)!r}, {str(ROOT)!r})), name
assert {str(ROOT)!r} not in sys.path
import netc
assert netc.__file__.startswith({str(installed)!r}), netc.__file__
net = netc.load("lenet5")
print(net.name, net.summary().params, netc.__version__)
"""
    done = subprocess.run([str(python), "-c", code], cwd=probe, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[:2] == ["lenet5", "61750"]
    cli = subprocess.run([str(python), "-m", "netc.runtime.cli", "check", "lenet5"], cwd=probe,
                         capture_output=True, text=True, timeout=300)
    assert cli.stdout.startswith("OK lenet5: 61,750 params"), cli.stderr[-3000:]
