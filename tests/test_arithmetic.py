"""One arithmetic for the whole language: nets, definitions and recipes agree on every operator,
including floor division and remainder of negative numbers, and division by zero."""

from __future__ import annotations

import pytest

from netc.compiler.frontend.elaborate import Elaborator
from netc.compiler.frontend.recipe_values import RecipeValues
from netc.compiler.frontend.values import POISON
from netc.dsl import ast
from netc.dsl.parser import parse

# The spec's semantics: // rounds toward minus infinity and gives an integer, % takes the
# divisor's sign, so a == (a // b) * b + a % b.
CASES = [
    ("-7 // 2", -4), ("-7 % 2", 1), ("7 // -2", -4), ("7 % -2", -1), ("-7 // -2", 3),
    ("-7 % -2", -1), ("-1 % 3", 2), ("0 // -5", 0), ("-7.5 // 2", -4), ("7.9 // 2", 3),
    ("7.5 % 2", 1.5), ("-7 / 2", -3.5), ("2 * 3 - 10 // 4", 4),
]
# Each with the net language's message (it shows the operands as the spec would write them).
ZERO = [("7 // 0", "7 // 0"), ("7 % 0", "7 % 0"), ("7 / 0", "7 / 0"),
        ("-7.5 // 0.0", "-7.5 // 0"), ("0 % 0", "0 % 0")]


def net_value(expr: str):
    """``expr`` as a net's parameter default: (value, diagnostics)."""
    module = parse(f"net n(k = {expr}) {{ input image: 3x8x8  image -> relu }}", "n.net")
    net = next(i for i in module.items if isinstance(i, ast.Net))
    elaborator = Elaborator({})
    return elaborator.eval(net.params[0].default, {}), elaborator.diags


def recipe_value(expr: str):
    """``expr`` as a recipe's parameter default: (value, diagnostics)."""
    module = parse(f"recipe r(k = {expr}) {{ net vgg16  loss = tv }}", "r.recipe")
    recipe = next(i for i in module.items if isinstance(i, ast.Recipe))
    values = RecipeValues()
    return values.number_or_text(recipe.params[0].default), values.diags


@pytest.mark.parametrize("expr,expected", CASES)
def test_nets_and_recipes_compute_the_same(expr, expected):
    (net, net_diags), (recipe, recipe_diags) = net_value(expr), recipe_value(expr)
    assert not net_diags and not recipe_diags
    assert net == recipe == expected
    assert type(net) is type(recipe) is type(expected)  # // gives an integer in both


@pytest.mark.parametrize("expr,shown", ZERO)
def test_division_by_zero_is_an_error_in_both(expr, shown):
    (net, net_diags), (recipe, recipe_diags) = net_value(expr), recipe_value(expr)
    assert net is POISON and recipe is None
    assert [d.message for d in net_diags] == [f"division by zero in {shown}"]
    assert [d.message for d in recipe_diags] == ["division by zero"]
