"""The front end's work for `netc lsp`: spans from the tree-less parser, unsaved texts read
instead of files with only the edited file parsed again, and the trace of what each block made
with its cancellation."""

from __future__ import annotations

from pathlib import Path

import pytest

from netc.compiler.frontend import loader
from netc.compiler.frontend.context import Cancelled, Trace
from netc.compiler.frontend.loader import load, read_program
from netc.compiler.frontend.values import Value
from netc.dsl import ast
from netc.dsl.diagnostics import DiagnosticError, Span
from netc.dsl import parser
from netc.dsl.parser import parse, parse_incremental
from netc.runtime.lsp.analysis import real
from netc.runtime.lsp.positions import children

ROOT = Path(__file__).resolve().parents[1]


def spans(text: str) -> dict[str, Span]:
    """The span of the first node of each kind in ``text``, outer nodes first."""
    out: dict[str, Span] = {}
    queue = list(parse(text, "t.net").items)
    while queue:
        node = queue.pop(0)
        out.setdefault(type(node).__name__, node.span)
        queue.extend(children(node))
    return out


def test_spans_cover_the_punctuation_around_a_node_as_lark_positions_do():
    text = "def f(ch) =\n  (conv(ch, 3, pad=1) -> relu) * 2 as g\n"
    got = spans(text)
    assert got["Definition"] == Span("t.net", 1, 1, 2, 40)  # from `def` to the label's end
    assert got["BinOp"] == Span("t.net", 2, 3, 2, 40)  # from the group's `(` on
    assert got["Seq"] == Span("t.net", 2, 4, 2, 30)  # inside the brackets
    assert got["Labelled"] == Span("t.net", 2, 34, 2, 40)  # `2 as g`: postfix binds tighter
    assert got["Call"] == Span("t.net", 2, 4, 2, 22)  # up to and with its `)`
    assert got["Kwarg"] == Span("t.net", 2, 16, 2, 21)
    assert got["Param"] == Span("t.net", 1, 7, 1, 9)


def test_spans_inside_labels_and_input_shapes_are_where_they_are_written():
    text = "net n(s=8) {\n  input image: 3x{s}x{s}\n  image -> conv(8, 3) as c{s + 1}_x\n}\n"
    net = parse(text, "t.net").items[0]
    shape = net.body[0].shape
    assert [d.span if isinstance(d, ast.Node) else d for d in shape] == [
        3, Span("t.net", 2, 19, 2, 20), Span("t.net", 2, 23, 2, 24)]
    label = net.body[1].value.then
    assert isinstance(label, ast.Labelled) and label.parts[0] == "c"
    assert label.parts[1].span == Span("t.net", 3, 28, 3, 33)  # `s + 1`
    with pytest.raises(DiagnosticError) as err:
        parse("net n {\n  input image: 3x8x8\n  image -> relu as a{1 +}\n}\n", "t.net")
    assert (err.value.diagnostics[0].line, err.value.diagnostics[0].column) == (3, 24)


LIB = "def block(ch) = conv(ch, 3, pad=1) -> relu\n"
MAIN = 'include "lib.net"\nnet main {{\n  input image: 3x8x8\n  image -> block({})\n}}\n'


def test_an_unsaved_text_is_read_instead_of_the_file_and_only_it_is_parsed_again(
        tmp_path, monkeypatch):
    (tmp_path / "lib.net").write_text(LIB)
    main = tmp_path / "main.net"
    main.write_text(MAIN.format(4))
    parsed = []
    for name in ("parse", "parse_incremental"):  # a file's text, and an editor's
        real_parse = getattr(loader, name)
        monkeypatch.setattr(loader, name, lambda text, file, real_parse=real_parse:
                            parsed.append(file) or real_parse(text, file))
    assert load(str(main)).nodes["block1.conv1"].shape == (4, 8, 8)
    overlay = {real(main): MAIN.format(16)}  # the editor's text, not saved
    assert load(str(main), overlay=overlay).nodes["block1.conv1"].shape == (16, 8, 8)
    assert [p.rsplit("/", 1)[-1] for p in parsed] == ["main.net", "lib.net", "main.net"]
    program = read_program(main, overlay)
    assert [p.name for p in program.modules] == ["main.net", "lib.net"]
    assert len(parsed) == 3  # the same text again: nothing parsed
    unsaved = tmp_path / "new.net"  # a buffer never saved is a spec too
    assert len(load(str(unsaved), overlay={real(unsaved): MAIN.format(2)})) == 3


def test_the_trace_keeps_each_application_and_a_cancel_stops_elaboration(tmp_path):
    spec = tmp_path / "t.net"
    spec.write_text("def b(ch) = conv(ch, 3, pad=1) -> relu\nnet t {\n  input image: 3x8x8\n"
                    "  image -> b(4) -> b(8)\n}\n")
    trace = Trace()
    graph = load(str(spec), trace=trace)
    conv = next(s for s in trace.applied if s.line == 1 and s.col == 13)
    shapes = [value.shape for _, _, value in trace.applied[conv]]
    assert shapes == [(4, 8, 8), (8, 8, 8)]  # the definition's conv, once per call
    first, end, value = trace.applied[conv][1]
    assert isinstance(value, Value) and list(trace.graph.nodes)[first:end] == ["b2.conv1"]
    assert graph.nodes["b2.conv1"].shape == (8, 8, 8)
    spec.write_text("net t {\n  input image: 3x8x8\n  image -> relu * 100000\n}\n")
    with pytest.raises(Cancelled):
        load(str(spec), trace=Trace(lambda: True))


def outcome(fn, text: str):
    try:
        return repr(fn(text, "z.net"))
    except DiagnosticError as err:
        return repr(err.diagnostics)


@pytest.mark.parametrize("name", ["resnet.net", "vgg.net", "preact_resnet.net", "inception_v3.net"])
def test_parsing_by_items_gives_what_parsing_the_whole_text_gives(name, monkeypatch):
    text = (ROOT / "model_specs" / name).read_text()
    edits = [text] + [text[:k] + text[k + 1:] for k in range(0, len(text), 97)]  # deletions
    edits += [text[:k] + "\nlet " + text[k:] for k in range(0, len(text), 89)]  # cut items
    for edited in edits:
        assert outcome(parse_incremental, edited) == outcome(parse, edited)
    chunks = []
    real_parse = parser.parse
    monkeypatch.setattr(parser, "parse", lambda t, f: chunks.append(t) or real_parse(t, f))
    edited = text.replace("net ", "net  ", 1)  # one item's text changes, no line moves
    assert outcome(parse_incremental, edited) == outcome(real_parse, edited)
    assert len(chunks) == 1 and "net  " in chunks[0]  # only that item's chunk was parsed


def test_the_editor_text_cache_stays_bounded(tmp_path):
    """A long editor session opens many files: the parsed overlay texts are kept for at most
    256 of them, and a cleared entry is parsed again, the same."""
    text = "net a {\n  input x: 1x8x8\n  x -> relu\n}\n"
    first = loader._parse_text(tmp_path / "f0.net", text)
    for i in range(1, 300):
        loader._parse_text(tmp_path / f"f{i}.net", text)
        assert len(loader._PARSED_TEXT) <= 256
    again = loader._parse_text(tmp_path / "f0.net", text)
    assert [type(i).__name__ for i in again.items] == [type(i).__name__ for i in first.items]
