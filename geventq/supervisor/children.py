"""Worker processes as the launcher sees them: how they start, beat and speak.

A child is started by fork + exec of a fresh interpreter, so the worker
monkey-patches before anything else loads. Its stderr comes back through a
pipe the launcher copies to its own stderr, keeping the last line: when a
worker cannot start, that line is the reason the pool reports.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import select
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..utils import redact_url

PR_SET_PDEATHSIG = 1
MAX_LINE = 65536  # bytes of an unfinished stderr line kept before it is passed on anyway

try:  # Linux: a worker gets SIGTERM (a warm stop) if the launcher is killed
    _libc: Any = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    _libc.prctl  # noqa: B018  (raises AttributeError off Linux)
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _libc = None


def _child_setup() -> None:  # pragma: no cover - runs in the child, between fork and exec
    # Own process group: a Ctrl-C in a terminal or a killpg of the launcher's
    # group must reach the launcher only. It then sends each worker exactly one
    # SIGTERM; a second one straight from the terminal would mean "cold".
    os.setpgid(0, 0)
    if _libc is not None:
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Spawned:
    """A started process: its pid, and the read end of its stderr pipe."""

    pid: int
    stderr_fd: int | None = None
    popen: subprocess.Popen | None = None

    def reaped(self, status: int) -> None:
        """Tell ``Popen`` the launcher reaped it, so it never waits on a reused pid."""
        if self.popen is not None:
            self.popen.returncode = os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        """Close the stderr pipe."""
        if self.popen is not None and self.popen.stderr is not None:
            self.popen.stderr.close()
        elif self.stderr_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.stderr_fd)
        self.stderr_fd = None


SpawnFunc = Callable[[list[str], Mapping[str, str], bool], Spawned]


def spawn_process(argv: list[str], env: Mapping[str, str], capture_stderr: bool = True) -> Spawned:
    """Fork + exec ``argv`` in its own process group; pipe its stderr back if asked."""
    proc = subprocess.Popen(
        argv,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE if capture_stderr else None,
        preexec_fn=_child_setup,
        close_fds=True,
    )
    fd = None
    if proc.stderr is not None:
        fd = proc.stderr.fileno()
        os.set_blocking(fd, False)
    return Spawned(proc.pid, fd, proc)


class HeartbeatDir:
    """A private directory holding one heartbeat file per worker.

    A new file gets mtime 0, so the first touch by the worker is visible as a
    change: that is how the launcher knows the worker is up.
    """

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="geventq-pool-")

    def create(self, name: str) -> str:
        """Create the heartbeat file of worker ``name``; return its path."""
        path = os.path.join(self.path, name)
        with open(path, "w"):
            pass
        os.utime(path, (0, 0))
        return path

    @staticmethod
    def mtime(path: str) -> float | None:
        """The file's mtime, or None if the file is gone."""
        stat = HeartbeatDir.stat(path)
        return None if stat is None else stat[0]

    @staticmethod
    def stat(path: str) -> tuple[float, int] | None:
        """(mtime, size) of the file, or None if it is gone.

        The mtime is liveness (touched from process start); a non-empty file
        is readiness (the worker writes to it once it is registered in Redis).
        """
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_mtime, st.st_size

    @staticmethod
    def remove(path: str) -> None:
        """Delete one heartbeat file (missing is fine)."""
        with contextlib.suppress(OSError):
            os.unlink(path)

    def cleanup(self) -> None:
        """Delete the directory and whatever is left in it."""
        shutil.rmtree(self.path, ignore_errors=True)


@dataclass
class Child:
    """One worker process and everything the launcher tracks about it."""

    slot: int
    generation: int
    name: str
    process: Spawned
    heartbeat: str
    started: float
    role: str = "active"  # "active" | "incoming" (reload) | "retiring"
    last_beat: float = 0.0  # clock time the heartbeat last changed
    beat_mtime: float = 0.0  # the mtime seen at that time
    beating: bool = False  # touched its heartbeat at least once (the process is alive)
    ready: bool = False  # wrote to its heartbeat file: registered, taking jobs
    terms_sent: int = 0
    stop_deadline: float | None = None
    killed: str | None = None  # why the launcher SIGKILLed it
    last_line: str = ""
    partial: bytes = field(default=b"", repr=False)

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def observe_beat(self, mtime: float | None, now: float, size: int = 0) -> bool:
        """Record the heartbeat file's mtime; True if it changed since last time."""
        if size > 0:
            self.ready = True
        if mtime is None or mtime == self.beat_mtime:
            return False
        self.beat_mtime = mtime
        self.last_beat = now
        self.beating = True
        return True


def pump_stderr(child: Child, out: TextIO, final: bool = False) -> bool:
    """Copy what the child wrote to stderr to ``out``; False at end of file.

    Whole lines only (a partial line waits for its end, unless ``final``);
    URLs lose their credentials on the way.
    """
    fd = child.process.stderr_fd
    if fd is None:
        return False
    alive = True
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            break
        except OSError:
            data = b""
        if not data:
            alive = False
            break
        chunks.append(data)
        if not final:
            break  # one read per wake-up: a chatty child cannot starve the loop
    buf = child.partial + b"".join(chunks)
    lines = buf.split(b"\n")
    child.partial = lines.pop()
    if len(child.partial) > MAX_LINE:  # a line without end: pass it on rather than hoard it
        lines.append(child.partial)
        child.partial = b""
    if (final or not alive) and child.partial:
        lines.append(child.partial)
        child.partial = b""
    for raw in lines:
        # the line's passwords hidden (the launcher remembered those of its settings)
        text = redact_url(raw.decode("utf-8", "replace").rstrip("\r")) or ""
        with contextlib.suppress(OSError, ValueError):
            out.write(text + "\n")
        if text.strip():
            child.last_line = text.strip()
    if lines:
        with contextlib.suppress(OSError, ValueError):
            out.flush()
    return alive


def describe_exit(status: int) -> tuple[int, str]:
    """``(exit code, words)``; the code is negative when a signal killed it."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return code, f"was killed by {name}"
    return code, f"exited with code {code}"


def wait_for_output(wake_fd: int, children: Iterable[Child], timeout: float, out: TextIO) -> bool:
    """Sleep until ``wake_fd`` is readable, a child writes to stderr, or timeout.

    What children wrote is copied to ``out``; a stderr pipe at end of file is
    closed. Returns True if ``wake_fd`` (the self-pipe) is readable.
    """
    by_fd = {c.process.stderr_fd: c for c in children if c.process.stderr_fd is not None}
    try:
        ready, _, _ = select.select([wake_fd, *by_fd], [], [], timeout)
    except OSError as exc:  # EINTR is retried by Python itself (PEP 475)
        if exc.errno != errno.EBADF:
            raise
        return False
    for fd in ready:
        if fd != wake_fd and not pump_stderr(by_fd[fd], out):
            by_fd[fd].process.close()
    return wake_fd in ready
