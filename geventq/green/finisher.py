"""Writing the endings of many jobs, and hearing stop requests: GeventWorker's background greenlets.

Mixins of :class:`geventq.green.worker.GeventWorker`, which owns the state
they use (``_endings``, ``_flushing``, ``_writing``, ``_running``...).
"""

from __future__ import annotations

import logging

import gevent
import redis

from .. import lifecycle
from ..lifecycle import Ending
from ..utils import as_str, backoff_delay

logger = logging.getLogger("geventq.worker")

# A busy worker claims and writes endings in bunches (see green/worker.py): while jobs
# run, fewer than BUNCH free slots or endings wait up to GATHER seconds for more.
BUNCH = 10
GATHER = 0.001
RETRY_CAP = 5.0  # longest back-off after Redis errors: work resumes soon after Redis does


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
                finally:
                    self._flushing = False
                    self._writing = []
                    self._slot_free.set()

    def _write_endings(self, batch: list[Ending]) -> None:
        """Write endings and counters; retry until Redis takes them."""
        ok = sum(1 for e in batch if e.outcome == "finished")
        working = sum(float(e.extra.get("duration", 0)) for e in batch)
        counters = [("HINCRBY", self.key, "successful", ok),
                    ("HINCRBY", self.key, "failed", len(batch) - ok),
                    ("HINCRBYFLOAT", self.key, "working_time", f"{working:.6f}")]
        counters = [c for c in counters if c[3] not in (0, "0.000000")]  # no-ops cost a reply
        attempt = 0
        while True:
            try:
                lifecycle.end_jobs(self.connection, self.keys, self.name, batch,
                                   extra_commands=counters, channel=self._channels[1])
                if attempt:
                    logger.info("recorded %d ended job(s) after %d retries", len(batch), attempt)
                return
            except redis.RedisError as exc:  # lost connection, failover, LOADING, OOM...
                attempt += 1
                delay = backoff_delay(attempt, cap=RETRY_CAP)
                logger.warning("could not record %d ended job(s) (%s: %s); retrying in %.1f s",
                               len(batch), type(exc).__name__, exc, delay)
                gevent.sleep(delay)



class StopListener:
    """Runs ``geventq stop JOB_ID`` requests: kills that job's greenlet if it runs here."""

    def _listen_for_stops(self) -> None:
        attempt = 0
        while True:
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.stop_channel())
                attempt = 0
                for message in pubsub.listen():
                    job_id = as_str(message.get("data"))
                    if self.stop_job(job_id):
                        logger.info("job %s stopped on request", job_id)
            except redis.RedisError as exc:
                attempt += 1
                delay = backoff_delay(attempt, cap=RETRY_CAP)
                logger.warning("listening for stop requests failed (%s: %s); retrying in %.1f s",
                               type(exc).__name__, exc, delay)
                gevent.sleep(delay)
            finally:
                pubsub.close()

