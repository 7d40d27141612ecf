"""Every ``netc`` command in the README's ```sh blocks runs as written, offline, or is listed
below with the reason it cannot (a file only the user has, the network, or minutes of CPU).

Commands run in a fresh folder (with the repository's ``examples/`` beside them), in the order
the README gives them, so a command may use a file an earlier one wrote (``resnet50.onnx``).
A command that uses a file only a skipped command writes is skipped with it. A README command
that is neither run nor listed fails the test: a new one must be classified.
The slow ones run with ``NETC_README_SLOW=1``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]

# A command containing the key is not run; the value says why.
NEEDS_USER_FILES = {
    "--weights r18.safetensors": "trained ResNet-18 weights the user brings",
    "--weights vgg19.safetensors": "trained VGG-19 weights the user brings",
    "--weights googlenet.safetensors": "trained GoogLeNet weights the user brings",
    "bvlc_googlenet.caffemodel": "Caffe's GoogLeNet weights the user brings (the tests write "
                                 "a file in its layout: test_weights_caffemodel.py)",
    "--weights alexnet.safetensors": "trained AlexNet weights the user brings",
    "netc run resnet50.onnx cat.jpg dog.png": "the user's photographs (cat.jpg, dog.png)",
    "convnextish.net ckpt.pth": "the user's net and checkpoint (tests/test_weights_reach.py "
                                "builds and imports them: CONVNEXTISH, ConvNeXtish)",
}
# Merged from other branches at the end of firsthour's session and not yet checked offline
# here (LFW data, files of their own).
UNCHECKED = {
    "netc fit eigenfaces": "needs the LFW faces; not yet checked offline",
    "netc compile eigenfaces": "uses faces.safetensors from `netc fit eigenfaces`",
    "netc eigenfaces": "uses the fitted eigenfaces; not yet checked offline",
    "netc probe lenet5 --weights lenet.safetensors": "a lenet.safetensors the user trained",
}
NOT_HERE = {
    "pip install": "installs packages (network; it would change the test environment)",
    "python -m pytest": "the test suite itself",
}
SLOW = {  # (reason) - run with NETC_README_SLOW=1
    "netc bench resnet50": "torch.compile of ResNet-50: minutes of CPU",
    "--set content_weight=0": "150 L-BFGS steps of VGG-19: half a minute or more",
    "netc train lenet5": "8 epochs of training (seconds to minutes on a busy machine)",
    "netc recipe examples/style.recipe --size 128 --steps 50": "50 L-BFGS steps of VGG-19: "
                                                               "about 20 s of CPU",
    "netc compile vgg16": "draws and writes 528 MiB",
}


def readme_commands() -> list[str]:
    """Each command of the README's sh blocks (``a && b`` are two), comments removed."""
    text = (ROOT / "README.md").read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        block = re.sub(r"\\\n\s*", " ", block)  # a line ending in a backslash goes on
        for line in block.splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out += [part.strip() for part in line.split("&&")]
    return out


def why_not(command: str) -> str | None:
    for table in (NEEDS_USER_FILES, NOT_HERE, UNCHECKED):
        for key, reason in table.items():
            if key in command:
                return reason
    if not os.environ.get("NETC_README_SLOW"):
        for key, reason in SLOW.items():
            if key in command:
                return reason + " (NETC_README_SLOW=1 runs it)"
    return None


def test_every_readme_command_is_run_or_has_a_reason(tmp_path):
    commands = readme_commands()
    assert len(commands) >= 12
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    # The installed netc, as a user runs it (the repository root on PYTHONPATH would add
    # `compiler`, `dsl` and `runtime` as top-level names that the install does not have).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ran, skipped = [], []
    unmade: set[str] = set()  # files that a skipped command would have written
    for command in commands:
        argv = shlex.split(command)
        reason = why_not(command)
        needs = sorted(unmade & set(argv[1:]))
        if not reason and needs:
            reason = f"uses {needs[0]}, which a command skipped above writes"
        if reason:
            skipped.append(f"{command}  ({reason})")
            unmade |= {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-o", "--output")}
            continue
        assert argv[0] == "netc", f"not a netc command and not classified: {command}"
        done = subprocess.run([sys.executable, "-m", "netc.runtime.cli", *argv[1:]], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, command
        ran.append(command)
    print("ran:", *ran, "skipped:", *skipped, sep="\n  ")
    for big in tmp_path.glob("*.onnx"):  # half a GiB of VGG-16 need not stay in /tmp
        big.unlink()
    assert any(c.startswith("netc compile") for c in ran) and any("summary" in c for c in ran)


def test_files_named_by_the_readme_exist():
    # Every path in backquotes under a folder of the repository, so a moved module is noticed;
    # a pattern (`compiler/ops/caffe_*.py`) must match at least one file.
    text = (ROOT / "README.md").read_text()
    folders = "|".join(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
    named = set(re.findall(rf"`((?:{folders})/[\w./*-]+)`", text))
    assert len(named) >= 15
    missing = sorted(path for path in named if not any(ROOT.glob(path)))
    assert not missing
