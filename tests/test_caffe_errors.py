"""Malformed or unsupported prototxt: a located diagnostic (file:line:col), exit status 1, no
traceback and no output file. Each case runs the command line as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netc.compiler.frontend.loader import load_text
from netc.compiler.importers.caffe import import_prototxt_text
from netc.dsl.diagnostics import DiagnosticError
from netc.runtime.cli import main

HEADER = 'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
CONV = ('layer {\n  name: "c"\n  type: "Convolution"\n  bottom: "data"\n  top: "c"\n'
        '  convolution_param { num_output: 4 kernel_size: 3 }\n}\n')

# (prototxt text, line, column, a fragment of the message)
CASES = {
    "unclosed brace": (HEADER + 'layer {\n  name: "c"\n  type: "ReLU"\n', 6, 7,
                       "this '{' is never closed"),
    "extra closing brace": (HEADER + CONV + "}\n", 13, 1, "unmatched '}'"),
    "missing colon": (HEADER + 'layer {\n  name "c"\n}\n', 7, 8, "expected ':'"),
    "stray character": (HEADER + "layer { name: @ }\n", 6, 15, "unexpected character '@'"),
    "unknown layer type": (HEADER + CONV.replace('"Convolution"', '"Convolution3D"'), 8, 9,
                           "unknown layer type 'Convolution3D'"),
    "unknown parameter": (HEADER + CONV.replace("kernel_size", "kernal_size"), 11, 37,
                          "unknown parameter 'kernal_size'"),
    "unknown layer field": (HEADER + CONV.replace("bottom:", "botom:"), 9, 3,
                            "unknown parameter 'botom'"),
    "bottom names no blob": (HEADER + CONV.replace('bottom: "data"', 'bottom: "image"'), 9, 11,
                             "bottom 'image' names no blob"),
    "field given twice": (HEADER + CONV.replace("kernel_size: 3", "kernel_size: 3 num_output: 8"),
                          11, 52, "'num_output' is given twice"),
    "string for a number": (HEADER + CONV.replace("kernel_size: 3", 'kernel_size: "3"'), 11, 50,
                            "kernel_size must be an integer"),
    "eltwise coefficients for PROD": (HEADER + CONV + 'layer { name: "e" type: "Eltwise" '
                                      'bottom: "c" bottom: "c" top: "e" eltwise_param { '
                                      'operation: PROD coeff: 1 coeff: -1 } }\n',
                                      13, 100, "is not for PROD"),
    "detection head": (HEADER + 'layer { name: "pb" type: "PriorBox" bottom: "data" top: "pb" }\n',
                       6, 26, "layer 'pb' (PriorBox) is an SSD detection head"),
    "python layer": (HEADER + 'layer { name: "py" type: "Python" bottom: "data" top: "py" }\n',
                     6, 26, "layer 'py' (Python) is a Python layer"),
    "V0 format": (HEADER + 'layers {\n  layer {\n    name: "conv1"\n    type: "conv"\n  }\n'
                  '  bottom: "data"\n  top: "conv1"\n}\n', 7, 3,
                  "Caffe's 2013 V0 format"),
    "data layer without a shape": ('layer { name: "mnist" type: "Data" top: "data" top: "label"'
                                   ' data_param { source: "x" batch_size: 64 } }\n', 1, 23,
                                   "give it with --input CxHxW"),
    "the labels of a dropped data layer": (
        'layer { name: "d" type: "MemoryData" top: "data" top: "label" memory_data_param { '
        'batch_size: 1 channels: 3 height: 8 width: 8 } }\n'
        'layer { name: "c" type: "Concat" bottom: "data" bottom: "label" top: "c" }\n', 2, 57,
        "bottom 'label' comes from the data layer 'd' (its labels)"),
    "a layer reading values reshaped across the batch": (
        HEADER.replace("input_dim: 1", "input_dim: 2") +
        'layer { name: "r" type: "Reshape" bottom: "data" top: "r" reshape_param { shape { '
        'dim: 4 dim: -1 } } }\nlayer { name: "s" type: "Softmax" bottom: "r" top: "s" }\n',
        7, 43, "which a Reshape made 4x96 from a batch of 2"),
    "convolution without kernel": (HEADER + CONV.replace("kernel_size: 3", ""), 11, 21,
                                   "needs kernel_size"),
    "convolution too big": (HEADER + CONV.replace("kernel_size: 3", "kernel_size: 11"), 8, 3,
                            "output height is -2: (8 + 2*0 - 11)/1 + 1"),
    "group does not divide": (HEADER + CONV.replace("kernel_size: 3", "kernel_size: 3 group: 2"),
                              11, 52, "group 2 must divide the input channels (3)"),
    "input_dim count": (HEADER.replace("input_dim: 8\n", "", 1), 2, 1, "need 4 input_dim"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_prototxt_is_a_located_error(name, tmp_path, capsys, monkeypatch):
    text, line, col, message = CASES[name]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.prototxt").write_text(text)
    assert main(["import", "caffe", "bad.prototxt", "-o", "bad.net"]) == 1
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"bad.prototxt:{line}:{col}: error: "), err
    assert message in first, err
    assert "Traceback" not in err
    assert not (tmp_path / "bad.net").exists()


def test_summary_of_a_malformed_prototxt_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.prototxt").write_text(CASES["unknown layer type"][0])
    assert main(["summary", "bad.prototxt"]) == 1
    assert "bad.prototxt:8:9: error: unknown layer type" in capsys.readouterr().err


def test_a_binary_file_or_a_missing_one_is_an_error_not_a_traceback(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.prototxt").write_bytes(b"name: 1\n\xff\xfe\x00weights")
    assert main(["import", "caffe", "w.prototxt"]) == 1
    assert "w.prototxt:2:1: error: this is not a UTF-8 text file" in capsys.readouterr().err
    assert main(["import", "caffe", "missing.prototxt"]) == 1
    assert "cannot read missing.prototxt" in capsys.readouterr().err


def test_a_failed_import_keeps_an_existing_output(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.prototxt").write_text(CASES["unclosed brace"][0])
    (tmp_path / "old.net").write_text("kept")
    assert main(["import", "caffe", "bad.prototxt", "-o", "old.net"]) == 1
    assert (tmp_path / "old.net").read_text() == "kept"


# ---- fuzzing: any edit of a real file imports or gives located diagnostics -----------------
_LENET = (Path(__file__).resolve().parents[2] / "shared" / "reference" / "caffe"
          / "lenet.prototxt")


@pytest.mark.skipif(not _LENET.exists(), reason="the reference Caffe files are not present")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_edit_of_a_prototxt_imports_or_is_located(data):
    """Delete, duplicate or replace a slice of LeNet's text: never a traceback."""
    text = _LENET.read_text()
    start = data.draw(st.integers(0, len(text) - 1))
    end = data.draw(st.integers(start, min(len(text), start + 12)))
    insert = data.draw(st.sampled_from(["", "{", "}", '"', ":", "x", "0", "-1", "layer {",
                                        text[start:end]]))
    mutated = text[:start] + insert + text[end:]
    try:
        load_text(import_prototxt_text(mutated, "fuzz.prototxt"), "fuzz.net")
    except DiagnosticError as err:
        for diag in err.diagnostics:
            assert diag.span is not None and diag.span.line >= 1, diag.message


def test_a_very_long_chain_is_cut_into_statements():
    header = 'input: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 8\ninput_dim: 8\n'
    body = "".join(f'layer {{ name: "r{i}" type: "ReLU" bottom: "data" top: "data" }}\n'
                   for i in range(1000))
    text = import_prototxt_text(header + body, "long.prototxt")
    graph = load_text(text, "long.net")
    assert len(graph.nodes) == 1001 and graph.nodes["r999"].inputs == ("r998",)
    assert "  r59 = data\n" in text and "  r119 = r59\n" in text
