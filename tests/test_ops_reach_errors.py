"""Every bad parameter and every shape the new ops refuse is a located error: ``netc check``
exits 1 with ``file:line:col: error:``, the message, the source line and a caret, never a
traceback. (The ops: deconv, upsample, crop, concat(fit=), padding, broadcasting joins, slice,
chunk, channel_shuffle and the activations.)

Each case is (chain after ``image ->`` on a 3x32x32 input, the text the caret points at, a
fragment of the message). The caret is under an argument when one argument is wrong, and under
the call when the arguments together or the input shape are.
"""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netc.compiler.ir import verify
from netc.compiler.frontend.loader import load
from netc.compiler.lower_onnx.model import lower
from netc.compiler.lower_torch.module import build_module
from netc.compiler.ops import REGISTRY
from netc.compiler.analyses.summary import summarize
from netc.dsl.diagnostics import DiagnosticError

CASES = {
    # deconv
    "deconv-out": ("deconv(0, 3)", "0", "parameter 'out' must be a positive integer"),
    "deconv-stride": ("deconv(8, 3, stride=0)", "stride=0", "'stride' must be a positive"),
    "deconv-pad": ("deconv(8, 3, pad=-1)", "pad=-1", "'pad' must be a non-negative"),
    "deconv-pad-length": ("deconv(8, 3, pad=[1, 2, 3])", "pad=",
                          "[top, left, bottom, right] or same"),
    "deconv-output-pad": ("deconv(8, 3, stride=2, output_pad=2)", "output_pad=",
                          "output_pad [2, 2] must be smaller than the stride [2, 2]"),
    "deconv-same-output-pad": ("deconv(8, 3, stride=2, pad=same, output_pad=1)", "output_pad=",
                               "pad=same sets output_pad itself"),
    "deconv-groups": ("deconv(8, 3, groups=3)", "groups=3", "out=8 is not divisible by groups=3"),
    "deconv-in-groups": ("deconv(8, 3, groups=2)", "deconv(",
                         "3 input channels are not divisible by groups=2"),
    "deconv-init": ("deconv(8, 3, init=gaussian)", "init=", "kaiming, xavier, bilinear"),
    "deconv-cut-away": ("deconv(8, 1, pad=20)", "deconv(",
                        "output height is -8: (32 - 1)*1 - (20 + 20) + 1*(1 - 1) + 0 + 1"),
    "deconv-flat": ("flatten -> deconv(8, 3)", "deconv(", "deconv needs a CxHxW feature map"),
    # padding of conv and pools
    "conv-pad-negative": ("conv(8, 3, pad=[0, 0, -1, 0])", "pad=", "non-negative integer"),
    "conv-pad-word": ("conv(8, 3, pad=valid)", "pad=", "or same; got 'valid'"),
    "conv-same-too-big": ("conv(8, 40, stride=2, pad=same, dilation=1) -> conv(8, 40)",
                          "conv(8, 40)", "(16 + 2*0 - 40)/1 + 1"),
    "pool-pad-whole-kernel": ("maxpool(3, pad=[3, 0, 0, 0])", "pad=",
                              "reaches a whole kernel [3, 3]"),
    "pool-asym-ceil": ("avgpool(2, stride=2, pad=[0, 1, 0, 0], ceil=true)", "ceil=",
                       "ceil=true needs a symmetric pad; got pad=[0, 1, 0, 0]"),
    # upsample
    "upsample-bare": ("upsample", "upsample", "upsample needs a scale or a size"),
    "upsample-both": ("upsample(2, size=[4, 4])", "size=", "not both"),
    "upsample-zero": ("upsample(0)", "0", "'scale' must be a positive finite number"),
    "upsample-negative-pair": ("upsample([2, -1.5])", "[2", "positive finite number (each"),
    "upsample-mode": ("upsample(2, mode=bicubic)", "mode=", "one of nearest, bilinear"),
    "upsample-corners-nearest": ("upsample(2, align_corners=true)", "align_corners=",
                                 "align_corners=true is for mode=bilinear"),
    "upsample-to-nothing": ("upsample(0.01)", "upsample(", "gives 0x0: floor(H·scale)"),
    "upsample-overflow": ("upsample(1e308)", "upsample(", "gives an axis past 2,147,483,647"),
    "upsample-size-zero": ("upsample(size=[0, 4])", "size=", "'size' must be a positive"),
    "upsample-flat": ("flatten -> upsample(2)", "upsample(", "upsample needs a CxHxW"),
    "resize-corners-nearest": ("resize(align_corners=true)[identity, maxpool(2)]",
                               "align_corners=", "align_corners=true is for mode=bilinear"),
    "resize-flat-ref": ("resize[identity, flatten]", "resize[", "resize (its reference) needs"),
    "resize-one-input": ("resize[identity]", "resize[", "resize takes 2 inputs; got 1"),
    # crop and concat(fit=)
    "crop-larger-ref": ("crop[identity, upsample(2)]", "crop[",
                        "cannot cut 3x32x32 to the size of 3x64x64: on axis 2, 64 values"),
    "crop-offsets": ("crop(offset=[1, 2, 3])[identity, conv(8, 3)]", "crop(",
                     "3 offsets for 2 cropped axes"),
    "crop-negative": ("crop(offset=-1)[identity, conv(8, 3)]", "offset=", "'offset' must be"),
    "crop-axis": ("crop(axis=0)[identity, conv(8, 3)]", "axis=",
                  "1 (channels), 2 (height) or 3 (width)"),
    "crop-past-edge": ("crop(offset=5)[identity, conv(8, 3)]", "crop(",
                       "30 values from offset 5 need 35, there are 32"),
    "crop-one-input": ("crop[identity]", "crop[", "crop takes 2 inputs; got 1"),
    "crop-three-inputs": ("crop[identity, identity, identity]", "crop[", "got 3"),
    "crop-flat-ref": ("crop[identity, flatten]", "crop[", "one is flat"),
    "crop-word": ("crop(offset=top)[identity, conv(8, 3)]", "offset=", "or center; got 'top'"),
    "crop-unjoined": ("crop -> relu", "crop", "crop joins branches: write crop[a, b]"),
    "fit-word": ("concat(fit=stretch)[identity, conv(8, 3)]", "fit=", "one of crop, pad"),
    "fit-flat": ("concat(fit=crop)[flatten, flatten]", "concat(", "fit needs CxHxW"),
    "concat-hint": ("concat[identity, conv(8, 3)]", "concat[", "concat(fit=crop)"),
    # broadcasting joins
    "add-channels": ("add[identity, conv(4, 1)]", "add[",
                     "branch 2 gives 4x32x32, branch 1 gives 3x32x32; add needs equal shapes, "
                     "or shapes that broadcast"),
    "mul-flat": ("mul[identity, gap -> flatten -> fc(4)]", "mul[",
                 "branch 2 gives 4, branch 1 gives 3x32x32"),
    "mul-spatial": ("mul[identity, maxpool(2)]", "mul[", "branch 2 gives 3x16x16"),
    "mean-no-broadcast": ("mean[identity, gap]", "mean[", "mean needs equal shapes"),
    # slice, chunk, channel_shuffle
    "slice-outside": ("slice(4)", "slice(", "axis 1 has 3 indices; the range 4..2 is empty"),
    "slice-empty": ("slice(2, 1)", "slice(", "the range 2..0 is empty"),
    "slice-past-end": ("slice(1, 9)", "slice(", "the range 1..8 is outside it"),
    "slice-axis": ("slice(0, 2, axis=4)", "axis=", "1 (channels), 2 (height) or 3 (width)"),
    "slice-float": ("slice(1.5)", "1.5", "'start' must be an integer"),
    "slice-flat-axis": ("flatten -> slice(0, 2, axis=2)", "slice(", "axis 2 is past the 1 axes"),
    "chunk-uneven": ("chunk(2, 0)", "chunk(", "3 indices of axis 1 (3x32x32) do not split"),
    "chunk-index": ("chunk(2, 2)", "2)", "index 2 is not one of the 2 parts (0 .. 1)"),
    "chunk-zero": ("chunk(0, 0)", "0,", "'parts' must be a positive integer"),
    "shuffle-uneven": ("channel_shuffle(2)", "channel_shuffle(",
                       "3 channels (3x32x32) are not divisible by groups=2"),
    "shuffle-zero": ("channel_shuffle(0)", "0", "'groups' must be a positive integer"),
    "shuffle-bare": ("channel_shuffle", "channel_shuffle", "needs arguments"),
    "shuffle-flat": ("flatten -> channel_shuffle(1)", "channel_shuffle(", "CxHxW"),
    # activations
    "softplus-zero": ("softplus(0)", "0", "'beta' must be a positive finite float32 number"),
    "softplus-negative": ("softplus(beta=-1)", "beta=", "positive finite"),
    "prelu-init-float32": ("prelu(init=1e308)", "init=", "'init' must be a finite float32"),
    "prelu-shared": ("prelu(shared=2)", "shared=", "true or false"),
    # The parser (branch hostile) refuses a non-finite literal before prelu sees it.
    "prelu-init": ("prelu(init=1e999)", "1e999", "1e999 is too large to be a number"),
    "relu6-argument": ("relu6(2)", "relu6(", "at most 0 positional arguments"),
    "hardswish-kwarg": ("hardswish(alpha=0.2)", "alpha=", "hardswish has no parameter 'alpha'"),
    "hardtanh-order": ("hardtanh(3, 1)", "1)", "min must be less than max; got min=3, max=1"),
    "hardtanh-equal": ("hardtanh(max=-1)", "max=", "min must be less than max"),
    "hardtanh-float32": ("hardtanh(min=-1e39)", "min=", "'min' must be a finite float32"),
}

