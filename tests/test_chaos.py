"""Chaos: SIGKILLed workers, a Redis restart and CLIENT KILLs in one run; no job lost.

One private redis-server of the test's own, with ``appendonly yes`` (and the default
``appendfsync everysec``) and ``proto-max-bulk-len 1mb``, the smallest Redis takes.
It is restarted gracefully (SIGTERM: Redis writes its append-only file before it
exits, so every acknowledged write survives; a crash of Redis itself could lose up
to a second of writes with ``everysec``: see docs/reliability.md).

Workers: real ``geventq worker`` processes, half in gevent mode, half in fork mode,
SIGKILLed (process group: pulse and forked children too) and replaced at random
moments. Jobs: ``record`` jobs (each execution counted in Redis), plus jobs whose
result is just under the server's limit (they finish) and just over it (they fail,
with a reason naming the limit).

Reported (``-s``): jobs, kills (SIGKILL, CLIENT KILL, Redis restarts), lost (must be 0),
doubles (jobs run more than once: at-least-once allows them, but only for jobs that
were in flight at a disruption, which the test checks).

``ci`` scale (the default) runs in the suite; ``make chaos`` runs the ``long`` scale
(GEVENTQ_CHAOS=long).
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import redis

from geventq import Queue
from geventq.keys import Keys
from geventq.testing import RedisServer
from geventq.utils import as_str
from tests import invariants
from tests import jobs_reliability as jobs
from tests.helpers import quietly, wait_for
from tests.test_recovery import write_config

KEYS = Keys()
LIMIT = 1024 * 1024  # proto-max-bulk-len of the test's server
LONG = os.environ.get("GEVENTQ_CHAOS") == "long"
SCALE = {
    # jobs, big jobs (each kind), seconds of chaos, Redis restarts, CLIENT KILLs
    "ci": dict(jobs=1500, big=3, seconds=8, restarts=1, client_kills=2),
    "long": dict(jobs=25000, big=20, seconds=150, restarts=4, client_kills=10),
}["long" if LONG else "ci"]


def in_flight(connection, names) -> set[str]:
    """Ids in the in-flight sets of these workers (read right after a disruption: a killed
    worker's set stays until it is recovered)."""
    pipe = connection.pipeline(transaction=False)
    for name in names:
        pipe.smembers(KEYS.worker_jobs(name))
    return {as_str(i) for members in pipe.execute() for i in members}


def all_workers(connection) -> list[str]:
    return [as_str(n) for n in connection.smembers(KEYS.workers)]


class Chaos:
    """Workers to kill and replace, disruptions counted, in-flight ids at each one."""

    def __init__(self, start_worker, server: RedisServer, config: str, rng: random.Random):
        self.start_worker, self.server, self.config, self.rng = start_worker, server, config, rng
        self.serial = 0
        self.workers: dict[str, object] = {}
        self.counts = {"sigkill": 0, "client_kill": 0, "redis_restart": 0}
        self.exposed: set[str] = set()  # ids in flight at some disruption

    def spawn(self, mode: str) -> None:
        self.serial += 1
        name = f"chaos-{mode}-{self.serial}"
        args = ["-c", self.config, "--name", name, "--mode", mode]
        args += ["-n", "10"] if mode == "gevent" else ["--fork-concurrency", "3"]
        self.workers[name] = (mode, self.start_worker(*args, "chaos",
                                                      env_extra={"REDIS_URL": self.server.url}))

    def sigkill(self, connection) -> None:
        name = self.rng.choice(sorted(self.workers))
        mode, proc = self.workers.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.proc.wait(10)
        self.counts["sigkill"] += 1
        self.exposed |= quietly_read(lambda: in_flight(connection, [name]))
        self.spawn(mode)

    def client_kill(self, connection) -> None:
        before = quietly_read(lambda: in_flight(connection, all_workers(connection)))
        connection.client_kill_filter(_type="normal", skipme=True)
        connection.client_kill_filter(_type="pubsub")
        self.counts["client_kill"] += 1
        self.exposed |= before | quietly_read(lambda: in_flight(connection, all_workers(connection)))

    def redis_restart(self, connection) -> None:
        before = quietly_read(lambda: in_flight(connection, all_workers(connection)))
        self.server.stop()  # SIGTERM: the append-only file is written before Redis exits
        time.sleep(self.rng.uniform(0.5, 2.0))  # the outage itself (the scenario, not a wait)
        self.server.start()
        self.counts["redis_restart"] += 1
        wait_for(quietly(lambda: connection.ping()), timeout=10, message="Redis back")
        self.exposed |= before | quietly_read(lambda: in_flight(connection, all_workers(connection)))


def quietly_read(read) -> set[str]:
    """``read()``, or an empty set while Redis is away."""
    try:
        return read()
    except redis.RedisError:
        return set()


@pytest.mark.chaos
@pytest.mark.timeout(900 if LONG else 180)
def test_chaos_sigkill_redis_restart_client_kill_fork_and_gevent_no_job_lost(start_worker,
                                                                           tmp_path):
    scale = SCALE
    with RedisServer(persistent=True, args=["--appendonly", "yes",
                                            "--proto-max-bulk-len", str(LIMIT)]) as server:
        connection = redis.Redis(port=server.port, socket_timeout=10)
        queue = Queue("chaos", connection=connection)
        plain = [j.id for j in queue.enqueue_many(
            [queue.prepare_data(jobs.record, (0.05, 0.1)) for _ in range(scale["jobs"])])]
        fits = [queue.enqueue("tests.jobs_chaos.record_big", LIMIT - 4096).id
                for _ in range(scale["big"])]
        too_big = [queue.enqueue("tests.jobs_chaos.record_big", LIMIT + 1).id
                   for _ in range(scale["big"])]
        ids = plain + fits + too_big
        rng = random.Random(int(os.environ.get("GEVENTQ_CHAOS_SEED", "12")))
        config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, MAX_ABANDONED_REQUEUES=20,
                              LOGGING_LEVEL="WARNING")
        chaos = Chaos(start_worker, server, config, rng)
        for mode in ("gevent", "gevent", "fork", "fork"):
            chaos.spawn(mode)

        def ended() -> int:
            return queue.finished_job_registry.count + queue.failed_job_registry.count

        # when each disruption happens: restarts and CLIENT KILLs spread over the run
        began = time.monotonic()
        seconds = scale["seconds"]
        plan = ([("redis_restart", rng.uniform(0.2, 0.8) * seconds) for _ in range(scale["restarts"])]
                + [("client_kill", rng.uniform(0.1, 0.9) * seconds) for _ in range(scale["client_kills"])])
        plan.sort(key=lambda item: item[1])
        while time.monotonic() - began < seconds and not quietly(lambda: ended() >= len(ids))():
            elapsed = time.monotonic() - began
            if plan and plan[0][1] <= elapsed:
                action, _ = plan.pop(0)
                getattr(chaos, action)(connection)
            else:
                chaos.sigkill(connection)
            time.sleep(rng.uniform(0.2, 0.6))  # a random moment for the next disruption
        for action, _ in plan:  # the jobs ended early: the planned disruptions still happen
            getattr(chaos, action)(connection)
        wait_for(quietly(lambda: ended() >= len(ids)), timeout=300 if LONG else 120,
                 message=f"all {len(ids)} jobs ended")
        elapsed = time.monotonic() - began

        finished = set(as_str(i) for i in queue.finished_job_registry.get_job_ids())
        failed = set(as_str(i) for i in queue.failed_job_registry.get_job_ids())
        lost = set(ids) - finished - failed
        counts = dict(zip(ids, jobs.executions(connection, ids)))
        doubles = {i for i, n in counts.items() if n > 1}
        abandoned = [i for i in failed - set(too_big)
                     if "abandoned" in as_str(connection.hget(KEYS.job(i), "exc_info") or b"")]
        print(f"\nchaos ({'long' if LONG else 'ci'}): {len(ids)} jobs ({len(fits)} with results "
              f"just under proto-max-bulk-len {LIMIT}, {len(too_big)} just over), workers 2 gevent "
              f"+ 2 fork; {chaos.counts['sigkill']} SIGKILLs, {chaos.counts['client_kill']} "
              f"CLIENT KILLs, {chaos.counts['redis_restart']} Redis restarts in {elapsed:.1f} s: "
              f"finished {len(finished)}, failed {len(failed)} (too big {len(failed & set(too_big))}, "
              f"abandoned {len(abandoned)}), lost {len(lost)}, doubles {len(doubles)} "
              f"(all in flight at a disruption: {doubles <= chaos.exposed}; "
              f"{len(chaos.exposed)} ids were in flight at one)")
        assert not lost, f"lost {len(lost)} jobs: {sorted(lost)[:5]}"
        assert not finished & failed
        assert set(too_big) <= failed  # each failed alone, with a reason naming the limit
        for job_id in too_big:
            reason = as_str(connection.hget(KEYS.job(job_id), "exc_info"))
            assert f"proto-max-bulk-len of {LIMIT} bytes" in reason or "abandoned" in reason, reason
        assert set(fits) - failed <= finished
        others = {i: as_str(connection.hget(KEYS.job(i), "exc_info") or b"")[:3000]
                  for i in failed - set(too_big) - set(abandoned)}
        assert not others, f"jobs failed for another reason: {others}"
        assert doubles <= chaos.exposed, f"run twice but never in flight at a disruption: " \
                                         f"{sorted(doubles - chaos.exposed)[:5]}"
        assert all(counts[i] >= 1 for i in finished)  # finished means it ran
        assert chaos.counts["sigkill"] >= 5 and chaos.counts["redis_restart"] >= 1
        assert chaos.counts["client_kill"] >= 1
        invariants.check_all(connection, KEYS, ["chaos"], ids)
        assert queue.count == 0 and queue.started_job_registry.count == 0
        connection.close()
