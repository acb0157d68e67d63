"""Hearing ``geventq stop JOB_ID`` requests: a task subscribed to the stop channel.

The task is a greenlet in a ``GeventWorker`` and a thread in a ``ForkWorker``
(the loop's runtime spawns it). Each request goes to ``stop_job``
(``Loop.stop_job``); how a running job is stopped is its executor's business
(:mod:`geventq.green.executor`, :mod:`geventq.worker.forkexecutor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from ..keys import Keys
from ..recording import RETRY_CAP
from ..redis_errors import describe
from ..utils import backoff_delay
from .tuning import IDLE_BLOCK

logger = logging.getLogger("geventq.worker")


class StopListener:
    """Subscribes to the stop channel and passes each job id on, until killed.

    A loop service: ``start()`` subscribes before the worker claims its first job
    (a stop for that job is then heard, however slow the listening task is to
    start); ``run()``, the listening task, reads the requests until ``stop()``.
    ``sleep`` is the runtime's (a back-off must not block a gevent hub).
    """

    def __init__(self, connection: redis.Redis, keys: Keys,
                 stop_job: Callable[[str], object],
                 sleep: Callable[[float], object] = time.sleep) -> None:
        self.connection, self.keys = connection, keys
        self.stop_job = stop_job
        self.sleep = sleep
        self._pubsub: Any = None
        self._stopped = False

    def start(self) -> None:
        """Subscribe now (Redis away: ``run()`` subscribes when it comes back)."""
        try:
            self._subscribe()
        except redis.RedisError:
            self.close()

    def stop(self) -> None:
        """``run()`` returns within ``IDLE_BLOCK`` (a greenlet is killed before that)."""
        self._stopped = True

    def poll(self, timeout: float) -> int:
        """Pass on the stop requests that came (waiting up to ``timeout`` s for the
        first); how many. Subscribes first if needed; Redis errors raise."""
        if self._pubsub is None:
            self._subscribe()
        heard = 0
        deadline = time.monotonic() + timeout
        while True:
            left = 0.0 if heard else max(0.0, deadline - time.monotonic())
            message = self._pubsub.get_message(timeout=left)
            if message is None:  # nothing, or a reply to the subscription (ignored)
                if heard or left <= 0:
                    return heard
                continue
            data = message.get("data")
            if isinstance(data, bytes):  # any bytes: an id that is not UTF-8 runs nowhere
                self.stop_job(data.decode(errors="replace"))
                heard += 1

    def run(self) -> None:
        """The listening task's body: reconnects with back-off when Redis is away."""
        attempt = 0
        try:
            while not self._stopped:
                try:
                    self.poll(timeout=IDLE_BLOCK)
                    attempt = 0
                except redis.RedisError as exc:
                    self.close()
                    attempt += 1
                    delay = backoff_delay(attempt, cap=RETRY_CAP)
                    logger.warning("listening for stop requests failed (%s); retrying in "
                                   "%.1f s", describe(exc), delay)
                    self.sleep(delay)
        finally:
            self.close()

    def _subscribe(self) -> None:
        self._pubsub = self.connection.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(self.keys.stop_channel())

    def close(self) -> None:
        """Drop the subscription (``poll`` subscribes again)."""
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            pubsub.close()
