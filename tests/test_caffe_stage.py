"""The Caffe options of every SPEC command: ``--stage`` for include/exclude rules, the
``--input`` hint from the file's own crop_size, and ``--crop-offsets`` for a Crop without
``crop_param`` (HED's and FCN's forks place it by the layers' geometry)."""

from __future__ import annotations

import re

import pytest

from netc.compiler.importers.caffe import import_prototxt_text
from netc.runtime.cli import build_parser

STAGED = """name: "staged"
layer { name: "data" type: "Input" top: "data" include { stage: "deploy" }
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "train_data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { crop_size: 227 mean_value: 104 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv" bottom: "label" top: "loss"
        include { stage: "train" } }
"""

# HED's side outputs (s9xie/hed, examples/hed/deploy.prototxt) on VGG-16's geometry: conv1_1
# pads by 35, each side output is a 1x1 conv, upsampled by a Deconvolution of kernel 2s and
# stride s, then cut to the input's size by a Crop with no crop_param. Channels are cut to 4.
HED_STAGES = (("conv1_1", "conv1_2"), ("conv2_1", "conv2_2"),
              ("conv3_1", "conv3_2", "conv3_3"), ("conv4_1", "conv4_2", "conv4_3"),
              ("conv5_1", "conv5_2", "conv5_3"))
HED_OFFSETS = [34, 35, 36, 38, 42]  # what HED's own Caffe fork computes


def hed(size: int = 96) -> str:
    body, _ = vgg16_body(first_pad=35)
    out = [f'name: "HED"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: {size}\n'
           f"input_dim: {size}\n", *body]
    for k, convs in enumerate(HED_STAGES, 1):
        out.append(f"layer {{ name: 'score-dsn{k}' type: \"Convolution\" bottom: '{convs[-1]}' "
                   f"top: 'score-dsn{k}' convolution_param {{ num_output: 1 kernel_size: 1 }} }}")
        up = f"score-dsn{k}"
        if k > 1:
            s = 2 ** (k - 1)
            out.append(f"layer {{ type: \"Deconvolution\" name: 'upsample_{s}' bottom: '{up}' "
                       f"top: '{up}-up' convolution_param {{ kernel_size: {2 * s} stride: {s} "
                       "num_output: 1 } }")
            up += "-up"
        out.append(f"layer {{ type: \"Crop\" name: 'crop' bottom: '{up}' bottom: 'data' "
                   f"top: 'upscore-dsn{k}' }}")
    tops = " ".join(f'bottom: "upscore-dsn{k}"' for k in range(1, 6))
    out.append(f'layer {{ name: "concat" type: "Concat" {tops} top: "fuse" }}')
    return "\n".join(out) + "\n"


def vgg16_body(first_pad: int) -> tuple[list[str], str]:
    """VGG-16's convs (4 channels each) and pools 1-4 as prototxt layers, and the last top."""
    out, bottom = [], "data"
    for k, convs in enumerate(HED_STAGES, 1):
        if k > 1:
            out.append(f"layer {{ name: 'pool{k - 1}' bottom: '{bottom}' top: 'pool{k - 1}' "
                       "type: \"Pooling\" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }")
            bottom = f"pool{k - 1}"
        for name in convs:
            pad = first_pad if name == "conv1_1" else 1
            out.append(f"layer {{ bottom: '{bottom}' top: '{name}' name: '{name}' "
                       f"type: \"Convolution\" convolution_param {{ engine: CAFFE num_output: 4 "
                       f"pad: {pad} kernel_size: 3 }} }}")
            out.append(f"layer {{ bottom: '{name}' top: '{name}' name: 'relu_{name}' "
                       "type: \"ReLU\" }")
            bottom = name
    return out, bottom


def layer(name: str, kind: str, bottoms: str, body: str = "") -> str:
    tops = " ".join(f"bottom: '{b}'" for b in bottoms.split())
    return f"layer {{ name: '{name}' type: \"{kind}\" {tops} top: '{name}' {body} }}"


def fcn16s(size: int = 64) -> str:
    """FCN-16s's geometry (shelhamer/fcn.berkeleyvision.org, voc-fcn16s): VGG-16 with conv1_1
    padded by 100, fc6 a 7x7 conv, score_fr upsampled x2 and fused with a 1x1 score of pool4,
    then x16. Its crops carry no crop_param here; the published file writes offsets 5 and 27."""
    body, last = vgg16_body(first_pad=100)
    conv = "convolution_param {{ num_output: {} kernel_size: {} {} }}".format
    body += [
        layer("pool5", "Pooling", last, "pooling_param { pool: MAX kernel_size: 2 stride: 2 }"),
        layer("fc6", "Convolution", "pool5", conv(8, 7, "")),
        layer("score_fr", "Convolution", "fc6", conv(2, 1, "")),
        layer("upscore2", "Deconvolution", "score_fr", conv(2, 4, "stride: 2 bias_term: false")),
        layer("score_pool4", "Convolution", "pool4", conv(2, 1, "")),
        layer("score_pool4c", "Crop", "score_pool4 upscore2"),
        layer("fuse_pool4", "Eltwise", "upscore2 score_pool4c"),
        layer("upscore16", "Deconvolution", "fuse_pool4",
              conv(2, 32, "stride: 16 bias_term: false")),
        layer("score", "Crop", "upscore16 data"),
    ]
    return (f'name: "fcn16s"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: {size}\n'
            f"input_dim: {size}\n" + "\n".join(body) + "\n")


def crop_offsets(spec: str) -> list[list[int]]:
    return [[int(x) for x in m.split(", ")] for m in re.findall(r"crop\(offset=\[([^]]*)\]",
                                                                   spec)]


