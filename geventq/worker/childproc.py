"""One fork child as its worker sees it: the pipes to it, waiting for it, ending it.

Written on the standard library only (``select.poll``, ``os.read``,
``os.waitpid``, ``time.sleep``), so that the same code serves a hub-free
worker (a thread waits for each child) and a gevent worker (a greenlet waits
for each child). On greenlets it is cooperative only once gevent has patched
``select`` (``poll``), ``os`` (``waitpid``, and ``fork``, which gevent's
child watcher needs for that ``waitpid``) and ``time`` (``sleep``):
``GeventWorker``'s ``patch_all`` does it. The reads are made only once the
pipe is readable, on a non-blocking descriptor.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from typing import Literal

from .forkchild import FRAME_HEADER, JOB, close_fd, send_frame

TIMED_OUT: Literal["timed out"] = "timed out"


class ChildProcess:
    """One forked child: we write job ids to ``requests_fd`` and read frames from ``replies_fd``."""

    def __init__(self, pid: int, requests_fd: int, replies_fd: int):
        self.pid = pid
        self.requests_fd = requests_fd
        self.replies_fd = replies_fd  # non-blocking
        self.jobs = 0
        self.doomed = False  # signalled to die (a stop): never reused
        self._buffer = bytearray()  # appended to and consumed in place: linear in a big reply
        os.set_blocking(replies_fd, False)

    def send(self, job_id: str) -> None:
        """Hand the child one job id, framed (any id, newlines included, stays one id).

        An idle child's pipe is empty, so the write does not wait."""
        send_frame(self.requests_fd, JOB, job_id.encode("utf-8", "surrogateescape"))

    def receive(self, deadline: float | None) -> tuple[bytes, bytes] | None | Literal["timed out"]:
        """The next frame (kind, body); None when the child is gone (its pipe closed);
        ``TIMED_OUT`` when ``deadline`` (``time.monotonic()``) came first."""
        while True:
            if len(self._buffer) >= FRAME_HEADER.size:
                kind, size = FRAME_HEADER.unpack_from(self._buffer)
                end = FRAME_HEADER.size + size
                if len(self._buffer) >= end:
                    body = bytes(self._buffer[FRAME_HEADER.size:end])
                    del self._buffer[:end]
                    return kind, body
            if not _readable(self.replies_fd, deadline):
                return TIMED_OUT
            try:
                chunk = os.read(self.replies_fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self._buffer += chunk

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    # The pool calls these under its lock: the field is -1 before the number is free
    # again, so a fork never lists a number a new pipe has just taken as one to close.
    def close_requests(self) -> None:
        """The child reads end-of-file, finishes its job if it has one, and exits."""
        fd, self.requests_fd = self.requests_fd, -1
        if fd >= 0:
            close_fd(fd)

    def close(self) -> None:
        self.close_requests()
        fd, self.replies_fd = self.replies_fd, -1
        if fd >= 0:
            close_fd(fd)

    def reap(self, timeout: float | None) -> int | None:
        """Wait for the child to end: its wait status, or None after ``timeout`` seconds."""
        if timeout is None:
            return waitpid(self.pid, 0)[1]
        deadline = time.monotonic() + timeout
        pause = 0.001
        while True:
            pid, status = waitpid(self.pid, os.WNOHANG)
            if pid:
                return status
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)


def _readable(fd: int, deadline: float | None) -> bool:
    """Wait until ``fd`` can be read (or has closed); False once ``deadline`` passed."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        if deadline is None:
            timeout_ms = None
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            timeout_ms = max(1, int(left * 1000 + 0.999))
        if poller.poll(timeout_ms):
            return True


def waitpid(pid: int, options: int) -> tuple[int, int]:
    """``os.waitpid`` (gevent's when patched); a child reaped already gives status -1."""
    try:
        return os.waitpid(pid, options)
    except ChildProcessError:  # reaped already
        return pid, -1


def describe_status(status: int | None) -> str:
    """'was killed by SIGSEGV (signal 11)' / 'exited with code 3', from a wait status."""
    if status is None or status < 0:
        return "ended (its exit status was lost)"
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        hint = " (by hand, or by the kernel's out-of-memory killer)" if signum == signal.SIGKILL \
            else ""
        return f"was killed by {name} (signal {signum}){hint}"
    if os.WIFEXITED(status):
        return f"exited with code {os.WEXITSTATUS(status)} before the job ended"
    return f"ended with wait status {status}"
