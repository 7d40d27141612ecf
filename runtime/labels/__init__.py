"""Class names that ship with netc, so ``netc run`` names classes without a download.

``imagenet1k.txt`` holds the 1000 ImageNet-1k (ILSVRC 2012) classes in the index order that
torchvision's and Caffe's ImageNet models use, verbatim from pytorch/hub's
``imagenet_classes.txt`` (commit 6bb7ade92447ed6f5569cfc035ed64ef3e4b633b), which was extracted
from Keras' ``imagenet_class_index.json``: one ``index, name`` line per class. (Two names
repeat, as in the source: ``crane`` the bird, 134, and the machine, 517; ``maillot``, 638 and
639.)
"""

from __future__ import annotations

import re
from importlib import resources

IMAGENET1K = "imagenet1k"


def parse_labels(text: str) -> list[str]:
    """Class names from a labels file: one name a line, or ``index, name`` lines in order."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    numbered = [re.match(r"(\d+),\s*(.*)$", line) for line in lines]
    if lines and all(m and int(m[1]) == i for i, m in enumerate(numbered)):
        return [m[2] for m in numbered]
    return lines


def shipped(name: str) -> list[str]:
    """The names of a shipped label set (``imagenet1k``)."""
    text = resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return parse_labels(text)
