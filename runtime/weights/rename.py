"""``--rename 'REGEX=REPLACEMENT'``: rules that rewrite a weights file's keys before pairing.

Structure decides most pairings (:mod:`netc.compiler.importers.pairing`); what it cannot decide
(a key the file spells its own way, a wrapper's ``module.`` prefix, a ``backbone.`` that the
spec does not have) a rule says. The rules:

- each is ``REGEX=REPLACEMENT`` in Python's :mod:`re` syntax, split at the last ``=`` (a key
  holds no ``=``, a lookahead ``(?=...)`` may); the replacement may use ``\\1`` and ``\\g<name>``;
- they are applied in the order given, each to every key as the previous rules left it
  (``re.sub``: every match in a key);
- a rule that is not a regex, or whose replacement names a group the regex lacks, ends the
  command line (exit 2); a rule that matches no key is a warning; two keys renamed to one is
  an error naming both;
- for a Caffe model the rules rename its layers (``conv1``, ``loss3/classifier``).

Each renamed key remembers where it came from and which rules changed it, for ``--show``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from netc.compiler.importers.pairing import Layer
from netc.dsl.diagnostics import UserError


@dataclass(frozen=True)
class RenameRule:
    """One ``REGEX=REPLACEMENT`` rule, compiled; ``text`` is how the user wrote it."""

    pattern: re.Pattern
    replacement: str
    text: str


def parse_rule(text: str) -> RenameRule:
    """``REGEX=REPLACEMENT`` compiled and its replacement checked; ``ValueError`` saying what is
    wrong otherwise (the command line turns it into argparse's one-line error)."""
    regex, sep, replacement = text.rpartition("=")
    if not sep or not regex:
        raise ValueError(f"expected REGEX=REPLACEMENT; got {text!r}")
    try:
        pattern = re.compile(regex)
        pattern.sub(replacement, "")  # the replacement's group references are checked here
    except (re.error, IndexError) as err:  # IndexError: an unknown \g<name> (Python 3.11)
        raise ValueError(f"{text!r}: {err}") from None
    return RenameRule(pattern, replacement, text)


def rules_from(rules: Sequence[str | RenameRule | tuple[str, str]]) -> tuple[RenameRule, ...]:
    """Rules from strings, ``(regex, replacement)`` pairs or rules (the Python API's forms);
    a bad one is a :class:`UserError`."""
    out = []
    for rule in rules:
        if isinstance(rule, tuple) and len(rule) == 2:
            rule = f"{rule[0]}={rule[1]}"
        if isinstance(rule, str):
            try:
                rule = parse_rule(rule)
            except ValueError as err:
                raise UserError(f"rename: {err}") from None
        if not isinstance(rule, RenameRule):
            raise UserError(f"rename: expected 'REGEX=REPLACEMENT'; got {rule!r}")
        out.append(rule)
    return tuple(out)


@dataclass(frozen=True)
class Renamed:
    """Where a renamed key came from: the file's key and the rules (numbered from 1) that
    changed it."""

    original: str
    rules: tuple[int, ...]


def rename_keys(keys: Sequence[str], rules: Sequence[RenameRule]
                ) -> tuple[dict[str, Renamed], list[str]]:
    """Every key's new name -> :class:`Renamed`, and a warning for each rule that matched no
    key. Raises :class:`UserError` when two keys end with one name."""
    out: dict[str, Renamed] = {}
    hits = [0] * len(rules)
    for key in keys:
        name, changed = key, []
        for i, rule in enumerate(rules):
            new, matches = rule.pattern.subn(rule.replacement, name)
            hits[i] += matches > 0
            if new != name:
                changed.append(i + 1)
            name = new
        if name in out:
            raise UserError(f"--rename: {out[name].original} and {key} are both renamed to "
                            f"{name}")
        out[name] = Renamed(key, tuple(changed))
    warnings = [f"--rename rule {i + 1} ({rule.text}) matched no key of the file"
                for i, rule in enumerate(rules) if not hits[i]]
    return out, warnings


class _RenamedTensors(Mapping):
    """A file's tensors under their new names, each read (lazily, as the file reads it) under
    its old one."""

    def __init__(self, tensors: Mapping, names: dict[str, Renamed]):
        self._tensors = tensors
        self._names = names

    def __getitem__(self, key):
        return self._tensors[self._names[key].original]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def renamed_source(source, rules: Sequence[RenameRule]):
    """``source`` (a :class:`~netc.runtime.weights.read.Source`) with its keys renamed, or its
    layers for a Caffe model; and the warnings about rules that matched nothing."""
    if not rules:
        return source, []
    if source.caffe:
        return _renamed_caffe(source, rules)
    names, warnings = rename_keys(list(source.shapes), rules)
    shapes = {new: source.shapes[r.original] for new, r in names.items()}
    renamed = {new: r for new, r in names.items() if r.rules}
    return replace(source, shapes=shapes, tensors=_RenamedTensors(source.tensors, names),
                   renamed=renamed), warnings


def _renamed_caffe(source, rules: Sequence[RenameRule]):
    """A Caffe model's layers renamed, and its keys (``LAYER.weight``) with them."""
    names, warnings = rename_keys([layer.name for layer in source.ordered], rules)
    new_of = {r.original: new for new, r in names.items()}
    ordered = [Layer(new_of[layer.name], layer.tensors, layer.op) for layer in source.ordered]
    keys = {}
    for layer in source.ordered:
        for k, _ in layer.tensors:
            keys[f"{new_of[layer.name]}.{k}"] = Renamed(f"{layer.name}.{k}",
                                                        names[new_of[layer.name]].rules)
    return replace(source, ordered=ordered,
                   shapes={k: source.shapes[r.original] for k, r in keys.items()},
                   tensors=_RenamedTensors(source.tensors, keys),
                   strides={new_of.get(k, k): v for k, v in source.strides.items()},
                   types={new_of.get(k, k): v for k, v in source.types.items()},
                   renamed={k: r for k, r in keys.items() if r.rules}), warnings
