"""Mutated zoo specs are either accepted or rejected with located diagnostics — never a crash.

Hypothesis deletes, duplicates and swaps tokens and changes numbers in real zoo specs; the
loader must return a graph or raise DiagnosticError whose every diagnostic has a location.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netc.compiler.ir import verify
from netc.compiler.frontend.loader import load, zoo_dir
from netc.dsl.diagnostics import DiagnosticError

TOKEN = re.compile(r"\s+|#[^\n]*|\d+x\d+(?:x\d+)*|\d+\.\d+|\d+|[A-Za-z_]\w*|->|==|//|\S")
SPECS = sorted(p for p in zoo_dir().glob("*.net") if p.stat().st_size < 6000)


def tokens(path) -> list[str]:
    return TOKEN.findall(path.read_text())


@st.composite
def mutated(draw):
    path = draw(st.sampled_from(SPECS))
    toks = tokens(path)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(toks) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "number"]))
        if kind == "delete":
            del toks[i]
        elif kind == "duplicate":
            toks.insert(i, toks[i])
        elif kind == "swap":
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        else:
            nums = [k for k, t in enumerate(toks) if t.isdigit()]
            if nums:
                k = draw(st.sampled_from(nums))
                toks[k] = str(draw(st.sampled_from([0, 1, 2, 3, 7, 64, 1000, 10**9])))
    return path, "".join(toks)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_specs_are_accepted_or_diagnosed(tmp_path_factory, case):
    path, text = case
    target = tmp_path_factory.mktemp("fuzz") / path.name
    target.write_text(text)
    nets = re.findall(r"^\s*net\s+(\w+)", text, re.MULTILINE)
    spec = f"{target}:{nets[0]}" if nets else str(target)
    try:
        graph = load(spec, max_nodes=5000)
    except DiagnosticError as err:
        assert err.diagnostics
        for d in err.diagnostics:
            assert d.message
            if d.span is not None:
                assert d.span.line >= 1 and d.span.col >= 1
        return
    verify(graph)


def test_the_fuzzer_has_specs():
    assert len(SPECS) >= 3
