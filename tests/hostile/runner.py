"""Run hostile cases through ``netc``'s ``main`` in one capped process; one JSON line per case.

``python tests/hostile/runner.py CASES.json RESULTS.jsonl WORKDIR`` (the test starts it). The
process runs under RLIMIT_AS (the memory cap: a case that needs more ends in MemoryError, which
is reported as the failure it is) and each case under a SIGALRM timer; each result is written
and flushed before the next case starts, so the parent can restart after a case that hangs in C
code where no signal reaches it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import resource
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class CaseTimeout(BaseException):
    """Raised by the alarm: BaseException, so no ``except Exception`` of netc swallows it."""


def _alarm(signum, frame):
    raise CaseTimeout


def materialise(case_dir: Path, files: dict) -> None:
    """Create a case's files: text, bytes, FIFOs, symlinks, folders, read-only or unreadable
    files, and files made by :mod:`makers`."""
    case_dir.mkdir(parents=True, exist_ok=True)
    for rel, spec in files.items():
        path = case_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if "text" in spec:
            path.write_text(spec["text"], encoding="utf-8", newline="")
        elif "b64" in spec:
            path.write_bytes(base64.b64decode(spec["b64"]))
        elif "zeros" in spec:  # a large file, written sparse
            with open(path, "wb") as f:
                f.truncate(spec["zeros"])
        elif spec.get("fifo"):
            os.mkfifo(path)
        elif "symlink" in spec:
            os.symlink(spec["symlink"], path)
        elif spec.get("dir"):
            path.mkdir(exist_ok=True)
        elif "make" in spec:  # made here, in the case's temporary folder (makers.py)
            from makers import MAKERS

            path.write_bytes(MAKERS[spec["make"]](**spec.get("args", {})))
        if spec.get("readonly"):
            os.chmod(path, 0o444)
        if spec.get("unreadable"):
            os.chmod(path, 0)


def digest(path: Path) -> str | None:
    if path.is_symlink() or not path.exists():
        return None
    if not path.is_file():
        return f"kind:{os.stat(path).st_mode:o}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _head_and_tail(text: str, head: int = 6000, tail: int = 2000) -> str:
    """The first error lines (where the place is) and the last (the count)."""
    return text if len(text) <= head + tail else text[:head] + "\n[...]\n" + text[-tail:]


def run_case(case: dict, work: Path) -> dict:
    from netc.runtime.cli import main

    case_dir = work / case["name"]
    materialise(case_dir, case.get("files", {}))
    outputs = {rel: digest(case_dir / rel) for rel in case.get("outputs", [])}
    argv = [a.replace("{d}", str(case_dir)) for a in case["argv"]]
    out, err = io.StringIO(), io.StringIO()
    code, crash = None, None
    old_cwd = os.getcwd()
    start = time.perf_counter()
    os.chdir(case_dir)
    signal.setitimer(signal.ITIMER_REAL, case.get("limit", 20))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as e:  # argparse: a malformed command line
        code = e.code if isinstance(e.code, int) else 2
    except CaseTimeout:
        crash = f"timeout after {case.get('limit', 20)} s"
    except BaseException:  # noqa: BLE001 - any escape is the failure being looked for
        crash = traceback.format_exc(limit=-8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(old_cwd)
    seconds = time.perf_counter() - start
    changed = [rel for rel, before in outputs.items() if digest(case_dir / rel) != before]
    return {"name": case["name"], "code": code, "stdout": out.getvalue()[-4000:],
            "stderr": _head_and_tail(err.getvalue()), "crash": crash, "seconds": round(seconds, 3),
            "changed": changed, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            // 1024}


def main() -> int:
    cases_file, results_file, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    cap = int(os.environ.get("NETC_HOSTILE_MEMORY", str(2 * 2**30)))
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    sys.path.insert(0, str(ROOT))
    sys.setrecursionlimit(1000)  # Python's default: netc must not depend on a raised limit
    signal.signal(signal.SIGALRM, _alarm)
    cases = json.loads(Path(cases_file).read_text())
    with open(results_file, "a", encoding="utf-8") as results:
        for case in cases:
            results.write(json.dumps({"started": case["name"]}) + "\n")
            results.flush()
            result = run_case(case, work)
            results.write(json.dumps(result) + "\n")
            results.flush()
            if result["crash"] and result["crash"].startswith("timeout"):
                return 3  # a timed-out case may leave a thread running: the parent restarts
    return 0


if __name__ == "__main__":
    sys.exit(main())
