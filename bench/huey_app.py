"""The huey instance bench/peers.py measures; its consumer loads ``bench.huey_app.huey``.

The tasks wrap the very functions of ``bench.jobs`` that geventq and python-rq
run, so every system executes the same code. ``REDIS_URL`` (set by the bench
for the consumer and for itself) names the private server and database: there
is no default, so that nothing ever lands on a Redis the bench did not start.

Huey is a bench-only dependency (``make bench`` installs it), never one of geventq.
"""

from __future__ import annotations

import os

from huey import RedisHuey

from bench import jobs

if not os.environ.get("REDIS_URL"):
    raise RuntimeError("bench.huey_app needs REDIS_URL (the bench's private redis-server)")

# store_none: geventq and rq store a job's None result, and the bench polls for it
huey = RedisHuey("bench", url=os.environ["REDIS_URL"], store_none=True)

# counts the holding tasks that have begun: huey keeps no started registry to read
STARTED_KEY = "bench:started"

noop = huey.task()(jobs.noop)


@huey.task()
def counted_io_wait(seconds: float) -> float:
    """``jobs.io_wait`` that first counts itself as started in ``STARTED_KEY``."""
    huey.storage.conn.incr(STARTED_KEY)
    return jobs.io_wait(seconds)
