"""SIGINT/SIGTERM during a run: stop Ray Tune gracefully, then let the caller write what exists.

Outside ``tuner.fit()`` a signal raises :class:`Interrupted`. Inside (:func:`tune_interrupts`) it is
passed to Tune as SIGUSR1, Tune's documented graceful stop: the experiment state is saved, running
trials stay resumable and ``fit()`` returns. A second signal ends the process at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass

from nasattn.config import NasattnError
from nasattn.schema import ExitCode

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(NasattnError):
    """A SIGINT or SIGTERM arrived; ``signum`` says which (exit code 130 or 143: ``128 + signum``)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> ExitCode:  # type: ignore[override]
        return ExitCode(128 + self.signum)


@dataclass
class InterruptState:
    """The first signal received (None: none yet) and whether Tune is the one to stop."""

    signum: int | None = None
    forward_to_tune: bool = False

    @property
    def exit_code(self) -> ExitCode | None:
        return None if self.signum is None else ExitCode(128 + self.signum)


_state = InterruptState()


def state() -> InterruptState:
    return _state


def _handler(signum: int, frame: object) -> None:
    if _state.signum is not None:  # a second signal: stop now, without writing
        os._exit(128 + signum)  # ExitCode.INTERRUPTED / TERMINATED
    _state.signum = signum
    if _state.forward_to_tune and signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN, None):
        os.kill(os.getpid(), signal.SIGUSR1)
        return
    raise Interrupted(signum)


def _install() -> dict[int, object]:
    return {s: signal.signal(s, _handler) for s in SIGNALS}


def _restore(previous: dict[int, object]) -> None:
    for s, h in previous.items():
        signal.signal(s, h)  # type: ignore[arg-type]


@contextlib.contextmanager
def catch_interrupts() -> Iterator[InterruptState]:
    """For a whole command: SIGINT and SIGTERM raise :class:`Interrupted` (handlers restored at exit)."""
    _state.signum, _state.forward_to_tune = None, False
    previous = _install()
    try:
        yield _state
    finally:
        _restore(previous)


@contextlib.contextmanager
def tune_interrupts() -> Iterator[InterruptState]:
    """Around ``tuner.fit()``: a signal makes Tune stop gracefully; ``state().signum`` tells afterwards.

    Re-installs the handlers (``ray.init`` replaces the SIGTERM handler with one that exits) and turns
    Tune's own SIGINT handler off, so both signals take the same path.
    """
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    _state.signum = None
    previous = _install()
    _state.forward_to_tune = True
    try:
        yield _state
    finally:
        _state.forward_to_tune = False
        if _state.signum is None:
            _restore(previous)
        # after a signal the handlers stay: a second one ends the process while outputs are written
