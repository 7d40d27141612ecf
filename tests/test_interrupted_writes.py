"""Writes cut short by the disk: a full disk or a file-size limit is one line that names the
file, exit 1, the old file kept byte for byte and no temporary file left (runtime/files.py).

No small filesystem can be mounted here, so the disk is full two honest ways: in-process, the
file object's ``write`` raises ENOSPC as the kernel would (monkeypatched); in a subprocess, a
real kernel refusal from ``RLIMIT_FSIZE`` (EFBIG, "File too large"), for each writer netc
uses: protobuf bytes (compile), safetensors' Rust writer (weights import), torch.save
(a training checkpoint).
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "tests" / "specs" / "torch_nets.net"
OLD = b"the old file, which must survive\n"


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, cli, monkeypatch):
    import netc.runtime.files as files

    target = tmp_path / "full_disk" / "r.onnx"
    target.parent.mkdir()
    target.write_bytes(OLD)
    monkeypatch.setattr(files, "open", lambda *a, **k: FullDisk(open(*a, **k)), raising=False)
    result = cli("compile", "lenet5", "-o", target)
    assert result.code == 1
    assert result.err.strip().splitlines()[-1] == \
        f"netc: error: cannot write {target}: No space left on device", result.err
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in target.parent.iterdir()) == ["r.onnx"]


def limited(max_bytes: int):
    """For preexec_fn: files may not grow past ``max_bytes``; SIGXFSZ ignored, so the write
    fails with EFBIG instead of killing the process."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


def foreign_weights(tmp_path: Path) -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    from netc.compiler.frontend.loader import load
    from netc.compiler.numerics.seeded_weights import init_weights

    path = tmp_path / "foreign.safetensors"
    weights = init_weights(load(f"{SPECS}:lenet5"), 1)
    save_file({f"net.{k}": np.ascontiguousarray(v) for k, v in weights.items()}, str(path))
    return path


@pytest.mark.parametrize("command", ["compile", "weights-import", "train-checkpoint"])
def test_a_file_size_limit_is_one_line_naming_the_file(tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    if command == "compile":
        target = out / "r.onnx"
        argv = ["compile", f"{SPECS}:lenet5", "-o", target]
    elif command == "weights-import":
        target = out / "r.safetensors"
        argv = ["weights", "import", f"{SPECS}:lenet5", foreign_weights(tmp_path), "-o", target]
    else:
        target = out / "r.ckpt.pt"
        argv = ["train", f"{SPECS}:lenet5", "--epochs", "1", "--steps-per-epoch", "2",
                "--threads", "1", "--no-progress", "--checkpoint", target,
                "-o", out / "w.safetensors"]
    target.write_bytes(OLD)
    done = subprocess.run([sys.executable, "-m", "netc.runtime.cli", *map(str, argv)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          preexec_fn=limited(64 * 1024))  # lenet5's weights are 250 KB
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("netc: error: cannot write ") and str(target) in line, done.stderr
    assert "File too large" in line, line
    assert target.read_bytes() == OLD
    assert sorted(p.name for p in out.iterdir()) == [target.name]
