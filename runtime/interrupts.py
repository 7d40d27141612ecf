"""Ctrl-C and SIGTERM: one way to stop, whichever of the two arrives.

A process manager (systemd, Slurm, ``timeout``, ``docker stop``) stops a run with SIGTERM, a
person with Ctrl-C (SIGINT). Both must leave the same state: every output complete or absent,
a training run's last checkpoint kept. Python turns only SIGINT into an exception
(KeyboardInterrupt), whose ``except``/``finally`` clean-ups the commands already have; SIGTERM
would end the process at once and leave temporary files behind. So :func:`install` (called
first thing by ``netc``'s ``main``) makes SIGTERM raise :class:`Terminated`, a
KeyboardInterrupt, and every clean-up written for Ctrl-C runs for it too;
:func:`exit_status` gives the shell's ``128 + signal``. Neither is raised inside an import:
there the exception can cross an extension module's C++ start-up (torch's pybind11) and abort
the process, so the signal is sent again a moment later (:func:`_stop`).

Two smaller tools for code that must not be cut in two:

- :func:`held` blocks both signals for a few system calls (creating a temporary file, the rename
  that publishes an output, removing the temporary file), so a signal arrives just after, never
  between them;
- :class:`DeferredInterrupt` turns the first signal into a flag that a loop reads at a point of
  its choosing (``netc train`` after a step, so the checkpoint and the position agree); a second
  signal stops at once.

>>> exit_status(KeyboardInterrupt()), exit_status(Terminated(signal.SIGTERM))
(130, 143)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(signum)
        self.signum = signum


RETRY_S = 0.05  # a signal that arrives during an import is asked again this much later


def _stop(signum, frame):
    """The handler: raise the signal's exception where the program is, unless that is inside
    an import, where the exception could cross an extension module's C++ (torch's pybind11
    start-up) and abort the process with a core dump; then the signal is sent again shortly,
    until it lands outside the import."""
    if _in_import(frame):
        timer = threading.Timer(RETRY_S, os.kill, (os.getpid(), signum))
        timer.daemon = True
        timer.start()
        return
    raise interruption(signum)


def _in_import(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """Make SIGTERM raise :class:`Terminated` and SIGINT KeyboardInterrupt, both outside
    imports (:func:`_stop`); a SIGINT the shell chose to ignore stays ignored. Main thread only;
    elsewhere nothing."""
    if _main_thread():
        signal.signal(signal.SIGTERM, _stop)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _stop)


def settle() -> None:
    """After the command, when the process is about to end: every output is written, so a stop
    now ends the process at once, quietly, with ``128 + signal`` (raised here, the exception
    would land in an atexit callback and print a traceback). For the process's entry point only
    (:func:`netc.runtime.cli.console`), not for ``main`` called in-process."""
    if _main_thread():
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is _stop:
                signal.signal(signum, _quiet_exit)


def _quiet_exit(signum, frame):
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(128 + signum)


class LineEnds:
    """A text stream that remembers whether its last write ended a line. ``print`` writes its
    text and its newline in two calls, and a signal can land between them; the stop message
    then starts a line of its own instead of being glued to a half-printed one."""

    def __init__(self, stream):
        self._stream = stream
        self.at_line_start = True

    def write(self, text: str) -> int:
        # The flag first: a signal that arrives while the write blocks is handled just after it
        # returns, so a flag set after the write would miss exactly that line. Set before, the
        # worst case is one blank line (a stop between the flag and the write).
        if text:
            self.at_line_start = text.endswith("\n")
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def fresh_line(stream) -> str:
    """``"\n"`` when ``stream`` (a :class:`LineEnds`) is in the middle of a line, else ``""``."""
    return "" if getattr(stream, "at_line_start", True) else "\n"


def exit_status(err: BaseException) -> int:
    """The shell's status for a run stopped by ``err``: 128 + the signal's number."""
    return 128 + int(getattr(err, "signum", signal.SIGINT))


def signal_name(err: BaseException) -> str:
    """``SIGINT`` or ``SIGTERM``: which signal ``err`` stands for."""
    return signal.Signals(int(getattr(err, "signum", signal.SIGINT))).name


def interruption(signum: int) -> KeyboardInterrupt:
    """The exception a signal raises: KeyboardInterrupt for SIGINT, else :class:`Terminated`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


@contextlib.contextmanager
def held():
    """Block SIGINT and SIGTERM inside the block; one that arrives is delivered on leaving it.

    For a few system calls that must happen together (never for long work: the run could not
    be stopped).
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class DeferredInterrupt:
    """The first SIGINT or SIGTERM becomes a flag (``hit``, the signal's number) that the loop
    checks with :meth:`check`; a second raises at once. Main thread only (elsewhere it never
    hears a signal and ``check`` does nothing). :meth:`restore` puts the old handlers back."""

    def __init__(self):
        self.hit: int | None = None
        self._old: dict[int, object] = {}
        if _main_thread():
            for signum in STOP_SIGNALS:
                self._old[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        if self.hit is not None:
            _stop(signum, frame)
        self.hit = signum

    def check(self) -> None:
        """Raise the deferred signal's exception, if one came."""
        if self.hit is not None:
            raise interruption(self.hit)

    def restore(self) -> None:
        """The handlers as they were before; idempotent."""
        for signum, old in self._old.items():
            signal.signal(signum, old)
        self._old = {}
