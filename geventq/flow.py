"""Paused queues (section 8 of the API): workers claim nothing from a paused queue.

The pause is the queue's name in one set (``Keys.paused``), so it lasts across
worker restarts until it is lifted, and every worker on every host sees it: the
claim script skips the queues named there (``claim.lua``). Running jobs finish;
enqueueing goes on. ``geventq suspend`` is a different switch: it stops every
worker, whatever its queues.
"""

from __future__ import annotations

import redis

from . import scripts
from .keys import Keys
from .utils import text_ids


def pause(connection: redis.Redis, keys: Keys, queue_name: str) -> bool:
    """Pause a queue; True when it was not paused before.

    The name also joins the set of queues, so ``geventq info`` lists a paused
    queue that never had a job.
    """
    pipe = connection.pipeline(transaction=True)
    pipe.sadd(keys.paused, queue_name)
    pipe.sadd(keys.queues, queue_name)
    added, _ = pipe.execute()
    return bool(added)


def unpause(connection: redis.Redis, keys: Keys, queue_name: str) -> bool:
    """Unpause a queue (idle workers are woken when it holds jobs); True when it was paused."""
    return bool(scripts.call(connection, "unpause",
                             [keys.paused, keys.queue(queue_name), keys.wake(queue_name)],
                             [queue_name]))


def is_paused(connection: redis.Redis, keys: Keys, queue_name: str) -> bool:
    """Whether the queue is paused now (one round trip)."""
    return bool(connection.sismember(keys.paused, queue_name))


def paused_names(connection: redis.Redis, keys: Keys) -> set[str]:
    """The names of every paused queue (undecodable values are left out)."""
    return set(text_ids(connection.smembers(keys.paused)))
