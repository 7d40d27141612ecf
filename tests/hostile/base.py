"""What every part of the hostile corpus builds its cases with: the case record and tiny specs.

A case is a dict: ``name``, ``klass`` (the class of hostile input), ``files`` (what to create in
the case's folder: ``text``, ``b64`` bytes, ``zeros`` (a sparse file of that size), ``fifo``,
``symlink``, ``dir``, ``readonly``, ``unreadable``, or ``make`` with ``args`` (a file made by
:mod:`makers` when the case runs)), ``argv`` (``{d}`` is the case's folder), ``codes`` (the exit
statuses allowed: 1 for a user error, 2 for a malformed command line, 0 where a huge but legal
input must simply work), ``fragment`` (text the error must contain), ``located`` (the first
line must be ``file:line:col: error:``), ``outputs`` (files that must not appear or change),
``slow`` (only with NETC_HOSTILE_FULL=1) and ``limit`` (seconds).
"""

from __future__ import annotations

NET = "net n {{\n  input image: {shape}\n  {body}\n}}\n"


def net(body: str, shape: str = "3x32x32") -> str:
    """A one-input net around ``body``."""
    return NET.format(shape=shape, body=body)


def case(name, klass, text=None, argv=None, codes=(1,), fragment=None, located=True,
         files=None, outputs=(), slow=False, limit=20):
    """One case (see the module docstring); ``text`` is written as ``spec.net``."""
    files = dict(files or {})
    if text is not None:
        files["spec.net"] = {"text": text}
    return {"name": name, "klass": klass, "files": files,
            "argv": list(argv if argv is not None else ["check", "spec.net"]),
            "codes": list(codes),
            "fragment": fragment, "located": located, "outputs": list(outputs),
            "slow": slow, "limit": limit}


def make(maker: str, **args) -> dict:
    """A ``files`` entry made by ``makers.MAKERS[maker](**args)`` when the case runs."""
    return {"make": maker, "args": args}