HEAD = "net n {\n  input image: 3x32x32\n  image -> "


@pytest.mark.parametrize("case", sorted(CASES))
def test_located_error(case, tmp_path, cli):
    body, at, fragment = CASES[case]
    path = tmp_path / f"{case}.net"
    path.write_text(HEAD + body + "\n}\n")
    result = cli("check", path)
    assert result.code == 1, result.out
    assert "Traceback" not in result.err
    col = len("  image -> ") + body.index(at) + 1
    first = result.err.splitlines()[0]
    assert f"{case}.net:3:{col}: error:" in first, result.err
    assert fragment in result.err, result.err
    caret = result.err.splitlines()[2]
    assert caret.strip().startswith("^") and len(caret) - len(caret.lstrip()) == col + 3


# -- fuzz: any arguments give a graph that lowers, or located errors -------------------------

NEW_OPS = ("deconv", "upsample", "resize", "crop", "slice", "chunk", "channel_shuffle",
           "softplus", "prelu", "hardtanh", "conv", "maxpool", "avgpool", "concat", "mul")
VALUES = ["0", "1", "2", "3", "-1", "7", "33", "10000000", "1099511627776", "0.5", "1.5",
          "1e308", "-2.0", "[1, 2]", "[0, 0, 1, 1]", "[2, 1, 0, 3]", "[]", "[2, -1]",
          "[1.5, 2]", "same", "center", "crop", "pad", "nearest", "bilinear", "true", "false"]


