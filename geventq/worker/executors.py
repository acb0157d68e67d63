"""What the worker loop plugs in: executors, finishers, runtimes (the protocols), and
the plain (gevent-free) ones.

- An **executor** runs the jobs of one lane: ``submit(job)`` a started job, and
  report through its :class:`JobSink` (the loop) when it ended, was interrupted,
  or freed its slot. ``running()`` is public and safe to read from another
  thread (the hub guard's).
- A **finisher** writes endings: :class:`WriteNow` here (at once, in the
  caller), or ``geventq.worker.finisher.BatchFinisher`` (in batches, from a
  greenlet or a thread of its own).
- A **runtime** is how the loop waits, sleeps, spawns a background task and
  catches a signal: :class:`PlainRuntime` (threads, ``signal.signal``) or
  ``geventq.green.runtime.GeventRuntime``.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import redis

from ..endings import Ending, counts_as_failure
from ..job import Job
from ..keys import Keys
from ..recording import record_until_taken
from .joblog import log_endings
from .tuning import EARLY_STOP_MAX, EARLY_STOP_MEMORY


class JobSink(Protocol):
    """Where an executor reports its jobs (the loop)."""

    def job_ended(self, ending: Ending) -> None: ...
    def job_interrupted(self, job: Job) -> None: ...
    def slot_freed(self) -> None: ...


class Executor(Protocol):
    """Runs the jobs of one lane, at most ``size`` at once."""

    size: int

    def free_slots(self) -> int:
        """How many more jobs it takes now."""
        ...

    def submit(self, job: Job) -> None:
        """Run a started job (it may return before the job ends)."""
        ...

    def running(self) -> dict[str, Job]:
        """The jobs it runs now, by id (a copy: safe from any thread)."""
        ...

    def stop_job(self, job_id: str) -> bool:
        """``geventq stop``: stop one running job; True if it runs here."""
        ...

    def interrupt(self) -> None:
        """From a signal handler, on a cold stop (an inline job is interrupted here)."""
        ...

    def stop(self, cold: bool) -> None:
        """Interrupt the running jobs (each reported with ``job_interrupted``)."""
        ...

    def close(self) -> None:
        """Release what it holds (child processes); the loop has ended."""
        ...


class Finisher(Protocol):
    """Writes the endings of jobs."""

    def add(self, ending: Ending) -> None: ...
    def pending(self) -> list[Ending]:
        """Endings not yet written (a copy: safe from any thread)."""
        ...
    def busy(self) -> bool: ...
    def flush(self) -> None: ...


class Runtime(Protocol):
    """How the loop waits and runs things in the background."""

    def event(self) -> Any: ...
    def sleep(self, seconds: float) -> None: ...
    def yield_(self) -> None: ...
    def spawn(self, func: Callable[..., Any], *args: Any) -> Any: ...
    def current(self) -> Any: ...
    def done(self, handle: Any) -> bool: ...
    def wait_any(self, handle: Any, event: Any) -> None: ...
    def kill(self, handles: Sequence[Any], timeout: float) -> None: ...
    def on_signal(self, signum: int, handler: Callable[[int], None]) -> Callable[[], None]: ...


def counter_commands(worker_key: str, endings: Sequence[Ending]) -> list[tuple]:
    """The worker's counters for ``endings`` (successful, failed, working_time); a zero
    counter is left out (a no-op costs a reply)."""
    ok = sum(1 for e in endings if e.outcome == "finished")
    failed = sum(1 for e in endings if counts_as_failure(e))  # not RateLimited
    working = sum(float(e.extra.get("duration", 0)) for e in endings)
    counters = [("HINCRBY", worker_key, "successful", ok),
                ("HINCRBY", worker_key, "failed", failed),
                ("HINCRBYFLOAT", worker_key, "working_time", f"{working:.6f}")]
    return [c for c in counters if c[3] not in (0, "0.000000")]


class WriteNow:
    """The finisher of a worker that runs one job at a time: each ending is written
    as it comes, retried until Redis takes it (see geventq.recording), then logged."""

    def __init__(self, connection: redis.Redis, keys: Keys, worker_name: str, worker_key: str,
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self.connection, self.keys = connection, keys
        self.worker_name, self.worker_key = worker_name, worker_key
        self.sleep = sleep

    def add(self, ending: Ending) -> None:
        record_until_taken(self.connection, self.keys, self.worker_name, [ending],
                           extra_commands=counter_commands(self.worker_key, [ending]),
                           sleep=self.sleep)
        log_endings([ending])

    def pending(self) -> list[Ending]:
        return []

    def busy(self) -> bool:
        return False

    def flush(self) -> None:
        pass


class EarlyStops:
    """``geventq stop`` requests for jobs not running here (yet), kept a short while.

    A stop is published to every worker; the one that claimed the job may hear it
    after the claim and before the job reaches its executor. Kept for
    ``EARLY_STOP_MEMORY`` seconds, at most ``EARLY_STOP_MAX`` of them.
    """

    def __init__(self, memory: float = EARLY_STOP_MEMORY, limit: int = EARLY_STOP_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.memory, self.limit, self.clock = memory, limit, clock
        self._until: OrderedDict[str, float] = OrderedDict()

    def remember(self, job_id: str) -> None:
        self._until.pop(job_id, None)
        self._until[job_id] = self.clock() + self.memory
        while len(self._until) > self.limit:
            self._until.popitem(last=False)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._until

    def take(self, job_id: str) -> bool:
        """True (once) if a stop for ``job_id`` came within the memory."""
        if not self._until:
            return False
        now = self.clock()
        while self._until:  # the oldest first: drop what expired
            oldest, until = next(iter(self._until.items()))
            if until > now:
                break
            del self._until[oldest]
        return self._until.pop(job_id, None) is not None


class SignalSafeEvent:
    """``threading.Event`` whose lock is re-entrant, so that a signal handler may set it.

    A handler runs in the main thread between two bytecodes, possibly while that
    thread is inside ``clear()`` or ``set()`` of the same event holding its lock:
    with ``threading.Event``'s plain lock, the handler's ``set()`` would wait for
    ever for a lock its own thread holds. Here it re-enters. (A ``clear()`` it
    interrupted may then undo its ``set()``: the loop never clears ``stopping``,
    and every wait on ``slot_free`` is bounded.)
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if ``timeout`` seconds passed first."""
        with self._cond:
            if not self._flag:
                self._cond.wait(timeout)
            return self._flag


class PlainRuntime:
    """Threads and ``signal.signal``: for a worker that runs its jobs in its main thread."""

    def event(self) -> SignalSafeEvent:
        return SignalSafeEvent()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def yield_(self) -> None:
        pass

    def spawn(self, func: Callable[..., Any], *args: Any) -> threading.Thread:
        """A daemon thread running ``func(*args)``, deaf to the signals the worker handles."""
        thread = threading.Thread(target=_without_signals, args=(func, *args), daemon=True)
        thread.start()
        return thread

    def current(self) -> Any:
        return threading.current_thread()

    def done(self, handle: threading.Thread) -> bool:
        return not handle.is_alive()

    def wait_any(self, handle: Any, event: Any) -> None:
        raise NotImplementedError("a worker whose executors run jobs in its main thread never "
                                  "has a full lane to wait on")

    def kill(self, handles: Sequence[threading.Thread], timeout: float) -> None:
        for thread in handles:  # daemon threads: they end with the process
            thread.join(timeout)

    def on_signal(self, signum: int, handler: Callable[[int], None]) -> Callable[[], None]:
        previous = signal.signal(signum, lambda number, frame: handler(number))

        def restore() -> None:
            signal.signal(signum, previous)
        return restore


def _without_signals(func: Callable[..., Any], *args: Any) -> Any:
    """Run ``func`` with SIGTERM and SIGINT blocked in this thread: the kernel then hands
    them to the main thread, whose blocking call they interrupt so that its handler runs
    at once (a signal taken by another thread waits until the main thread wakes up)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    return func(*args)