# ---- --crop-offsets ---------------------------------------------------------------------------

def test_hed_crops_from_geometry_are_the_forks_offsets():
    spec = import_prototxt_text(hed(), "hed.prototxt", crop_offsets="geometry")
    assert crop_offsets(spec) == [[o, o] for o in HED_OFFSETS]


def test_fcn16s_crops_from_geometry_are_the_offsets_its_authors_wrote():
    spec = import_prototxt_text(fcn16s(), "fcn16s.prototxt", crop_offsets="geometry")
    assert sorted(crop_offsets(spec)) == [[5, 5], [27, 27]]


def test_a_crop_without_crop_param_imports_at_zero_with_a_located_warning(cli, tmp_path):
    path = tmp_path / "hed.prototxt"
    path.write_text(hed())
    r = cli("check", path)
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if ": warning: " in line]
    assert len(warnings) == 5
    for line, offset in zip(warnings, HED_OFFSETS):
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: warning: layer 'crop' \(Crop\) has no "
                        "crop_param", line), line
        assert f"(here {offset} px)" in line and "--crop-offsets geometry" in line
    spec = cli("import", "caffe", path).out
    assert crop_offsets(spec) == [[0, 0]] * 5


def test_crop_offsets_geometry_reaches_summary_compile_and_import(cli, tmp_path):
    path = tmp_path / "hed.prototxt"
    path.write_text(hed())
    r = cli("summary", path, "--crop-offsets", "geometry")
    assert r.code == 0 and "warning" not in r.err, r.err
    r = cli("compile", path, "--crop-offsets", "geometry", "-o", tmp_path / "hed.onnx")
    assert r.code == 0 and (tmp_path / "hed.onnx").stat().st_size > 0, r.err
    r = cli("import", "caffe", path, "--crop-offsets", "geometry")
    assert crop_offsets(r.out) == [[o, o] for o in HED_OFFSETS] and "warning" not in r.err


def test_geometry_keeps_a_crop_param_and_refuses_what_it_cannot_place(cli, tmp_path):
    given = hed().replace("top: 'upscore-dsn1' }",
                          "top: 'upscore-dsn1' crop_param { offset: 3 } }")
    spec = import_prototxt_text(given, "hed.prototxt", crop_offsets="geometry")
    assert crop_offsets(spec)[0] == [3, 3]  # the file's own offset wins
    # score-dsn2 without its upsampling: half the input's scale, nothing to line up.
    bad = hed().replace("bottom: 'score-dsn2-up' bottom: 'data'", "bottom: 'score-dsn2' "
                        "bottom: 'data'")
    path = tmp_path / "bad.prototxt"
    path.write_text(bad)
    r = cli("check", path, "--crop-offsets", "geometry")
    assert r.code == 1 and "Traceback" not in r.err
    first = r.err.splitlines()[0]
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: ", first), first
    assert "different scales" in first
    with pytest.raises(SystemExit) as exit_:
        cli("check", path, "--crop-offsets", "centre")
    assert exit_.value.code == 2


# ---- --stage ----------------------------------------------------------------------------------

def test_a_stage_gated_data_layer_names_stage_and_the_files_stages(cli, tmp_path):
    path = tmp_path / "staged.prototxt"
    path.write_text(STAGED)
    r = cli("check", path)
    assert r.code == 1 and "Traceback" not in r.err
    first = r.err.splitlines()[0]
    assert first.startswith(f"{path}:6:50: error: bottom 'data' names no blob"), first
    assert "'data' (Input) by its include rules" in first
    assert "stages given (none)" in first
    assert "name the stages deploy, train" in first and "--stage deploy" in first


@pytest.mark.parametrize("command, extra", [
    ("check", []), ("summary", []), ("compile", ["-o", "{tmp}/s.onnx"]),
    ("draw", ["-o", "{tmp}/s.svg"]), ("import", None)])
def test_stage_reaches_every_command_that_reads_a_prototxt(cli, tmp_path, command, extra):
    path = tmp_path / "staged.prototxt"
    path.write_text(STAGED)
    argv = ["import", "caffe", path] if extra is None else \
        [command, path, *[a.format(tmp=tmp_path) for a in extra]]
    r = cli(*argv, "--stage", "deploy")
    assert r.code == 0, r.err
    without = cli(*argv)
    assert without.code == 1 and "--stage" in without.err


def parsers(parser, path=()):
    """(command path, parser) of every command and subcommand of ``netc``."""
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from parsers(sub, (*path, name))


def test_every_spec_command_takes_stage_and_crop_offsets():
    took = []
    for path, sub in parsers(build_parser()):
        dests = {a.dest for a in sub._actions}
        if {a.dest for a in sub._actions if not a.option_strings} & {"spec", "model"}:
            took.append(" ".join(path))
            assert {"stage", "crop_offsets"} <= dests, path
    assert {"check", "summary", "compile", "draw", "run", "train", "weights import",
            "explain", "bench"} <= set(took), took


# ---- the --input hint -------------------------------------------------------------------------

def test_the_input_hint_uses_the_files_crop_size(cli, tmp_path):
    path = tmp_path / "crop.prototxt"
    path.write_text('name: "c"\nlayer { name: "data" type: "Data" top: "data" top: "label"\n'
                    '  transform_param { crop_size: 227 mean_value: 104 } }\n'
                    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"\n'
                    '  convolution_param { num_output: 2 kernel_size: 3 } }\n')
    r = cli("check", path)
    assert r.code == 1
    assert "--input 3x227x227 (its crop_size is 227" in r.err and "1x28x28" not in r.err
    assert cli("check", path, "--input", "3x227x227").code == 0
