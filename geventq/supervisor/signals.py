"""Signals as a queue plus a self-pipe, so handlers never do real work.

A handler may interrupt the main loop anywhere; it only records the signal and
writes one byte to a pipe, which wakes the loop's ``select``. The loop then
handles the queued signals at a point where its state is consistent.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

# what signal.signal takes and returns (typeshed's private _HANDLER)
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

MAX_QUEUED = 5  # a burst of signals beyond this is dropped, as gunicorn does


class SignalQueue:
    """Queued signal numbers and the self-pipe that wakes the loop."""

    def __init__(self) -> None:
        self.queue: list[int] = []
        self.pipe: tuple[int, int] | None = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old: dict[int, _Handler] = {}

    @property
    def fd(self) -> int:
        """The read end, for ``select``."""
        assert self.pipe is not None
        return self.pipe[0]

    def install(self, queued: Iterable[int], wake_only: Iterable[int] = (signal.SIGCHLD,)) -> None:
        """Handle ``queued`` signals by queueing them; ``wake_only`` just wake the loop."""
        for sig in queued:
            self._old[sig] = signal.signal(sig, self._on_signal)
        for sig in wake_only:
            self._old[sig] = signal.signal(sig, self._on_wake)

    def restore(self) -> None:
        """Put back the handlers found by ``install``."""
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if len(self.queue) < MAX_QUEUED:
            self.queue.append(signum)
        self.wakeup()

    def _on_wake(self, signum: int, frame: FrameType | None) -> None:
        self.wakeup()

    def push(self, signum: int) -> None:
        """Queue a signal as if it had been received (tests, internal requests)."""
        self._on_signal(signum, None)

    def pop(self) -> int | None:
        """The oldest queued signal, or None."""
        return self.queue.pop(0) if self.queue else None

    def wakeup(self) -> None:
        """Write a byte to the self-pipe so ``select`` returns."""
        if self.pipe is not None:
            with contextlib.suppress(OSError):  # full pipe: the loop is awake anyway
                os.write(self.pipe[1], b".")

    def drain(self) -> None:
        """Empty the self-pipe after a wake-up."""
        with contextlib.suppress(OSError):
            while os.read(self.fd, 4096):
                pass

    def close(self) -> None:
        """Restore the handlers and close the pipe."""
        self.restore()
        if self.pipe is not None:
            for fd in self.pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.pipe = None
