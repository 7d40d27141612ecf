"""The pieces behind issue 10, one by one: file checks, nesting, budgets, linear elaboration."""

from __future__ import annotations

import os
import stat
import time

import pytest

from netc.compiler.analyses.budget import check_int64, check_memory, estimate
from netc.compiler.frontend.elaborate import Elaborator
from netc.compiler.frontend.loader import load, read_program, run_deep
from netc.dsl.diagnostics import SOURCES, DiagnosticError, Span, UserError
from netc.dsl.nesting import MAX_NESTING, nesting_depth
from netc.dsl.parser import parse
from netc.dsl.sources import NotRegular, read_regular
from netc.runtime.files import atomic_path, atomic_write_bytes, check_destination

NET = "net n {{\n  input image: 3x16x16\n  {body}\n}}\n"


# ---- writing --------------------------------------------------------------------------------
def test_dev_null_is_never_a_destination():
    # check_destination only stats: safe to ask about the real device, as root or not.
    with pytest.raises(UserError, match="a device"):
        check_destination("/dev/null")
    with pytest.raises(UserError, match="a device"):
        with atomic_path("/dev/null"):
            pass
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_directory_and_read_only_destinations_are_refused(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="FIFO"):
        atomic_write_bytes(fifo, b"x")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(UserError, match="directory"):
        atomic_write_bytes(tmp_path, b"x")
    ro = tmp_path / "ro.onnx"
    ro.write_text("keep")
    ro.chmod(0o444)
    with pytest.raises(UserError, match="read-only"):
        atomic_write_bytes(ro, b"new")
    assert ro.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "ro.onnx"]  # no temp left


def test_regular_and_new_destinations_are_written_keeping_the_mode(tmp_path):
    new = tmp_path / "sub" / "new.bin"
    atomic_write_bytes(new, b"1")
    assert new.read_bytes() == b"1"
    old = tmp_path / "old.bin"
    old.write_bytes(b"0")
    old.chmod(0o640)
    atomic_write_bytes(old, b"2")
    assert old.read_bytes() == b"2" and stat.S_IMODE(old.stat().st_mode) == 0o640


