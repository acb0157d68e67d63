"""Hearing ``geventq stop JOB_ID`` requests: a greenlet subscribed to the stop channel.

Each request goes to ``stop_job`` (``Loop.stop_job``); how a running job is
stopped is :mod:`geventq.green.executor`'s business.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent
import redis

from ..keys import Keys
from ..recording import RETRY_CAP
from ..redis_errors import describe
from ..utils import backoff_delay

logger = logging.getLogger("geventq.worker")


class StopListener:
    """Subscribes to the stop channel and passes each job id on, until killed."""

    def __init__(self, connection: redis.Redis, keys: Keys,
                 stop_job: Callable[[str], object]) -> None:
        self.connection, self.keys = connection, keys
        self.stop_job = stop_job

    def run(self) -> None:
        """The listening greenlet's body: reconnects with back-off when Redis is away."""
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
