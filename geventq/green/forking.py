"""Fork queues: jobs that run in forked child processes, next to the greenlets.

A ``gevent.Timeout`` cannot stop a job that never yields, and such a job
stalls every other greenlet of its worker. Jobs of a fork queue (``--fork-queue
NAME``, or every queue with ``--mode fork``) therefore run in child processes:
at most ``fork_concurrency`` at once, while the worker's other queues keep
running on greenlets in the same process.

Children are forked from the warm worker (modules imported, ``gc.freeze()``
so that the children's collector leaves the inherited pages alone) and kept:
each one takes job after job over a pipe, so a no-op job costs a pipe round
trip, not a fork (forking a 100 MB worker takes milliseconds, on some virtual
machines ten). A child is replaced after a job that timed out, after it died,
and after ``max_jobs_per_child`` jobs (memory a job leaks goes with it). How a
child leaves the parent's hub behind is in :mod:`geventq.green.forkchild`.

The child runs :func:`geventq.execution.execute` and sends back how the job
ended; this side turns that into the same ``Ending`` a greenlet job gives, and
the worker's finisher writes it: registries, dependents, counters and
batching are shared. Exception handlers and callbacks run in the child, next
to the job; for a job killed at its timeout or a child that died, they run
here. The hard timeout: at the job's timeout the child gets SIGTERM, and
SIGKILL ``kill_grace`` seconds later; the job fails with
``JobTimeoutException`` whatever the child was doing (C code included).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import signal
import sys
import time
import traceback
from collections.abc import Iterable
from typing import Any

import gevent
import gevent.os
from gevent.lock import BoundedSemaphore
from gevent.monkey import get_original

from .. import setting_rules
from ..callbacks import run_failure_callback
from ..exceptions import ChildProcessDied, JobTimeoutException, StopRequested
from ..execution import run_exception_handlers, time_limit
from ..job import Job
from ..lifecycle import Ending
from .executor import StopRegion
from .forkchild import CALLBACK, FRAME_HEADER, JOB, REPLY, child_main, encode_frame

logger = logging.getLogger("geventq.worker")

KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL for a child past its job's timeout
MAX_JOBS_PER_CHILD = 500  # then the child is replaced by a fresh fork
CALLBACK_GRACE = 1.0  # seconds a callback may run past its own timeout before its child is killed

# gevent's os.close defers closing a pipe to the next loop turn; a fork in between
# would hand the descriptor to the new child, which then never sees end-of-file.
_close = get_original("os", "close")


def fork_settings(mode: str | None, fork_queues: Iterable[str] | None,
                  fork_concurrency: int | None, queue_names: list[str]) -> tuple[str, list[str], int]:
    """Validate the fork options: (mode, fork queue names in priority order, concurrency)."""
    mode = setting_rules.mode(mode or "gevent", "mode")
    if isinstance(fork_queues, str):
        fork_queues = setting_rules.queue_names(fork_queues, "fork_queues")
    wanted = [getattr(q, "name", q) for q in (fork_queues or ())]
    unknown = [q for q in wanted if q not in queue_names]
    if unknown:
        raise ValueError(f"fork queue(s) {', '.join(map(repr, unknown))} not among the worker's "
                         f"queues ({' '.join(queue_names)}): list them as queues too")
    names = list(queue_names) if mode == "fork" else [q for q in queue_names if q in wanted]
    if fork_concurrency is None:
        fork_concurrency = os.cpu_count() or 1
    fork_concurrency = setting_rules.fork_concurrency(fork_concurrency, "fork_concurrency")
    return mode, names, fork_concurrency


class ChildProcess:
    """One forked child, as the worker sees it."""

    def __init__(self, pid: int, requests_fd: int, replies_fd: int):
        self.pid = pid
        self.requests_fd = requests_fd  # we write job ids
        self.replies_fd = replies_fd  # we read frames
        self.jobs = 0
        self._buffer = b""

    def send(self, job_id: str) -> None:
        """Hand the child one job id, framed (any id, newlines included, stays one id)."""
        data = memoryview(encode_frame(JOB, job_id.encode("utf-8", "surrogateescape")))
        while data:
            data = data[gevent.os.nb_write(self.requests_fd, data):]

    def receive(self) -> tuple[bytes, bytes] | None:
        """The next frame (kind, body), or None when the child is gone."""
        while True:
            if len(self._buffer) >= FRAME_HEADER.size:
                kind, size = FRAME_HEADER.unpack_from(self._buffer)
                end = FRAME_HEADER.size + size
                if len(self._buffer) >= end:
                    body, self._buffer = self._buffer[FRAME_HEADER.size:end], self._buffer[end:]
                    return kind, body
            chunk = gevent.os.nb_read(self.replies_fd, 1 << 16)
            if not chunk:
                return None
            self._buffer += chunk

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def close_requests(self) -> None:
        """The child reads end-of-file, finishes its job if it has one, and exits."""
        if self.requests_fd >= 0:
            with contextlib.suppress(OSError):
                _close(self.requests_fd)
            self.requests_fd = -1

    def close(self) -> None:
        self.close_requests()
        if self.replies_fd >= 0:
            with contextlib.suppress(OSError):
                _close(self.replies_fd)
            self.replies_fd = -1


class ForkPool:
    """Runs jobs in up to ``size`` forked children of a worker, reusing idle children."""

    def __init__(self, worker: Any, queue_names: list[str], size: int,
                 kill_grace: float = KILL_GRACE, max_jobs_per_child: int = MAX_JOBS_PER_CHILD):
        self.worker = worker
        self.queues = frozenset(queue_names)
        self.size = size
        self.kill_grace = kill_grace
        self.max_jobs_per_child = max_jobs_per_child
        self._slots = BoundedSemaphore(size)
        self._idle: list[ChildProcess] = []
        self._children: dict[int, ChildProcess] = {}  # every child not yet reaped

    # -- running one job (in the job's greenlet) --------------------------------
    def run(self, job: Job, stop_region: StopRegion) -> Ending:
        """Run ``job`` in a child; ``ShutdownRequested`` and ``GreenletExit`` propagate
        (the child is killed first, the caller puts the job back on its queue).
        ``stop_region``: the stretch ``geventq stop`` interrupts (the executor's)."""
        with self._slots:
            started = time.monotonic()
            child = None
            try:
                # geventq stop interrupts this stretch only (not the handlers below)
                with stop_region(job):
                    child = self._send(job)
                    reply, why = self._wait(child, job)
            except StopRequested:
                if child is not None:
                    self._kill(child)
                return _ending(job, "stopped", "stopped: geventq stop was requested", started)
            except Exception as error:  # cannot fork, a broken pipe, a reply that cannot be read
                if child is not None:
                    self._kill(child)
                return self._failed(job, error, started)
            except BaseException:  # cold shutdown: the job goes back, its child goes away
                if child is not None:
                    self._kill(child)
                raise
            if reply is not None:
                return self._finished(child, job, reply)
            if why == "died":
                status = self._reap(child, self.kill_grace)
                if status is None:  # its pipe closed, yet it lives on (a job closed the fd)
                    child.signal(signal.SIGKILL)
                    status = self._reap(child, None)
                exc: BaseException = ChildProcessDied(
                    f"the child process {child.pid} running job {job.id} ({job.func_name}) "
                    f"{describe_status(status)}")
            else:
                killed_with = self._terminate(child)
                exc = JobTimeoutException(
                    f"job {job.id} ({job.func_name}) exceeded its {how_long(why)}; its child "
                    f"process {child.pid} was killed with {killed_with}")
            return self._failed(job, exc, started)

    def _send(self, job: Job) -> ChildProcess:
        """Hand the job to an idle child, or to a new one."""
        for attempt in (1, 2):
            child = self._checkout()
            try:
                child.send(job.id)
                return child
            except OSError:  # it died while idle
                self._kill(child)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait(self, child: ChildProcess, job: Job) -> tuple[tuple | None, str]:
        """(reply, '') or (None, why): 'died', or 'job timeout N' / 'callback timeout N'."""
        limit = time_limit(job.timeout)
        what = f"job timeout {limit}"
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                with gevent.Timeout(remaining) as timer:
                    frame = child.receive()
            except gevent.Timeout as exc:
                if exc is not timer:
                    raise
                return None, what
            if frame is None:
                return None, "died"
            kind, body = frame
            if kind == CALLBACK:  # the job returned; its callback gets its own time
                seconds = float(body or 0)
                what = f"callback timeout {seconds:g}"
                limit = time_limit(seconds)
                deadline = None if limit is None else time.monotonic() + limit + CALLBACK_GRACE
            elif kind == REPLY:
                return pickle.loads(body), ""

    def _finished(self, child: ChildProcess, job: Job, reply: tuple) -> Ending:
        outcome, payload, extra, default_ttl = reply
        ending = Ending(job, outcome, payload, extra=dict(extra))
        if default_ttl is not None:
            ending.default_result_ttl = default_ttl
        child.jobs += 1
        if child.jobs >= self.max_jobs_per_child:
            self._retire(child)
        else:
            self._idle.append(child)
        return ending

    def _failed(self, job: Job, exc: BaseException, started: float) -> Ending:
        """The ending of a job whose child was killed or died: handlers and callback run here."""
        logger.warning("job %s %s failed: %s: %s", job.id, job.func_name, type(exc).__name__, exc)
        exc_info = (type(exc), exc, exc.__traceback__)
        run_exception_handlers(job, exc_info, self.worker.exception_handlers)
        ending = _ending(job, "failed", "".join(traceback.format_exception(*exc_info)), started)
        run_failure_callback(job, exc_info, self.worker.death_penalty)
        return ending

    # -- children -------------------------------------------------------------------
    def _checkout(self) -> ChildProcess:
        while self._idle:
            child = self._idle.pop()
            pid, status = _waitpid(child.pid, os.WNOHANG)
            if pid == 0:
                return child
            logger.warning("idle fork child %d %s; forking another", child.pid,
                           describe_status(status))
            self._forget(child)
        return self._fork()

    def _fork(self) -> ChildProcess:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        inherited = [fd for c in self._children.values() for fd in (c.requests_fd, c.replies_fd)
                     if fd >= 0]
        for stream in (sys.stdout, sys.stderr):  # or the child would print it a second time
            with contextlib.suppress(Exception):
                stream.flush()
        parent = os.getpid()
        gc.freeze()  # the child's collector never touches (so never copies) inherited objects
        try:
            pid = gevent.os.fork_and_watch()
        except BaseException:
            if os.getpid() != parent:  # gevent failed to set up the child: it must not go on
                os._exit(1)  # as if it were the worker
            gc.unfreeze()
            for fd in (requests_r, requests_w, replies_r, replies_w):
                _close(fd)
            raise
        if pid == 0:
            child_main(self.worker, requests_r, replies_w, inherited + [requests_w, replies_r])
        gc.unfreeze()
        _close(requests_r)
        _close(replies_w)
        gevent.os.make_nonblocking(requests_w)
        gevent.os.make_nonblocking(replies_r)
        child = ChildProcess(pid, requests_w, replies_r)
        self._children[pid] = child
        logger.debug("forked child %d for fork queues %s", pid, " ".join(sorted(self.queues)))
        return child

    def _terminate(self, child: ChildProcess) -> str:
        """SIGTERM, then SIGKILL after the grace period; returns what it took."""
        child.signal(signal.SIGTERM)
        if self._reap(child, self.kill_grace) is not None:
            return "SIGTERM"
        child.signal(signal.SIGKILL)
        self._reap(child, None)
        return f"SIGKILL, {self.kill_grace:g} s after an ignored SIGTERM"

    def _kill(self, child: ChildProcess) -> None:
        child.signal(signal.SIGKILL)
        self._reap(child, 5.0)
        self._forget(child)

    def _reap(self, child: ChildProcess, timeout: float | None) -> int | None:
        """Wait (cooperatively) for the child to end; its wait status, or None on timeout."""
        with gevent.Timeout(timeout, False):
            _, status = _waitpid(child.pid, 0)
            self._forget(child)
            return status
        return None

    def _retire(self, child: ChildProcess) -> None:
        """Let a child exit (EOF on its pipe) and reap it in the background."""
        child.close_requests()
        gevent.spawn(self._reap, child, None)

    def _forget(self, child: ChildProcess) -> None:
        if self._children.pop(child.pid, None) is not None:
            child.close()
        if child in self._idle:
            self._idle.remove(child)

    # -- the whole pool ------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> None:
        """End every child: idle ones exit at EOF, any left after ``timeout`` are killed."""
        children = list(self._children.values())
        for child in children:
            child.close_requests()
        deadline = time.monotonic() + timeout
        for child in children:
            if self._reap(child, max(0.0, deadline - time.monotonic())) is None:
                child.signal(signal.SIGKILL)
                self._reap(child, 2.0)
        self._idle = []

    def kill_all(self) -> None:
        """SIGKILL every child now. Safe from any thread (the hub guard's)."""
        try:
            pids = list(self._children)
        except RuntimeError:  # changed under us: the main thread is not as stuck as thought
            pids = list(self._children)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    @property
    def pids(self) -> list[int]:
        return sorted(self._children)


def _waitpid(pid: int, options: int) -> tuple[int, int]:
    try:
        return gevent.os.waitpid(pid, options)
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


def how_long(what: str) -> str:
    """'job timeout 5' -> 'timeout of 5 s'; 'callback timeout 3' -> 'callback's timeout of 3 s'."""
    kind, _, seconds = what.rpartition(" ")
    return ("timeout" if kind == "job timeout" else "callback's timeout") + f" of {seconds} s"


def _ending(job: Job, outcome: str, payload: str, started: float) -> Ending:
    return Ending(job, outcome, payload,
                  extra={"duration": f"{time.monotonic() - started:.6f}"})

