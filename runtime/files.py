"""Files in and out, safely: nothing half-written, nothing clobbered, nothing endless read.

Writing (:func:`atomic_path`): the destination must be a regular file netc may write, or a new
name. ``-o /dev/null``, a FIFO, a directory or a read-only file is refused in one line before
any work is lost (as root, ``os.replace`` would otherwise swap ``/dev/null`` for a file).
Reading: :func:`read_file` and :func:`open_image` read only regular files, with a size cap;
an image whose header claims more pixels than Pillow's decompression-bomb limit is an error.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import warnings
from pathlib import Path
from typing import Callable

from netc.dsl.diagnostics import UserError
from netc.dsl.sources import MAX_SOURCE_BYTES, NotRegular, check_regular, read_regular
from netc.runtime.interrupts import held

MAX_IMAGE_BYTES = 512 * 2**20


def check_destination(path: str | os.PathLike) -> Path:
    """The path to write ``path`` through: itself, or the file a symlink names. UserError if
    it exists and is not a regular, writable file (a device, a FIFO, a directory, read-only).

    Read-only means no write bit at all, so root is refused too (``os.access`` would say yes).
    """
    path = Path(path)
    if not str(path) or str(path) in (".", ".."):
        raise UserError("cannot write to an empty file name")
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return real
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"cannot write {path}: it is a directory")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else \
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else \
            "not a regular file"
        raise UserError(f"cannot write {path}: it is {kind}; netc writes only regular files")
    if not st.st_mode & 0o222 or not os.access(real, os.W_OK):
        raise UserError(f"cannot write {path}: the file is read-only")
    return real


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    On any exception (Ctrl-C and SIGTERM included) the temporary file is removed and ``path``
    is untouched. The destination is checked first (:func:`check_destination`). A write error
    in the block (a full disk, a file-size limit) becomes one line naming ``path``. The
    temporary file's creation, the rename and the removal happen with SIGINT and SIGTERM held
    (:func:`netc.runtime.interrupts.held`), so a signal cannot leave a temporary file behind.
    Two processes writing one ``path`` at once each write their own temporary file, and the
    last rename wins: ``path`` is always one whole file.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = pathlib.Path(tmp).write_text("done")
    >>> target.read_text()
    'done'
    """
    shown = Path(path)
    path = check_destination(path)
    tmp = _temporary_beside(path, shown)
    try:
        yield tmp
        check_destination(path)  # it may have changed while the work ran
        with held():
            # the mode now: a writer that recreates the file (safetensors does) loses it
            os.chmod(tmp, _mode_for(path))
            os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        if err.filename not in (None, str(tmp), str(path)):
            raise  # not this file's: the caller's handler names its file
        raise UserError(f"cannot write {shown}: {err.strerror or err}") from None
    except BaseException:
        _remove(tmp)
        raise


def _temporary_beside(path: Path, shown: Path) -> Path:
    """A new empty file in ``path``'s folder (named ``.NAME.*.tmp``)."""
    tmp = None
    with held():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
        except OSError as err:
            if tmp is not None:
                _remove(Path(tmp))
            raise UserError(f"cannot write {shown}: {err.strerror or err}") from None
    return Path(tmp)


def _mode_for(path: Path) -> int:
    """mkstemp makes the file private (0600): keep an existing file's mode, or give the mode
    any new file would get."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _remove(tmp: Path) -> None:
    with held(), contextlib.suppress(OSError):
        os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once, or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_file(path: str | os.PathLike, what: str = "file",
              limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a regular file, at most ``limit``; UserError (one line) otherwise."""
    try:
        return read_regular(path, limit)
    except NotRegular as err:
        raise UserError(f"{what}: {err}") from None


def open_image(path: str | os.PathLike, mode: str = "RGB"):
    """A fully decoded Pillow image of the regular file ``path``, converted to ``mode``.

    Refused in one line: not a regular file, more than 512 MiB, not an image, or more pixels
    than Pillow's decompression-bomb limit (a PNG header can claim 60000x60000 in 100 bytes).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        st = check_regular(path)
    except NotRegular as err:
        raise UserError(f"cannot read image: {err}") from None
    if st.st_size > MAX_IMAGE_BYTES:
        raise UserError(f"cannot read image {path}: {st.st_size:,} bytes is more than "
                        f"{MAX_IMAGE_BYTES:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return im.convert(mode)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"cannot read image {path}: it claims more than "
                        f"{Image.MAX_IMAGE_PIXELS:,} pixels (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise UserError(f"cannot read image {path}: not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError, MemoryError) as err:
        why = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise UserError(f"cannot read image {path}: {why}") from None


def save_onnx(model, path: str | os.PathLike,
              progress: Callable[[int, int], None] | None = None) -> int:
    """Write the ONNX ``model`` atomically (one file, weights inside); return its size in bytes.

    ``progress(written, total)`` is called after each chunk of 16 MiB.
    """
    data = memoryview(model.SerializeToString())
    chunk = 16 << 20
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for start in range(0, len(data), chunk):
            f.write(data[start:start + chunk])
            if progress:
                progress(min(start + chunk, len(data)), len(data))
    return len(data)
