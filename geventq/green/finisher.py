"""The finisher greenlet of a GeventWorker: one pipeline for the endings of many jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
import redis
from gevent.event import Event

from .. import scripts
from ..endings import Ending
from ..keys import Keys
from ..recording import record_until_taken
from ..worker.executors import counter_commands
from ..worker.joblog import JobLog
from ..worker.tuning import BUNCH, GATHER

logger = logging.getLogger("geventq.worker")


class Finisher:
    """Collects endings and writes them in batches, from a greenlet of its own (``run``).

    While jobs run (``busy_jobs()``), fewer than ``BUNCH`` endings wait up to
    ``GATHER`` seconds for more to share the round trip. After each batch it
    calls ``written()`` (the loop's ``slot_freed``); the log lines of the jobs it
    ended go out at most every 0.1 s (:class:`geventq.worker.joblog.JobLog`).
    """

    def __init__(self, connection: redis.Redis, keys: Keys, worker_name: str, worker_key: str,
                 busy_jobs: Callable[[], int], written: Callable[[], None]) -> None:
        self.connection, self.keys = connection, keys
        self.worker_name, self.worker_key = worker_name, worker_key
        self.busy_jobs = busy_jobs
        self.written = written
        self.channel = scripts.Channel(connection)  # the finisher's own connection
        self._endings: list[Ending] = []
        self._writing: list[Ending] = []  # the batch being written now
        self._ready = Event()
        self.joblog = JobLog()  # one line per ended job, logged a batch of lines at a time

    def add(self, ending: Ending) -> None:
        self._endings.append(ending)
        self._ready.set()

    def pending(self) -> list[Ending]:
        """Endings not written yet (a copy; the hub guard reads it from its thread)."""
        return list(self._endings) + list(self._writing)

    def busy(self) -> bool:
        return bool(self._endings or self._writing)

    def flush(self) -> None:
        """Wait until every ending so far is written (the finisher greenlet writes them)."""
        while self.busy():
            self._ready.set()
            gevent.sleep(0.01)

    def run(self) -> None:
        """The finisher greenlet's body: write batches until killed."""
        try:
            while True:
                if not self._ready.wait(self.joblog.wait_time()):
                    self.joblog.flush()  # the log lines waiting are due
                    continue
                self._ready.clear()
                if self.busy_jobs() and len(self._endings) < BUNCH:
                    gevent.sleep(GATHER)  # busy: more endings come with the same round trip
                while self._endings:
                    batch, self._endings = self._endings, []
                    self._writing = batch
                    try:
                        self.write(batch)
                    except Exception:  # a bug: the finisher must live on, or every job waits
                        logger.exception("the finisher failed writing %d ending(s)", len(batch))
                    finally:
                        self._writing = []
                        self.written()
                if self.joblog.due():
                    self.joblog.flush()
        finally:
            self.joblog.flush()
            self.channel.close()

    def write(self, batch: list[Ending]) -> None:
        """Write endings and counters; retry transient errors until Redis takes them.

        An ending that cannot be written for any other reason fails its job alone
        (see geventq.recording): the finisher always goes on with the next batch.
        """
        record_until_taken(self.connection, self.keys, self.worker_name, batch,
                           counter_commands(self.worker_key, batch),
                           sleep=gevent.sleep, channel=self.channel)
        self.joblog.add(batch)
