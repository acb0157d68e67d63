"""The worker's liveness in Redis: a pulse process, and a native thread that keeps it going.

Other workers take a worker for dead when its key ``worker:<name>`` lapses,
and then run its jobs again. So the key must stay alive exactly as long as the
worker process does, whatever its jobs do. A heartbeat *thread* cannot
promise that: a job in one long C call holds the GIL and the thread cannot
beat. ``Liveness`` therefore starts a pulse (``geventq/pulse.py``), a small
process of its own that refreshes the key every ``HEARTBEAT_INTERVAL`` and
stops the moment the worker's pipe to it closes, which the kernel does when
the worker dies, even by SIGKILL.

A native thread of the worker watches the pulse once per interval (a pulse
that died, killed by hand or by the OOM killer, is started again) and, if no
pulse can run (an exotic connection it cannot imitate, no interpreter to
start), beats from the worker itself as geventq did before, with a warning
that a job holding the GIL can then get the worker taken for dead. The
worker's ``state`` (idle/suspended) goes to the pulse over the same pipe, and
is written with every beat.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from ..connection import pulse_endpoint
from ..pulse import frame
from ..utils import backoff_delay

logger = logging.getLogger("geventq.worker")

PULSE_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "pulse.py")
MAX_RESTARTS = 5  # pulses that died under one worker before it beats from a thread instead
# the worker's environment minus what holds a Redis password (the pulse gets it by pipe)
_SECRET_ENV = ("GEVENTQ_URL", "REDIS_URL")
_IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def native(module: str, name: str) -> Any:
    """The unpatched original when gevent has patched the module.

    A process that never imported gevent has nothing patched: gevent is not imported
    here then (a hub-free worker, ``geventq.ForkWorker``, keeps it out of the process)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return getattr(__import__(module), name)
    return monkey.get_original(module, name)


class StopFlag:
    """The stop flag of a native thread (heartbeat, recovery) and the sleep that heeds it."""

    def __init__(self, step: float):
        self.stopped = False
        self._step = step  # the longest a stop waits to be noticed
        self._sleep = native("time", "sleep")

    def set(self) -> None:
        self.stopped = True

    def pause(self, seconds: float) -> bool:
        """Sleep in short steps so a stop is prompt; False once stopped."""
        end = time.monotonic() + seconds
        while not self.stopped:
            left = end - time.monotonic()
            if left <= 0:
                return True
            self._sleep(min(self._step, left))
        return False


