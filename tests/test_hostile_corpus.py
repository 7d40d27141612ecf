"""Issue 10's promise over the hostile corpus: exit 1 (2 for a malformed command line) with a
located error, never a traceback, a hang or runaway memory, and no output file created or
changed by a failing run.

Every case of :mod:`hostile.corpus` runs through ``netc``'s ``main`` in a separate process
capped at 2 GB of address space (RLIMIT_AS), each case under a 20 s alarm (some 30-60 s: a
100,000-layer chain) and at Python's default recursion limit. A case that hangs where no signal
reaches it is caught by the parent's watchdog, which restarts the runner after it. The slow
cases (the largest sizes of each class, and the legal edge values that run a whole command)
run with NETC_HOSTILE_FULL=1; every class is in the default run. Issue 23 added every command
since (``hostile/commands.py``: each numeric option at its edges, each file a command reads as
no file) and files that lie (``hostile/inputs.py``: weights, images, data folders).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hostile.corpus import all_cases

FULL = os.environ.get("NETC_HOSTILE_FULL") == "1"
CASES = all_cases(FULL)
RUNNER = Path(__file__).parent / "hostile" / "runner.py"
LOCATED = re.compile(r"^\S[^\n]*:\d+:\d+: error: ")
ONE_LINE = re.compile(r"^(netc: error: |error: |usage: )")


def _complete_lines(path: Path) -> list[str]:
    """The lines the runner has finished writing: a long record can be read half-written (its
    write is flushed in pieces), and only a line that ends in a newline is whole."""
    return path.read_text().split("\n")[:-1]


def _run_all(work: Path) -> dict[str, dict]:
    """Results by case name, restarting the runner after a case that never returns."""
    results: dict[str, dict] = {}
    todo = list(CASES)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONDONTWRITEBYTECODE="1")
    while todo:
        cases_file, out_file = work / "cases.json", work / "results.jsonl"
        cases_file.write_text(json.dumps(todo))
        out_file.write_text("")
        proc = subprocess.Popen([sys.executable, str(RUNNER), str(cases_file), str(out_file),
                                 str(work / "cases")], env=env, cwd=work,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        started, since = None, time.monotonic()
        limits = {c["name"]: c["limit"] for c in todo}
        seen = 0
        while proc.poll() is None:
            time.sleep(0.05)
            lines = _complete_lines(out_file)
            if len(lines) > seen:
                for line in lines[seen:]:
                    record = json.loads(line)
                    if "started" in record:
                        started = record["started"]
                    else:
                        results[record["name"]] = record
                        started = None
                seen, since = len(lines), time.monotonic()
            elif started and time.monotonic() - since > limits[started] + 30:
                proc.kill()  # hung where the alarm cannot reach: C code, a blocking call
                proc.wait()
                results[started] = {"name": started, "crash": "hung past its limit (watchdog)",
                                    "code": None, "stderr": "", "changed": [], "seconds": None}
        for line in _complete_lines(out_file)[seen:]:
            record = json.loads(line)
            if "started" not in record:
                results[record["name"]] = record
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        missing = [c for c in todo if c["name"] not in results]
        if missing and len(missing) == len(todo):  # the runner itself failed to start
            raise RuntimeError(f"the hostile runner died before any case: {stderr[-2000:]}")
        if missing and proc.returncode not in (0, None, -9, 3):  # 3: stopped after a timeout
            # The process died in a case (out of memory outside Python, a signal): record it.
            results[missing[0]["name"]] = {
                "name": missing[0]["name"], "crash": f"runner died ({proc.returncode}): "
                f"{stderr[-1500:]}", "code": None, "stderr": "", "changed": [], "seconds": None}
        todo = [c for c in todo if c["name"] not in results]
    return results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return _run_all(tmp_path_factory.mktemp("hostile"))


def test_the_corpus_covers_every_class():
    classes = {c["klass"] for c in CASES}
    assert classes >= {"parse", "recursion", "arguments", "sizes", "files", "recipes", "cli",
                       "cost", "messages", "options", "command-files", "weights", "images",
                       "folders"}
    assert len(CASES) >= 1000, len(CASES)


def test_the_corpus_covers_every_command_and_numeric_option():
    """A command or a numeric option added to netc is in the corpus the day it is added: the
    option cases are read off the argparse tree, and each command needs a base command line."""
    from hostile.commands import numeric_options

    from netc.runtime.cli import COMMANDS

    commands = {c["argv"][0] for c in CASES if c["argv"]}
    assert commands >= set(COMMANDS), set(COMMANDS) - commands
    named = {(c["argv"][0], a.split("=")[0]) for c in CASES if c["klass"] == "options"
             for a in c["argv"] if a.startswith("--")}
    missing = [(cmd, opt) for cmd, opt, _ in numeric_options()
               if cmd != "recipe" and (cmd.split()[0], opt) not in named]
    assert not missing, missing


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hostile_case(results, case):
    r = results[case["name"]]
    err = r.get("stderr", "")
    assert r["crash"] is None, f"{case['name']}: {r['crash']}\n{err}"
    assert "Traceback" not in err, err
    assert r["code"] in case["codes"], f"exit {r['code']}, wanted {case['codes']}:\n{err}"
    assert not r["changed"], f"a failing run changed or created {r['changed']}"
    if r["code"] == 0:
        return
    # The first line that reports an error (a recipe prints its cost line before refusing).
    first = next((line for line in err.splitlines() if "error:" in line), "")
    if r["code"] == 1 and case["located"]:
        assert LOCATED.match(first), f"not located: {first[:300]}"
    elif r["code"] == 1:
        assert LOCATED.match(first) or ONE_LINE.match(first), first[:300]
    if case["fragment"]:
        assert case["fragment"] in err, err[:2000]
    # Excerpts are capped: no line of an error message is a megabyte long.
    assert max((len(line) for line in err.splitlines()), default=0) < 2000
