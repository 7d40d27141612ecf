"""Recipes in the language: parsing, meaning, and located diagnostics before any work starts."""

from pathlib import Path

import pytest

from netc.compiler.frontend.loader import zoo_index
from netc.compiler.frontend.recipe import load_recipe
from netc.dsl import ast
from netc.dsl.diagnostics import DiagnosticError, UserError, render
from netc.dsl.parser import parse

TINY = (Path(__file__).parent / "recipe_data" / "tiny.net").resolve()
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def write(tmp_path, body, params=""):
    f = tmp_path / "t.recipe"
    f.write_text(f'recipe t{params} {{\n  net "{TINY}:tinyvgg"\n{body}\n}}\n')
    return f


def errors(tmp_path, body, params=""):
    with pytest.raises(DiagnosticError) as err:
        load_recipe(str(write(tmp_path, body, params)))
    return err.value.diagnostics


def test_a_recipe_parses_to_settings_and_a_loss():
    mod = parse('recipe r(w=2) { net vgg16  size 64  loss = w * tv(2) }', "r.recipe")
    (recipe,) = mod.items
    assert isinstance(recipe, ast.Recipe) and recipe.name == "r"
    assert [type(s).__name__ for s in recipe.body] == ["RecipeSetting", "RecipeSetting",
                                                       "RecipeLet"]
    assert recipe.body[0].name == "net" and recipe.body[1].name == "size"


def test_weighted_sum_of_terms_with_parameters_and_resolved_layers(tmp_path):
    plan = load_recipe(str(write(
        tmp_path, "  loss = cw * content(conv4_2) + sw * style(conv1_1, relu2_1, "
                  "weights=[1, 3]) - tv(2) / 4", "(cw=2, sw=1e3)")), {"sw": 10})
    kinds = [(t.kind, t.weight, t.layers, t.layer_weights) for t in plan.terms]
    assert kinds == [("content", 2.0, ("conv4_2",), (1.0,)),
                     ("style", 10.0, ("conv1_1", "relu2_1"), (1.0, 3.0)),
                     ("tv", -0.25, (), ())]
    assert plan.taps == ["conv1_1", "relu2_1", "conv4_2"]  # graph order
    assert plan.content == "astronaut" and plan.styles == ("brick", "gravel")
    assert plan.optimizer.kind == "lbfgs" and plan.optimizer.steps == 300


def test_style_layer_weights_default_to_one_over_l(tmp_path):
    plan = load_recipe(str(write(tmp_path, "  loss = style(conv1_1, conv2_1, conv3_1, "
                                           "conv4_1)")))
    assert plan.terms[0].layer_weights == (0.25,) * 4


def test_unknown_layer_is_located_with_suggestions(tmp_path):
    (d,) = errors(tmp_path, "  loss = content(conv4_9)")
    assert (d.span.line, d.span.col) == (3, 18)
    assert "no layer 'conv4_9' in tinyvgg" in d.message and "conv4_2" in d.message
    assert "t.recipe:3:18: error:" in render([d])


def test_all_mistakes_are_reported_together(tmp_path):
    diags = errors(tmp_path, "  contnet \"astronaut\"\n  optimizer adam(lrr=1)\n"
                             "  loss = stlye(conv1_1) + tv(2, foo=1) + content(relu9)")
    messages = [d.message for d in diags]
    assert any("unknown setting 'contnet'; did you mean content?" in m for m in messages)
    assert any("adam has no option 'lrr'" in m for m in messages)
    assert any("unknown loss term 'stlye'; did you mean style?" in m for m in messages)
    assert any("tv has no option 'foo'" in m for m in messages)
    assert any("no layer 'relu9'" in m for m in messages)
    assert all(d.span is not None for d in diags)


@pytest.mark.parametrize("loss, message", [
    ("content(conv1_1) * style(conv1_1)", "two terms cannot be multiplied"),
    ("3", "a loss is a weighted sum of terms"),
    ("content(conv1_1, conv2_1)", "content takes one layer; got 2"),
    ("style(conv1_1, weights=[1, 2])", "style weights must list 1 numbers"),
    ("activation(conv1_1, channel=16)", "channel must be an integer in 0..15"),
    ("content(image)", "is the network's input"),
    ("unknwn * tv(2)", "unknown name 'unknwn'"),
    ("tv(2) + alpha_norm(6)", "the loss reads no layer of the network"),
])
def test_bad_losses(tmp_path, loss, message):
    diags = errors(tmp_path, f"  loss = {loss}")
    assert any(message in d.message for d in diags), [d.message for d in diags]


