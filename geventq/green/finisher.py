"""Writing the endings of many jobs: GeventWorker's finisher greenlet.

A mixin of :class:`geventq.green.worker.GeventWorker`, which owns the state
it uses (``_endings``, ``_flushing``, ``_writing``, ``_running``...).
"""

from __future__ import annotations

import logging

import gevent

from ..endings import Ending
from ..recording import record_until_taken
from ..worker.joblog import log_endings

logger = logging.getLogger("geventq.worker")

# A busy worker claims and writes endings in bunches (see green/worker.py): while jobs
# run, fewer than BUNCH free slots or endings wait up to GATHER seconds for more.
BUNCH = 10
GATHER = 0.001


class EndingsWriter:
    """The finisher greenlet: one pipeline for the endings of many jobs."""

    def _finisher(self) -> None:
        while True:
            self._endings_ready.wait()
            self._endings_ready.clear()
            if self._running and len(self._endings) < BUNCH:
                gevent.sleep(GATHER)  # busy: more endings come with the same round trip
            while self._endings:
                batch, self._endings = self._endings, []
                self._flushing = True
                self._writing = batch
                try:
                    self._write_endings(batch)
                except Exception:  # a bug: the finisher must live on, or every job waits
                    logger.exception("the finisher failed writing %d ending(s)", len(batch))
                finally:
                    self._flushing = False
                    self._writing = []
                    self._slot_free.set()

    def _write_endings(self, batch: list[Ending]) -> None:
        """Write endings and counters; retry transient errors until Redis takes them.

        An ending that cannot be written for any other reason fails its job alone
        (see geventq.recording): the finisher always goes on with the next batch.
        """
        ok = sum(1 for e in batch if e.outcome == "finished")
        working = sum(float(e.extra.get("duration", 0)) for e in batch)
        counters = [("HINCRBY", self.key, "successful", ok),
                    ("HINCRBY", self.key, "failed", len(batch) - ok),
                    ("HINCRBYFLOAT", self.key, "working_time", f"{working:.6f}")]
        counters = [c for c in counters if c[3] not in (0, "0.000000")]  # no-ops cost a reply
        record_until_taken(self.connection, self.keys, self.name, batch, counters,
                           sleep=gevent.sleep, channel=self._channels[1])
        log_endings(batch)
