"""``netc zoo``: the built-in nets and the file each lives in."""

from __future__ import annotations


def add_arguments(p):
    pass


def run(args) -> int:
    from compiler.loader import zoo_index

    for name, path in sorted(zoo_index().items()):
        print(f"{name:24s} {path.name}")
    return 0