def test_missing_net_and_loss(tmp_path):
    f = tmp_path / "t.recipe"
    f.write_text("recipe empty {\n  size 64\n}\n")
    with pytest.raises(DiagnosticError) as err:
        load_recipe(str(f))
    messages = " | ".join(d.message for d in err.value.diagnostics)
    assert "names no network" in messages and "defines no loss" in messages


def test_unknown_net_points_at_the_net_setting(tmp_path):
    f = tmp_path / "t.recipe"
    f.write_text("recipe r {\n  net vgg99\n  loss = tv(2)\n}\n")
    with pytest.raises(DiagnosticError) as err:
        load_recipe(str(f))
    (d,) = err.value.diagnostics
    assert d.span.line == 2 and "vgg99" in d.message


def test_set_reaches_parameters_and_optimiser_options_and_rejects_others(tmp_path):
    f = write(tmp_path, "  optimizer adam(steps=5)\n  loss = w * activation(conv1_1)", "(w=1)")
    plan = load_recipe(str(f), {"w": 4, "steps": 9, "lr": 0.5})
    assert plan.terms[0].weight == 4.0
    assert plan.optimizer.steps == 9 and plan.optimizer.option("lr") == 0.5
    with pytest.raises(UserError, match="no parameter 'x'"):
        load_recipe(str(f), {"x": 1})


def test_a_parameter_can_name_a_layer(tmp_path):
    plan = load_recipe(str(write(tmp_path, "  loss = code(layer)", '(layer="conv3_1")')),
                       {"layer": "pool2"})
    assert plan.terms[0].layers == ("pool2",) and not plan.fixed_size
    plan = load_recipe(str(write(tmp_path, "  loss = code(layer)", '(layer="fc8")')))
    assert plan.fixed_size  # fc8 sits past a flatten: the image must be 64x64


@pytest.mark.parametrize("name, net, taps", [
    ("style", "vgg19", ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1"]),
    ("dream", "googlenet", ["inception_4c.output"]),
    ("invert", "alexnet", ["fc8"]),
])
def test_examples_check_against_the_zoo(name, net, taps):
    if net not in zoo_index():
        pytest.skip(f"{net} is not in the zoo yet")
    plan = load_recipe(str(EXAMPLES / f"{name}.recipe"))
    assert plan.graph.name == net and plan.taps == taps


@pytest.mark.parametrize("module", ["netc.compiler.frontend.recipe", "netc.runtime.recipes.cost",
                                    "netc.runtime.recipes.images", "netc.runtime.recipes.losses"])
def test_docstring_examples(module):
    import doctest
    import importlib

    if module.endswith("losses"):
        pytest.importorskip("torch")
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_cost_counts_only_the_prefix_and_scales_with_the_image():
    from netc.runtime.recipes.cost import choose_tile, estimate, parse_size

    from netc.compiler.frontend.loader import load

    g = load(f"{TINY}:tinyvgg")
    small, big = estimate(g, ["conv1_1"], 64, 64), estimate(g, ["conv1_1"], 128, 128)
    assert small.layers == 2 and small.weight_bytes == 4 * (16 * 27 + 16)
    assert small.activation_bytes == 4 * (3 + 16) * 64 * 64
    assert big.activation_bytes == 4 * small.activation_bytes
    assert estimate(g, ["fc8"], 64, 64).layers == len(g)
    assert parse_size("2G") == 2 * 2**30 and parse_size("512M") == 512 * 2**20
    with pytest.raises(UserError):
        parse_size("lots")
    assert choose_tile(g, ["conv1_1"], 256, 256, budget=small.total) == 64
    assert choose_tile(g, ["conv1_1"], 256, 256, budget=1000) is None


def test_optimiser_schedule_and_its_mistakes(tmp_path):
    plan = load_recipe(str(write(tmp_path, "  optimizer adam(steps=9, milestones=[3, 6], "
                                           "gamma=0.5, jitter=2)\n  loss = -activation(conv1_1)")))
    assert plan.optimizer.option("milestones") == (3, 6)
    assert plan.optimizer.option("gamma") == 0.5 and plan.optimizer.option("jitter") == 2
    (d,) = errors(tmp_path, "  optimizer adam(milestones=3)\n  loss = -activation(conv1_1)")
    assert "milestones lists the steps" in d.message and d.span.line == 3
