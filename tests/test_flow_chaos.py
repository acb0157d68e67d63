"""Chaos with limits: workers SIGKILLed while running jobs of limited keys. Afterwards no key
holds more slots than it has running jobs, and every job has run."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from geventq import Limit, Queue
from geventq.keys import Keys
from tests import jobs_flow
from tests.helpers import wait_for

KEYS = Keys()
LIMITED = {"a": 2, "b": 3, "c": 1}


def kill(worker) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.proc.wait(10)


def slots_never_exceed_running(connection) -> None:
    """Each key's slots: at most its concurrency, and each one a claimed or running job."""
    for name, concurrency in LIMITED.items():
        holders = [m.decode() for m in connection.zrange(KEYS.limit_slots(name), 0, -1)]
        assert len(holders) <= concurrency, (name, holders)


@pytest.mark.timeout(90)
def test_kills_during_a_run_with_limited_keys_leak_no_slot_and_lose_no_job(
        connection, start_worker, tmp_path):
    config = tmp_path / "settings_flow_chaos.py"
    config.write_text("HEARTBEAT_INTERVAL = 0.5\nCONCURRENCY = 20\nLOGGING_LEVEL = 'WARNING'\n")
    q = Queue("q", connection=connection)
    rng = random.Random(14)
    batch = []
    for i in range(120):
        name = "abc"[i % 3]
        batch.append(q.enqueue(jobs_flow.held, f"chaos-{name}", rng.uniform(0.02, 0.15),
                               limit=Limit(name, concurrency=LIMITED[name]), job_timeout=10))
    serial = iter(range(100))
    workers = [start_worker("-c", str(config), "--name", f"fc{next(serial)}", "q")
               for _ in range(3)]
    kills = 0
    began = time.monotonic()

    def ended() -> int:
        return q.finished_job_registry.count + q.failed_job_registry.count

    while ended() < len(batch) and time.monotonic() - began < 30 and kills < 6:
        deadline = time.monotonic() + rng.uniform(0.3, 0.7)
        while time.monotonic() < deadline:  # sample the slots until the next kill
            slots_never_exceed_running(connection)
            time.sleep(0.02)  # sampling the invariant until the next kill, not a wait
        victim = workers.pop(rng.randrange(len(workers)))
        kill(victim)
        kills += 1
        workers.append(start_worker("-c", str(config), "--name", f"fc{next(serial)}", "q"))
    wait_for(lambda: ended() >= len(batch), timeout=40, message="every job ended")
    for job in batch:
        job.refresh()
    statuses = {job.get_status(refresh=False) for job in batch}
    # a job killed more often than MAX_ABANDONED_REQUEUES fails as abandoned; none is lost
    assert statuses <= {"finished", "failed"}
    ran = {j.decode() for name in LIMITED for j in
           connection.lrange(f"flow:done:chaos-{name}", 0, -1)}
    assert {job.id for job in batch if job.get_status(refresh=False) == "finished"} <= ran
    # afterwards: nothing runs, so no key holds a slot, parks a job or has a timer left
    for name in LIMITED:
        assert connection.zcard(KEYS.limit_slots(name)) == 0, name
        assert connection.llen(KEYS.limit_parked(name)) == 0, name
    assert q.count == 0 and q.started_job_registry.count == 0
    assert kills >= 3
    for worker in workers:
        worker.signal(signal.SIGTERM)
