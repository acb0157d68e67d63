"""Fork queues: jobs that run in pre-forked child processes of the worker.

A job of a fork queue (``--fork-queue NAME``, or every queue with ``--mode
fork``) runs in a child process: at most ``fork_concurrency`` at once. The
pool serves both kinds of worker: a hub-free ``ForkWorker`` (a thread waits
for each child) and a ``GeventWorker`` with fork queues (a greenlet waits for
each child, next to the greenlet jobs). It is written on the standard library
(:mod:`geventq.worker.childproc`), which is cooperative on greenlets only once
gevent has patched ``select`` (``poll``), ``os`` (``waitpid``, ``fork``) and
``time`` (``sleep``): ``GeventWorker``'s ``patch_all`` does it.

Children are forked from the warm worker (modules imported, ``gc.freeze()``
so that the children's collector leaves the inherited pages alone) and kept:
each one takes job after job over a pipe, so a no-op job costs a pipe round
trip, not a fork (forking a 100 MB worker takes milliseconds, on some virtual
machines ten). A child is replaced after a job that timed out or was stopped,
after it died, and after ``max_jobs_per_child`` jobs (memory a job leaks goes
with it). The inside of a child is :mod:`geventq.worker.forkchild`.

The child runs :func:`geventq.execution.execute` and sends back how the job
ended; this side turns that into the same ``Ending`` any job gives, and the
worker's finisher writes it. Exception handlers and callbacks run in the
child, next to the job; for a job killed at its timeout or a child that died,
they run here. The hard timeout: at the job's timeout the child gets SIGTERM,
and SIGKILL ``kill_grace`` seconds later; the job fails with
``JobTimeoutException`` whatever the child was doing (C code included).
``cancel`` (``geventq stop``, a cold shutdown) kills a job's child at once.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..callbacks import run_failure_callback
from ..endings import Ending
from ..exceptions import ChildProcessDied, JobTimeoutException, ShutdownRequested
from ..execution import run_exception_handlers, time_limit
from ..job import Job
from .childproc import TIMED_OUT, ChildProcess, close_fd, describe_status, waitpid
from .forkchild import CALLBACK, REPLY, child_main

logger = logging.getLogger("geventq.worker")

KILL_GRACE = 1.0  # seconds between SIGTERM and SIGKILL for a child past its job's timeout
MAX_JOBS_PER_CHILD = 500  # then the child is replaced by a fresh fork
CALLBACK_GRACE = 1.0  # seconds a callback may run past its own timeout before its child is killed
RETIRE_WAIT = 1.0  # seconds a job's end waits for the idle child it retired to exit (at EOF)
KILL_WAIT = 5.0  # seconds to reap a SIGKILLed child before leaving it to a later reaping pass
STOPPED, SHUTDOWN = "stopped", "shutdown"  # why a job was cancelled


@dataclass
class _Handover:
    """One job handed to the pool: when, to which child, what went wrong, why cancelled."""

    started: float  # handed to the pool: the start of the duration it reports
    child: ChildProcess | None = None
    sent: float | None = None  # its child got it: the start of its timeout
    error: Exception | None = None
    cancelled: str | None = None  # STOPPED / SHUTDOWN


class ForkPool:
    """Runs jobs in forked children of a worker, reusing idle children.

    The caller runs at most ``size`` jobs at once (its executor's slots): ``start``
    in the loop's thread, then ``run`` in a thread (or greenlet) per job; ``cancel``
    and ``kill_all`` from any thread. ``in_child`` runs first in every new child (a
    gevent worker's: leave its hub).
    """

    def __init__(self, worker: Any, queue_names: list[str], size: int,
                 kill_grace: float = KILL_GRACE, max_jobs_per_child: int = MAX_JOBS_PER_CHILD,
                 in_child: Callable[[], object] | None = None):
        self.worker = worker
        self.queues = frozenset(queue_names)
        self.size = size
        self.kill_grace = kill_grace
        self.max_jobs_per_child = max_jobs_per_child
        self.in_child = in_child
        self._lock = threading.Lock()  # the fields below; held across a fork
        self._idle: list[ChildProcess] = []
        # every child not yet reaped (so kill_all reaches it); a child's descriptors change
        # only under the lock, as ``_fork`` lists the open ones for the new child to close
        self._children: dict[int, ChildProcess] = {}
        self._retired: list[ChildProcess] = []  # told to exit (or killed), not reaped yet
        self._jobs: dict[str, _Handover] = {}  # started jobs, not yet ended

    # -- one job: handed over in the loop's thread, waited for in its own -------------
    def start(self, job: Job) -> None:
        """Hand ``job`` to an idle child, or to a new one; from now on ``cancel`` reaches it.

        Called in the thread that runs the worker loop: every child is forked by that one
        thread, which lives as long as the worker (a child dies with the *thread* that
        forked it: PR_SET_PDEATHSIG). The pipe of an idle child is empty, so this does
        not wait for the child."""
        handover = _Handover(time.monotonic())
        with self._lock:
            self._jobs[job.id] = handover
        try:
            self._send(job, handover)
        except Exception as error:  # cannot fork, a broken pipe: ``run`` fails the job
            handover.error = error

    def run(self, job: Job) -> Ending:
        """Wait for the job ``start`` handed over; its ending. ``ShutdownRequested`` (a cold
        stop cancelled it) and any other ``BaseException`` propagate, its child killed
        first: the caller puts the job back on its queue."""
        handover = self._jobs.get(job.id)
        if handover is None:
            raise RuntimeError(f"job {job.id} was not started in the fork pool")
        try:
            return self._run(job, handover)
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)
            self._reap_retired()  # no zombie waits for the next job's checkout

    def _run(self, job: Job, handover: _Handover) -> Ending:
        child, started = handover.child, handover.started
        if handover.error is not None:
            return self._failed(job, handover.error, started)
        if child is None:
            return self._cancelled_ending(job, handover, began=False)
        sent = handover.sent if handover.sent is not None else started
        try:
            reply, why = self._wait(child, job, sent)
        except Exception as error:  # a reply that cannot be read
            self._drop(child, handover)
            return self._failed(job, error, started)
        except BaseException:  # the job goes back, its child goes away
            self._drop(child, handover)
            raise
        if reply is not None:  # it ended: a cancel from now on comes too late
            return self._finished(child, job, reply, handover)
        with self._lock:  # from now on a cancel finds no child to kill
            handover.child = None
        if handover.cancelled:
            self._kill(child)
            return self._cancelled_ending(job, handover, began=True)
        return self._failed(job, self._child_failure(child, job, why), started)

    def _send(self, job: Job, handover: _Handover) -> None:
        """Hand the job to an idle child, or to a new one (none if it was cancelled)."""
        for attempt in (1, 2):
            child = self._checkout()
            with self._lock:
                if handover.cancelled:
                    self._idle.append(child)
                    return
                handover.child = child
            try:
                child.send(job.id)
                # the job's timeout runs from here: not from a retry's reaping of a dead child
                handover.sent = time.monotonic()
                return
            except OSError:  # it died while idle
                with self._lock:
                    handover.child = None
                self._kill(child)
                if attempt == 2:
                    raise

    def _wait(self, child: ChildProcess, job: Job, sent: float) -> tuple[tuple | None, str]:
        """(reply, '') or (None, why): 'died', or 'job timeout N' / 'callback timeout N'.
        The job's time runs from ``sent``, when its child got it."""
        limit = time_limit(job.timeout)
        what = f"job timeout {limit}"
        deadline = None if limit is None else sent + limit
        while True:
            frame = child.receive(deadline)
            if frame == TIMED_OUT:
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

    def _child_failure(self, child: ChildProcess, job: Job, why: str) -> BaseException:
        """The exception a job fails with when its child died or ran past a timeout."""
        if why == "died":
            status = self._reap(child, self.kill_grace)
            if status is None:  # its pipe closed, yet it lives on (a job closed the fd)
                child.signal(signal.SIGKILL)
                status = self._reap(child, None)
            return ChildProcessDied(f"the child process {child.pid} running job {job.id} "
                                    f"({job.func_name}) {describe_status(status)}")
        killed_with = self._terminate(child)
        return JobTimeoutException(f"job {job.id} ({job.func_name}) exceeded its {how_long(why)}; "
                                   f"its child process {child.pid} was killed with {killed_with}")

    def _drop(self, child: ChildProcess, handover: _Handover) -> None:
        """Kill the job's child, once no cancel can reach it (its pid may be reused)."""
        with self._lock:
            handover.child = None
        self._kill(child)

    def _cancelled_ending(self, job: Job, handover: _Handover, began: bool) -> Ending:
        if handover.cancelled == SHUTDOWN:
            raise ShutdownRequested(f"cold shutdown of worker {self.worker.name}")
        return _ending(job, "stopped", "stopped: geventq stop was requested" +
                       ("" if began else " before the job began"), handover.started)

    def _finished(self, child: ChildProcess, job: Job, reply: tuple,
                  handover: _Handover) -> Ending:
        outcome, payload, extra, default_ttl = reply
        ending = Ending(job, outcome, payload, extra=dict(extra))
        if default_ttl is not None:
            ending.default_result_ttl = default_ttl
        child.jobs += 1
        # One lock for "a cancel can no longer reach the child" and "idle or not": a cancel
        # either doomed the child before (it is killed here) or finds no child at all; it
        # never kills a child that already went back to ``_idle`` with another job to take.
        with self._lock:
            handover.child = None
            doomed = child.doomed
            reuse = not doomed and child.jobs < self.max_jobs_per_child
            if reuse:
                self._idle.append(child)
        if doomed:
            self._kill(child)
        elif not reuse:
            self._retire(child)
        return ending

    def _failed(self, job: Job, exc: BaseException, started: float) -> Ending:
        """The ending of a job whose child was killed or died: handlers and callback run here."""
        logger.warning("job %s %s failed: %s: %s", job.id, job.func_name, type(exc).__name__, exc)
        exc_info = (type(exc), exc, exc.__traceback__)
        run_exception_handlers(job, exc_info, self.worker.exception_handlers)
        ending = _ending(job, "failed", "".join(traceback.format_exception(*exc_info)), started)
        run_failure_callback(job, exc_info, self.worker.death_penalty)
        return ending

    # -- stopping jobs (from any thread) ------------------------------------------------
    def cancel(self, job_id: str, why: str) -> bool:
        """End a started job now: its child is killed; ``run`` returns it ``stopped``
        (STOPPED) or raises ``ShutdownRequested`` (SHUTDOWN); one not begun never begins.
        False if the job is not (or no longer) here."""
        with self._lock:
            handover = self._jobs.get(job_id)
            if handover is None:
                return False
            handover.cancelled = why
            child = handover.child
            if child is not None:  # under the lock: ``_finished`` cannot make it idle meanwhile
                child.doomed = True
                child.signal(signal.SIGKILL)
        return True

    def kill_all(self) -> None:
        """SIGKILL every child now. Safe from any thread (the hub guard's)."""
        try:
            pids = list(self._children)
        except RuntimeError:  # changed under us: the main thread is not as stuck as thought
            pids = list(self._children)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    # -- children -------------------------------------------------------------------
    def _checkout(self) -> ChildProcess:
        self._reap_retired()
        while True:
            with self._lock:
                child = self._idle.pop() if self._idle else None
            if child is None:
                return self._fork()
            pid, status = waitpid(child.pid, os.WNOHANG)
            if pid == 0:
                return child
            logger.warning("idle fork child %d %s; forking another", child.pid,
                           describe_status(status))
            self._forget(child)

    def _fork(self) -> ChildProcess:
        with self._lock:  # one fork at a time: each child closes every other child's pipes
            requests_r, requests_w = os.pipe()
            replies_r, replies_w = os.pipe()
            inherited = [fd for c in self._children.values()
                         for fd in (c.requests_fd, c.replies_fd) if fd >= 0]
            pid = self._fork_child(requests_r, replies_w, inherited + [requests_w, replies_r])
            child = ChildProcess(pid, requests_w, replies_r)
            self._children[pid] = child
        logger.debug("forked child %d for fork queues %s", pid, " ".join(sorted(self.queues)))
        return child

    def _fork_child(self, requests_r: int, replies_w: int, close_fds: list[int]) -> int:
        """Fork; the child serves jobs and never returns. Closes the child's pipe ends here."""
        for stream in (sys.stdout, sys.stderr):  # or the child would print it a second time
            with contextlib.suppress(Exception):
                stream.flush()
        parent = os.getpid()
        gc.freeze()  # the child's collector never touches (so never copies) inherited objects
        try:
            pid = os.fork()
        except BaseException:
            if os.getpid() != parent:  # gevent failed to set up the child: it must not go on
                os._exit(1)  # as if it were the worker
            gc.unfreeze()
            for fd in [requests_r, replies_w] + close_fds[-2:]:
                close_fd(fd)
            raise
        if pid == 0:
            child_main(self.worker, requests_r, replies_w, close_fds, self.in_child)
        gc.unfreeze()
        close_fd(requests_r)
        close_fd(replies_w)
        return pid

    def _terminate(self, child: ChildProcess) -> str:
        """SIGTERM, then SIGKILL after the grace period; returns what it took."""
        child.signal(signal.SIGTERM)
        if self._reap(child, self.kill_grace) is not None:
            return "SIGTERM"
        child.signal(signal.SIGKILL)
        self._reap(child, None)
        return f"SIGKILL, {self.kill_grace:g} s after an ignored SIGTERM"

    def _kill(self, child: ChildProcess) -> None:
        """SIGKILL; a child not reaped within KILL_WAIT stays known (``kill_all``) and is
        reaped by a later pass (a job's end, a checkout, ``close``): never a lost zombie."""
        child.signal(signal.SIGKILL)
        if self._reap(child, KILL_WAIT) is None:
            self._retire(child, wait=None)

    def _reap(self, child: ChildProcess, timeout: float | None) -> int | None:
        """Wait for the child to end; its wait status, or None on timeout."""
        status = child.reap(timeout)
        if status is not None:
            self._forget(child)
        return status

    def _retire(self, child: ChildProcess, wait: float | None = RETIRE_WAIT) -> None:
        """Let a child exit (EOF on its pipe, its other end closed too); reaped now (an idle
        child exits at once: up to ``wait`` seconds) or by a later ``_reap_retired``."""
        with self._lock:
            child.close()
            if child in self._idle:
                self._idle.remove(child)
        if wait is not None and self._reap(child, wait) is not None:
            return
        with self._lock:
            if child.pid in self._children:
                self._retired.append(child)

    def _reap_retired(self) -> None:
        """Reap the retired children that have exited (never waits)."""
        with self._lock:
            retired, self._retired = self._retired, []
        for child in retired:
            if self._reap(child, 0) is None:
                with self._lock:
                    self._retired.append(child)

    def _forget(self, child: ChildProcess) -> None:
        """A reaped child: out of every list, its descriptors closed (under the lock)."""
        with self._lock:
            self._children.pop(child.pid, None)
            if child in self._idle:
                self._idle.remove(child)
            child.close()

    # -- the whole pool ------------------------------------------------------------------
    def close(self, timeout: float = 5.0) -> None:
        """End every child: idle ones exit at EOF, any left after ``timeout`` are killed.

        A child that still runs a job (its waiter outlived a cold stop's wait) is killed
        as a cancel does, its job cancelled for the shutdown, but its descriptors are
        left to its waiter: closing them under it would fail the job on a read of a
        closed descriptor (a number a new pipe may even have taken)."""
        with self._lock:
            busy = set()
            for handover in self._jobs.values():
                if handover.child is not None:
                    handover.cancelled = handover.cancelled or SHUTDOWN
                    handover.child.doomed = True
                    handover.child.signal(signal.SIGKILL)
                    busy.add(handover.child.pid)
            children = [c for c in self._children.values() if c.pid not in busy]
            self._idle = []
            self._retired = []
            for child in children:
                child.close_requests()
        deadline = time.monotonic() + timeout
        for child in children:
            if self._reap(child, max(0.0, deadline - time.monotonic())) is None:
                child.signal(signal.SIGKILL)
                if self._reap(child, 2.0) is None:
                    with self._lock:
                        child.close()

    @property
    def pids(self) -> list[int]:
        return sorted(self._children)


def how_long(what: str) -> str:
    """'job timeout 5' -> 'timeout of 5 s'; 'callback timeout 3' -> 'callback's timeout of 3 s'."""
    kind, _, seconds = what.rpartition(" ")
    return ("timeout" if kind == "job timeout" else "callback's timeout") + f" of {seconds} s"


def _ending(job: Job, outcome: str, payload: str, started: float) -> Ending:
    return Ending(job, outcome, payload,
                  extra={"duration": f"{time.monotonic() - started:.6f}"})