def test_writing_through_a_symlink_writes_its_target(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"


# ---- reading --------------------------------------------------------------------------------
def test_reading_refuses_fifos_devices_directories_and_loops_at_once(tmp_path):
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    start = time.perf_counter()
    for path, why in [(fifo, "FIFO"), ("/dev/zero", "device"), (tmp_path, "directory")]:
        with pytest.raises(NotRegular, match=why):
            read_regular(path)
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(NotRegular, match="symbolic links"):
        read_regular(tmp_path / "a")
    assert time.perf_counter() - start < 5  # nothing blocked


def test_reading_caps_the_size(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1000)
    assert len(read_regular(big, limit=1000)) == 1000
    with pytest.raises(NotRegular, match="1,000 bytes"):
        read_regular(big, limit=999)


def test_quoting_a_source_line_never_blocks_on_a_fifo(tmp_path):
    fifo = tmp_path / "p.net"
    os.mkfifo(fifo)
    assert SOURCES.line(str(fifo), 1) is None


# ---- nesting and spines ---------------------------------------------------------------------
def test_spines_do_not_count_as_nesting_but_brackets_do():
    chain = parse("def f = relu" + " -> relu" * 3000)
    assert nesting_depth(chain.items[0])[1] is None
    sums = parse("def f = conv(" + " + ".join(["1"] * 3000) + ", 1)")
    assert nesting_depth(sums.items[0])[1] is None
    ladder = parse("def f = " + "if 1 == 2 then relu else " * 1000 + "tanh")
    assert nesting_depth(ladder.items[0])[1] is None
    with pytest.raises(DiagnosticError, match=f"deeper than {MAX_NESTING}"):
        parse("def f = " + "concat[" * (MAX_NESTING + 5) + "relu" + "]" * (MAX_NESTING + 5))


def test_deep_chains_elaborate_at_the_default_recursion_limit(tmp_path):
    import sys

    spec = tmp_path / "c.net"
    spec.write_text(NET.format(body="image" + " -> relu" * 3000))
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        graph = load(str(spec))
    finally:
        sys.setrecursionlimit(old)
    assert len(graph) == 3001


def test_run_deep_returns_and_reraises():
    assert run_deep(lambda: 42) == 42
    with pytest.raises(ZeroDivisionError):
        run_deep(lambda: 1 // 0)


# ---- budgets --------------------------------------------------------------------------------
def test_the_memory_estimate_names_the_numbers_and_the_heaviest_node(tmp_path):
    spec = tmp_path / "m.net"
    spec.write_text(NET.format(body="image -> flatten -> fc(1000) as big -> relu -> fc(10)"))
    graph = load(str(spec))
    e = estimate(graph)
    assert e.params == 768 * 1000 + 1000 + 1000 * 10 + 10
    assert e.weight_bytes == 4 * e.params
    with pytest.raises(DiagnosticError) as err:
        check_memory(graph, 1_000_000)
    d = err.value.diagnostics[0]
    assert f"{e.params:,} parameters x 4 bytes" in d.message and "big (fc" in d.message
    assert d.span.line == 3


def test_int64_is_checked_before_onnx_sees_an_attribute(tmp_path):
    from netc.compiler.ops import Attrs

    spec = tmp_path / "i.net"
    spec.write_text(NET.format(body="image -> relu"))
    graph = load(str(spec))
    node = graph.nodes["relu1"]
    graph.nodes["relu1"] = node.replace(attrs=Attrs(big=(1, 2**63)))
    with pytest.raises(DiagnosticError, match="64-bit"):
        check_int64(graph)


@pytest.mark.parametrize("text", ["inf", "-1G", "0", "nan", "lots", "1e30T", ""])
def test_max_memory_refuses_what_is_no_size(text):
    from netc.runtime.recipes.cost import parse_size

    with pytest.raises(UserError):
        parse_size(text)


def test_the_step_budget_stops_work_that_makes_nothing(tmp_path):
    spec = tmp_path / "e.net"
    spec.write_text(NET.format(body="image -> ((relu * 0) for i in 1..1000000000000) -> relu"))
    start = time.perf_counter()
    with pytest.raises(DiagnosticError, match="makes nothing"):
        load(str(spec))
    assert time.perf_counter() - start < 30


# ---- linear elaboration ---------------------------------------------------------------------
def _elaborate_seconds(tmp_path, body: str) -> float:
    spec = tmp_path / "lin.net"
    spec.write_text(NET.format(body=body))
    program = read_program(spec)
    # CPU time of this thread, best of 3: wall time on a loaded machine measured the load.
    best = float("inf")
    for _ in range(3):
        run_deep(lambda: _timed(lambda: Elaborator(program.defs).net(program.nets["n"])))
        best = min(best, _timed.seconds)
    return best


def _timed(fn):
    """Run ``fn`` and keep the CPU time of the thread it ran on (run_deep's own thread)."""
    start = time.thread_time()
    fn()
    _timed.seconds = time.thread_time() - start


@pytest.mark.parametrize("body", [
    "image -> (relu as r) * {n}",
    "image -> conv(4, 3, pad=1) -> residual(conv(4, 3, pad=1) -> bn, shortcut=conv) * {n}",
])
def test_elaboration_is_linear_in_the_nodes(tmp_path, body):
    """4x the blocks must cost well under 16x the time (quadratic): repeated labels and
    residual bodies were O(n²) (10k labels: 33 s)."""
    small = _elaborate_seconds(tmp_path, body.format(n=1000))
    large = _elaborate_seconds(tmp_path, body.format(n=4000))
    assert large / small < 9, (small, large)


def test_spans_of_generated_chains_point_into_the_line():
    mod = parse("def f = relu -> tanh -> bn", "x.net")
    seq = mod.items[0].body
    assert seq.span == Span("x.net", 1, 9, 1, 27)


def test_check_parses_a_file_of_several_nets_once(tmp_path, monkeypatch, cli):
    import netc.compiler.frontend.loader as loader

    spec = tmp_path / "two.net"
    spec.write_text("net a {\n input image: 3x8x8\n image -> relu\n}\n"
                    "net b {\n input image: 3x8x8\n image -> tanh\n}\n")
    calls = []
    real = loader.parse
    monkeypatch.setattr(loader, "parse", lambda text, file: calls.append(file) or real(text, file))
    result = cli("check", spec)
    assert result.code == 0 and result.out.count("OK") == 2
    assert len(calls) == 1, calls


def test_a_tiled_run_merges_a_remainder_too_small_for_the_net(tmp_path, cli):
    """size 36 in tiles of 32 leaves a 4-pixel strip: conv 3x3 -> pool 2 -> conv 3x3 cannot
    take it (it crashed in torch); it joins its neighbour instead, and the run completes."""
    from PIL import Image

    Image.new("RGB", (40, 40), (120, 80, 40)).save(tmp_path / "c.png")
    recipe = tmp_path / "r.recipe"
    recipe.write_text(
        "net small {\n  input image: 3x32x32\n  image -> conv(4, 3) as c1 -> relu as r1"
        " -> maxpool(2) as p1 -> conv(4, 3) as c2\n}\n"
        f'recipe r {{\n  net small\n  content "{tmp_path / "c.png"}"\n  init content\n'
        "  size 36\n  tile 32\n  optimizer adam(steps=1)\n  loss = content(c2)\n}\n")
    result = cli("recipe", recipe, "-o", tmp_path / "out.png")
    assert result.code == 0, result.err
    assert Image.open(tmp_path / "out.png").size == (36, 36)
