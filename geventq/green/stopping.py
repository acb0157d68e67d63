"""``geventq stop JOB_ID`` in a GeventWorker: hearing the request, and stopping the run.

A mixin of :class:`geventq.green.worker.GeventWorker`, which owns the state used
here (``_running``, ``_stop_requests``, ``_in_stop_region``).

A stop interrupts only the *run* of a job: the call of its function, or the wait
for the fork child running it (:meth:`StopListener.stop_region`). It is thrown
into the job's greenlet from the hub, and only if the job is still in that
stretch when the hub gets to it. So a stop that comes too early (the job's
greenlet has not begun) makes the job end ``stopped`` without running; one that
comes too late (its exception handlers or callbacks run) changes nothing. The
job then always ends once, and its slot always comes free.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import gevent
import redis

from ..exceptions import StopRequested
from ..job import Job
from ..recording import RETRY_CAP
from ..redis_errors import describe
from ..utils import backoff_delay

logger = logging.getLogger("geventq.worker")


class StopListener:
    """Runs ``geventq stop JOB_ID`` requests for the jobs that run here."""

    def stop_job(self, job_id: str) -> bool:
        """Stop one running job of this worker; True if it was running here."""
        if job_id not in self._running:
            return False
        self._stop_requests.add(job_id)
        if job_id in self._in_stop_region:
            gevent.get_hub().loop.run_callback(self._deliver_stop, job_id)
            logger.info("job %s stopped on request", job_id)
        else:
            logger.info("job %s: stop requested while it was not running its function (it "
                        "stops before it begins, or ends as it was ending)", job_id)
        return True

    def _deliver_stop(self, job_id: str) -> None:
        # the hub runs this: the job's greenlet is parked at a switch, in the stretch or not
        greenlet = self._in_stop_region.get(job_id)
        if greenlet is not None:
            greenlet.throw(StopRequested(f"job {job_id} stopped on request"))

    @contextlib.contextmanager
    def stop_region(self, job: Job) -> Iterator[None]:
        """The stretch of a job's run that :meth:`stop_job` interrupts (``StopRequested``)."""
        if job.id in self._stop_requests:
            raise StopRequested(f"job {job.id} stopped on request before it began")
        self._in_stop_region[job.id] = gevent.getcurrent()
        try:
            yield
        finally:
            del self._in_stop_region[job.id]

    def _listen_for_stops(self) -> None:
        attempt = 0
        while True:
            pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.stop_channel())
                attempt = 0
                for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):  # any bytes: an id that is not UTF-8 runs nowhere
                        self.stop_job(data.decode(errors="replace"))
            except redis.RedisError as exc:
                attempt += 1
                delay = backoff_delay(attempt, cap=RETRY_CAP)
                logger.warning("listening for stop requests failed (%s); retrying in %.1f s",
                               describe(exc), delay)
                gevent.sleep(delay)
            finally:
                pubsub.close()
