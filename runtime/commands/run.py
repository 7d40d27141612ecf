"""Placeholder while the command is written."""


def add_arguments(p):
    pass


def run(args) -> int:
    return 0
