"""``BatchFinisher``: one pipeline for the endings of many jobs, from a task of its own.

The finisher of a worker that runs many jobs at once: a ``GeventWorker`` (its
task is a greenlet) and a ``ForkWorker`` (a thread; jobs end in the threads
that wait for their children, so ``add`` takes a lock). A worker that runs one
job at a time writes each ending as it comes (:class:`~geventq.worker.executors.WriteNow`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis

from .. import scripts
from ..endings import Ending
from ..keys import Keys
from ..recording import record_until_taken
from .executors import Runtime, counter_commands
from .heartbeat import native
from .joblog import JobLog
from .tuning import BUNCH, GATHER

logger = logging.getLogger("geventq.worker")


class BatchFinisher:
    """Collects endings and writes them in batches, from a task of its own (``run``).

    While jobs run (``busy_jobs()``), fewer than ``BUNCH`` endings wait up to
    ``GATHER`` seconds for more to share the round trip. After each batch it
    calls ``written()`` (the loop's ``slot_freed``); the log lines of the jobs it
    ended go out at most every 0.1 s (:class:`geventq.worker.joblog.JobLog`).
    A loop service: ``stop()`` ends ``run`` once what was added is written.
    """

    def __init__(self, connection: redis.Redis, keys: Keys, worker_name: str, worker_key: str,
                 busy_jobs: Callable[[], int], written: Callable[[], None],
                 runtime: Runtime) -> None:
        self.connection, self.keys = connection, keys
        self.worker_name, self.worker_key = worker_name, worker_key
        self.busy_jobs = busy_jobs
        self.written = written
        self.runtime = runtime
        self.channel = scripts.Channel(connection)  # the finisher's own connection
        # _endings and _writing (jobs end in other threads; the hub guard reads pending()
        # from its own). Native: held for a list operation only, never across a switch, so
        # no greenlet waits on it and the hub guard's thread can take it while the hub is stuck.
        self._lock = native("threading", "Lock")()
        self._endings: list[Ending] = []
        self._writing: list[Ending] = []  # the batch being written now
        self._ready = runtime.event()
        self._stopped = False
        self.joblog = JobLog()  # one line per ended job, logged a batch of lines at a time

    def add(self, ending: Ending) -> None:
        with self._lock:
            self._endings.append(ending)
        self._ready.set()

    def pending(self) -> list[Ending]:
        """Endings not written yet (a copy; the hub guard reads it from its thread). Under
        the lock: while ``_write_all`` moves a batch from one list to the other, a lock-free
        read could see it in neither (the loop would think those claims lost)."""
        with self._lock:
            return self._endings + self._writing

    def busy(self) -> bool:
        # Lock-free on purpose: polled often by the loop and the finisher's own task, only
        # as "anything left to do?". _write_all sets _writing to the batch *before* it
        # empties _endings (and clears _writing only once the batch is written), so a read
        # between two of its statements sees the batch in one list or both, never in
        # neither: a wrong False is impossible; a stale True costs the caller one more turn.
        return bool(self._endings or self._writing)

    def flush(self) -> None:
        """Wait until every ending so far is written (the finisher's task writes them)."""
        while self.busy():
            self._ready.set()
            self.runtime.sleep(0.01)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        """``run`` writes what it holds and returns."""
        self._stopped = True
        self._ready.set()

    def run(self) -> None:
        """The finisher's task: write batches until stopped (or killed)."""
        try:
            while not self._stopped or self.busy():
                if not self._ready.wait(self.joblog.wait_time()):
                    self.joblog.flush()  # the log lines waiting are due
                    continue
                self._ready.clear()
                if self.busy_jobs() and len(self._endings) < BUNCH and not self._stopped:
                    self.runtime.sleep(GATHER)  # busy: more endings come with the same round trip
                self._write_all()
                if self.joblog.due():
                    self.joblog.flush()
        finally:
            self.joblog.flush()
            self.channel.close()

    def _write_all(self) -> None:
        while self._endings:
            with self._lock:  # _writing first: a lock-free busy() never sees the batch in neither
                self._writing = batch = self._endings
                self._endings = []
            try:
                self.write(batch)
            except Exception:  # a bug: the finisher must live on, or every job waits
                logger.exception("the finisher failed writing %d ending(s)", len(batch))
            finally:
                with self._lock:
                    self._writing = []
                self.written()

    def write(self, batch: list[Ending]) -> None:
        """Write endings and counters; retry transient errors until Redis takes them.

        An ending that cannot be written for any other reason fails its job alone
        (see geventq.recording): the finisher always goes on with the next batch.
        """
        record_until_taken(self.connection, self.keys, self.worker_name, batch,
                           counter_commands(self.worker_key, batch),
                           sleep=self.runtime.sleep, channel=self.channel)
        self.joblog.add(batch)