@st.composite
def calls(draw):
    op = draw(st.sampled_from(NEW_OPS))
    names = [p.name for p in REGISTRY[op].params]
    args = draw(st.lists(st.sampled_from(VALUES), max_size=3))
    kwargs = draw(st.dictionaries(st.sampled_from(names), st.sampled_from(VALUES), max_size=3)
                  ) if names else {}
    text = ", ".join(args + [f"{k}={v}" for k, v in kwargs.items()])
    call = f"{op}({text})" if text else op
    if REGISTRY[op].min_inputs > 1 or op in ("concat", "mul"):
        call += draw(st.sampled_from(["[identity, conv(3, 3)]", "[identity, maxpool(2)]",
                                      "[conv(2, 1), gap]", "[identity]"]))
    return call


# 200 by default (about 6 s); NETC_FUZZ_EXAMPLES=3000 passed when these ops were written.
@settings(max_examples=int(os.environ.get("NETC_FUZZ_EXAMPLES", 200)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(calls())
def test_any_arguments_lower_or_are_located_errors(tmp_path_factory, call):
    path = tmp_path_factory.mktemp("args") / "a.net"
    path.write_text(HEAD + call + " -> relu\n}\n")
    try:
        graph = load(str(path), max_nodes=100)
    except DiagnosticError as err:
        assert err.diagnostics and all(d.span is not None for d in err.diagnostics), call
        return
    verify(graph)
    # Small enough to build: lower both ways (a kernel or axis of millions is only checked).
    sizes = [math.prod(n.shape) for n in graph]
    if max(sizes) <= 10**6 and summarize(graph).params <= 10**6:
        lower(graph)
        build_module(graph)
