"""Reading input files the way a compiler must: regular files only, with a size cap.

A spec, an include, a prototxt or a recipe's image could name anything: ``/dev/zero`` (endless),
a FIFO (``open`` blocks forever), a directory, a symlink loop, a 3 GB log. :func:`read_regular`
opens without blocking, checks what it opened, and reads at most ``limit`` bytes; every refusal
is a :class:`NotRegular` with one line of text.

>>> import tempfile
>>> try:
...     read_regular(tempfile.mkdtemp())
... except NotRegular as err:
...     print(str(err).endswith("is a directory, not a file"))
True
"""

from __future__ import annotations

import os
import stat

MAX_SOURCE_BYTES = 16 * 2**20  # a spec of 100,000 layers is about 1 MB


class NotRegular(Exception):
    """A path that cannot be read as a file: the message says why, in one line."""


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """The stat of ``path`` if it is a regular file (symlinks followed); NotRegular otherwise."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise NotRegular(f"cannot read {os.fspath(path) or repr('')}: "
                         f"{err.strerror or err}") from None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(f"{os.fspath(path)} is {_kind(st.st_mode)}, not a file")
    return st


def read_regular(path: str | os.PathLike, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them, or NotRegular."""
    name = os.fspath(path)
    if not name:
        raise NotRegular("an empty file name")
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise NotRegular(f"cannot read {name}: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(f"{name} is {_kind(st.st_mode)}, not a file")
        if st.st_size > limit:
            raise NotRegular(f"{name} is {st.st_size:,} bytes; netc reads files of up to "
                             f"{limit:,} bytes")
        chunks, total = [], 0
        while total <= limit:  # the size can change while reading: count what arrives
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise NotRegular(f"{name} is more than {limit:,} bytes; netc reads files of up "
                             f"to {limit:,} bytes")
        return b"".join(chunks)
    except OSError as err:
        raise NotRegular(f"cannot read {name}: {err.strerror or err}") from None
    finally:
        os.close(fd)
