"""What a script needs to release a job's dependents: their queues, and their keys.

Every transition that ends a job (``end.lua``, ``cancel.lua``, ``requeue_started.lua``)
releases the job's dependents in the same step with ``release_children`` and
``end_dependents`` (``lua/_common.lua``). A script gets every key it touches in
KEYS, so the caller first learns the dependents (the script answers
``{'dependents', ids}`` without writing anything when the caller's list is stale),
finds their queues, and calls again with their keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from .keys import Keys
from .utils import as_str


def with_queues(connection: redis.Redis, keys: Keys,
                groups: Sequence[tuple[Sequence[str], str]]) -> list[list[tuple[str, str]]]:
    """[(child id, its queue)] for each group of (child ids, the parent's queue), in one
    round trip. A child whose hash is gone (or is not a job hash) gets its parent's
    queue: it still has to leave the dependents set."""
    pipe = connection.pipeline(transaction=False)
    for child_ids, _ in groups:
        for child_id in child_ids:
            pipe.hget(keys.job(child_id), "origin")
    origins = iter(pipe.execute(raise_on_error=False))
    found = []
    for child_ids, fallback in groups:
        children = []
        for child_id in child_ids:
            origin = next(origins)
            children.append((child_id, fallback if isinstance(origin, Exception)
                             else as_str(origin) or fallback))
        found.append(children)
    return found


def child_keys(keys: Keys, children: Sequence[tuple[str, str]]) -> list[str]:
    """The KEYS that ``release_children`` takes per dependent, for [(child id, queue)]."""
    script_keys = []
    for child_id, queue in children:
        script_keys += [keys.job(child_id), keys.pending(child_id), keys.queue(queue),
                        keys.registry("deferred", queue), keys.wake(queue),
                        keys.registry("scheduled", queue), keys.expiring(queue)]
    return script_keys


def child_args(children: Sequence[tuple[str, str]]) -> list[str]:
    """The ARGV that ``release_children`` takes per dependent: id, queue name."""
    return [part for child in children for part in child]