class PulseProcess:
    """One running pulse, seen from the worker: its pid and the worker's two pipe ends.

    ``commands_fd`` writes to the pulse's stdin (configuration, then state);
    ``alive_fd`` reads the pulse's stdout, which reaches end of file when it exits.
    """

    def __init__(self, pid: int, commands_fd: int, alive_fd: int):
        self.pid, self.commands_fd, self.alive_fd = pid, commands_fd, alive_fd
        self._close = native("os", "close")
        self._select = native("select", "select")
        _IN_THIS_PROCESS.add(self)
        _close_pipes_in_forked_children()

    @classmethod
    def spawn(cls, name: str, config: dict[str, Any]) -> PulseProcess:
        """Start ``python -I -S pulse.py NAME`` and send it ``config``; raises OSError."""
        if not sys.executable:
            raise OSError("no Python interpreter to run the pulse (sys.executable is empty)")
        close = native("os", "close")  # gevent's defers it: a fork meanwhile would inherit it
        commands_r, commands_w = _pipe()
        alive_r, alive_w = _pipe()
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        try:
            # gevent's posix_spawn would watch the child from a hub (a thread has none);
            # the signals are blocked from the pulse's first instruction: a Ctrl-C or a kill
            # of the process group must not end the heartbeat of a worker finishing its jobs
            pid = native("os", "posix_spawn")(
                sys.executable, [sys.executable, "-I", "-S", PULSE_SCRIPT, name], env,
                file_actions=[(os.POSIX_SPAWN_DUP2, commands_r, 0),
                              (os.POSIX_SPAWN_DUP2, alive_w, 1)],
                setsigmask=_IGNORED_SIGNALS)
        except BaseException:
            for fd in (commands_w, alive_r):
                close(fd)
            raise
        finally:
            for fd in (commands_r, alive_w):
                close(fd)
        pulse = cls(pid, commands_w, alive_r)
        if not pulse.send(config):
            pulse.stop(timeout=1.0)
            raise OSError("the pulse process exited at once")
        return pulse

    def send(self, message: dict[str, Any]) -> bool:
        """Write one message to the pulse; False if it is gone."""
        data = frame(message)
        try:
            while data:
                data = data[os.write(self.commands_fd, data):]
        except OSError:  # BrokenPipeError: it exited; the keeper starts a new one
            return False
        return True

    def exited(self) -> bool:
        """True once the pulse process has exited (its stdout reached end of file)."""
        if self.alive_fd < 0:
            return True
        readable, _, _ = self._select([self.alive_fd], [], [], 0)
        return bool(readable) and not os.read(self.alive_fd, 1)

    def stop(self, timeout: float = 6.0) -> int | None:
        """Close the pipe (the pulse ends its beat under way, then exits); reap it.

        A pulse still there after ``timeout`` seconds is killed. Returns its exit
        status when this process reaped it (None if gevent's child watcher did).
        """
        if self.commands_fd >= 0:
            self._close(self.commands_fd)
            self.commands_fd = -1
        if self.alive_fd >= 0:
            readable, _, _ = self._select([self.alive_fd], [], [], timeout)
            if not readable:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            self._close(self.alive_fd)
            self.alive_fd = -1
        _IN_THIS_PROCESS.discard(self)
        return _reap(self.pid)

    def forget_in_child(self) -> None:
        """In a forked child: close the worker's pipe ends, so only the worker holds them."""
        for fd in (self.commands_fd, self.alive_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    self._close(fd)
        self.commands_fd = self.alive_fd = -1


class Liveness:
    """Keeps a worker's key alive for as long as the worker process lives.

    ``config`` is what the pulse needs (see ``geventq/pulse.py``) except the
    endpoint, read from ``connection``; ``beat(state)`` refreshes the key from
    this process, for when no pulse can run.
    """

    def __init__(self, name: str, connection: Any, config: dict[str, Any],
                 beat: Callable[[str], None], interval: float):
        self.name = name
        self.connection = connection
        self.config = config
        self.beat = beat
        self.interval = float(interval)
        self.state = str(config.get("state") or "idle")
        self.pulse: PulseProcess | None = None
        self.restarts = 0
        self.why_no_pulse: str | None = None
        self._stop = StopFlag(0.2)
        self._lock = native("_thread", "allocate_lock")()  # guards self.pulse
        self._running = native("_thread", "allocate_lock")()  # held while the thread runs

    def start(self) -> None:
        """Start the pulse (or say why there is none), then the thread that watches it."""
        try:
            self.config["endpoint"] = pulse_endpoint(self.connection)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            self._no_pulse(f"the Redis connection cannot be passed to a pulse process ({exc})")
        else:
            self._spawn()
        self._running.acquire()
        native("_thread", "start_new_thread")(self._run, ())

    def set_state(self, state: str) -> None:
        """The worker's state, written to its key with every beat from now on."""
        self.state = state
        with self._lock:
            if self.pulse is not None:
                self.pulse.send({"state": state})

    def stop(self, timeout: float = 6.0) -> None:
        """Stop beating: the thread first, then the pulse (waiting for a beat under way)."""
        self._stop.set()
        if self._running.acquire(True, timeout):
            self._running.release()
        with self._lock:
            pulse, self.pulse = self.pulse, None
        if pulse is not None:
            pulse.stop(timeout)

    # -- the watching thread ---------------------------------------------------
    def _spawn(self) -> None:
        try:
            self.pulse = PulseProcess.spawn(self.name, dict(self.config, state=self.state))
        except Exception as exc:  # OSError mostly; whatever it is, the worker must beat
            self._no_pulse(f"the pulse process cannot start ({type(exc).__name__}: {exc})")

    def _no_pulse(self, why: str) -> None:
        self.why_no_pulse = why
        logger.warning("worker %s: %s; beating from a thread of the worker instead: a job that "
                       "holds the GIL for longer than the worker TTL gets this worker taken for "
                       "dead, and its jobs run twice", self.name, why)

    def _run(self) -> None:
        try:
            failures = 0
            while self._stop.pause(self.interval if not failures else
                                   backoff_delay(failures, base=0.5, cap=self.interval)):
                with self._lock:
                    if self._stop.stopped:
                        break
                    try:
                        self._check_pulse()
                    except Exception:  # a bug must not end the heartbeat for the worker's life
                        logger.exception("worker %s: checking its pulse process failed",
                                         self.name)
                    pulse = self.pulse
                if pulse is None:
                    failures = self._beat_here(failures)
        finally:
            self._running.release()

    def _check_pulse(self) -> None:
        if self.pulse is None or not self.pulse.exited():
            return
        status = self.pulse.stop(timeout=0)
        self.pulse = None
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            self._no_pulse(f"the pulse process died {self.restarts} times")
            return
        logger.warning("worker %s: the pulse process that keeps its key alive exited (%s); "
                       "starting a new one", self.name, _describe_status(status))
        self._spawn()

    def _beat_here(self, failures: int) -> int:
        try:
            self.beat(self.state)
            return 0
        except Exception as exc:  # Redis away: keep trying, back off with jitter
            logger.warning("heartbeat failed (%s); retrying", type(exc).__name__)
            return failures + 1


# -- file descriptors across fork ------------------------------------------------
_IN_THIS_PROCESS: set[PulseProcess] = set()
_AT_FORK_REGISTERED: list[bool] = []


def _close_pipes_in_forked_children() -> None:
    """Once per process: a forked child (a fork-queue child, a job's multiprocessing)
    closes the pulse pipes it inherited, or the pulse would outlive a killed worker."""
    if not _AT_FORK_REGISTERED:
        _AT_FORK_REGISTERED.append(True)
        os.register_at_fork(after_in_child=_forget_all)


def _forget_all() -> None:
    for pulse in list(_IN_THIS_PROCESS):
        pulse.forget_in_child()
    _IN_THIS_PROCESS.clear()


def _pipe() -> tuple[int, int]:
    """A pipe whose ends are not 0, 1 or 2 (dup2 onto the same number would keep CLOEXEC)."""
    ends = []
    for fd in os.pipe():
        if fd <= 2:
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            native("os", "close")(fd)
            fd = moved
        ends.append(fd)
    return ends[0], ends[1]


def _reap(pid: int) -> int | None:
    """Collect an exited child's status (within a second); None if someone else reaped it."""
    waitpid = native("os", "waitpid")
    end = time.monotonic() + 1.0
    while True:
        try:
            done, status = waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # gevent's SIGCHLD watcher got there first
            return None
        if done:
            return status
        if time.monotonic() > end:
            return None
        native("time", "sleep")(0.005)


def _describe_status(status: int | None) -> str:
    if status is None:
        return "status unknown"
    code = os.waitstatus_to_exitcode(status)
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
