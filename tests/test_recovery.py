"""Crash recovery: a dead worker's jobs go back to their queue, promptly, exactly once.

Real `geventq worker` processes, SIGKILLed; a short HEARTBEAT_INTERVAL (from a
config file) keeps the waits short. Figures are printed (run with -s to see).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
import redis

from geventq import Queue, Retry, lifecycle
from geventq.job import Job
from geventq.keys import Keys
from geventq.worker.recovery import DeadWorkerRecovery
from tests import jobs_reliability as jobs
from tests.helpers import wait_for

KEYS = Keys()


def write_config(tmp_path, name: str = "settings_reliability.py", **settings) -> str:
    path = tmp_path / name
    path.write_text("".join(f"{key} = {value!r}\n" for key, value in settings.items()))
    return str(path)


def registered(connection, name: str) -> bool:
    return bool(connection.exists(KEYS.worker(name)))


def kill(worker) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.proc.wait(10)


def test_jobs_of_a_killed_worker_are_requeued_by_a_live_one(connection, queue, start_worker,
                                                           tmp_path):
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=1, LOGGING_LEVEL="WARNING")
    victim = start_worker("-c", config, "--name", "victim", "-n", "5", "default")
    start_worker("-c", config, "--name", "watcher", "elsewhere")  # recovers; never takes them
    started = [queue.enqueue(jobs.record, 60, job_timeout=-1) for _ in range(3)]
    wait_for(lambda: all(j.get_status() == "started" for j in started), timeout=15,
             message="three jobs running on the victim")
    wait_for(lambda: registered(connection, "watcher"), message="the watcher")
    kill(victim)
    killed_at = time.monotonic()
    wait_for(lambda: queue.count == 3, timeout=10, message="the jobs back on their queue")
    elapsed = time.monotonic() - killed_at
    print(f"\nrecovery: jobs back on their queue {elapsed:.2f} s after SIGKILL "
          f"(heartbeat interval 1 s, worker TTL 3 s)")
    # the TTL (3 intervals) since the last beat, plus one sweep period (1.25 intervals)
    assert elapsed < 5
    for job in started:
        job.refresh()
        assert job.get_status() == "queued"
        assert job.extra.get("requeues") == "1"
        assert job.worker_name is None
    assert queue.started_job_registry.count == 0
    # the recoverer forgets the worker in a step of its own, right after giving its jobs back
    wait_for(lambda: not connection.sismember(KEYS.workers, "victim"), timeout=5,
             message="the victim forgotten")
    assert connection.scard(KEYS.worker_jobs("victim")) == 0


def test_simple_worker_recovers_and_fails_a_job_past_max_requeues(connection, queue,
                                                                  start_worker, tmp_path):
    victim_config = write_config(tmp_path, "victim.py", HEARTBEAT_INTERVAL=0.5,
                                 LOGGING_LEVEL="WARNING")
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, MAX_ABANDONED_REQUEUES=0,
                          WORKER_CLASS="geventq.SimpleWorker", LOGGING_LEVEL="WARNING")
    victim = start_worker("-c", victim_config, "--name", "victim2", "default")
    start_worker("-c", config, "--name", "simple-watcher", "elsewhere")
    plain = queue.enqueue(jobs.record, 60, job_timeout=-1)
    retrying = queue.enqueue(jobs.record, 60, job_timeout=-1, retry=Retry(max=1))
    wait_for(lambda: all(j.get_status() == "started" for j in (plain, retrying)), timeout=15,
             message="jobs running on the victim")
    wait_for(lambda: registered(connection, "simple-watcher"), message="the simple watcher")
    kill(victim)
    wait_for(lambda: plain.get_status() == "failed", timeout=10, message="the job failed")
    plain.refresh()
    assert plain.exc_info.startswith("abandoned: worker victim2 died")
    assert plain.id in queue.failed_job_registry
    assert plain.id not in queue.started_job_registry
    # Retry is honoured: the abandonment spends a retry instead of failing the job
    wait_for(lambda: retrying.get_status() == "queued", timeout=5, message="retry requeued")
    retrying.refresh()
    assert retrying.retries_left == 0
    assert "abandoned: worker victim2 died" in " ".join(retrying.exc_history)


def test_two_recoverers_never_recover_the_same_job(connection, redis_server):
    """Eight threads sweep at once over 300 abandoned jobs while a live worker claims them
    back as fast as it can: each job is recovered exactly once, and a recoverer working
    from a stale list never touches a job the live worker holds by then."""
    queue = Queue("default", connection=connection)
    ids = [j.id for j in queue.enqueue_many(
        [Queue.prepare_data(jobs.add, (i, i)) for i in range(300)])]
    for name in ("dead-a", "dead-b", "dead-c"):
        connection.sadd(KEYS.workers, name)  # registered, but no live key: dead
        claimed = lifecycle.claim(connection, KEYS, ["default"], name, 100)
        lifecycle.start(connection, KEYS, name, claimed)
    connection.set(KEYS.worker("live"), "1")  # alive (not in the workers set: never swept)
    results: list[dict] = []
    barrier = threading.Barrier(9)

    def sweep():
        client = redis.Redis(port=redis_server.port)
        recoverer = DeadWorkerRecovery(client, KEYS, "me", interval=0.1, max_requeues=1,
                                       confirm=0)
        barrier.wait()
        results.append(recoverer.sweep())
        client.close()

    def claim_back():
        client = redis.Redis(port=redis_server.port)
        barrier.wait()
        while len(results) < 8:
            lifecycle.start(client, KEYS, "live",
                            lifecycle.claim(client, KEYS, ["default"], "live", 5))
        client.close()

    threads = [threading.Thread(target=sweep) for _ in range(8)]
    threads.append(threading.Thread(target=claim_back))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    acted = [job_id for outcome in results for job_id, o in outcome.items() if o == "queued"]
    assert sorted(acted) == sorted(ids)  # every job recovered, none twice
    held = {i.decode() for i in connection.smembers(KEYS.worker_jobs("live"))}
    assert held, "the live worker claimed none back: the race was not exercised"
    assert sorted(queue.job_ids + list(held)) == sorted(ids)
    assert sorted(queue.started_job_registry.get_job_ids()) == sorted(held)
    for job in Job.fetch_many(ids, connection=connection):
        assert job.extra["requeues"] == "1"
        assert job.get_status(refresh=False) == ("started" if job.id in held else "queued")
    assert queue.failed_job_registry.count == 0
    assert not connection.smembers(KEYS.workers)


def test_a_live_worker_with_a_blocked_hub_is_never_taken_for_dead(connection, queue,
                                                                  start_worker, tmp_path):
    """A CPU loop holds the hub past the worker TTL; the native heartbeat keeps it alive."""
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, LOGGING_LEVEL="WARNING")
    start_worker("-c", config, "--name", "busy", "default")
    watcher = start_worker("-c", config, "--name", "watcher3", "elsewhere")
    wait_for(lambda: registered(connection, "watcher3"), message="the watcher")
    job = queue.enqueue(jobs.spin, 4.0, job_timeout=-1)  # TTL is 2 s; confirm 1.5 s
    assert job.wait(timeout=20) > 0
    job.refresh()
    assert "requeues" not in job.extra
    assert job.worker_name == "busy"
    assert connection.hget(jobs.EXECUTIONS, job.id) == b"1"  # spin counts in the hash
    assert registered(connection, "busy")
    assert watcher.proc.poll() is None


def test_a_claim_whose_reply_was_lost_is_run_by_its_worker(connection, start_worker, tmp_path):
    """Ids in a worker's in-flight set that it does not know of (as when redis-py re-sends a
    claim after a dropped connection) are found by its self-check and run."""
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, LOGGING_LEVEL="WARNING")
    worker = start_worker("-c", config, "--name", "forgetful", "default")
    wait_for(lambda: registered(connection, "forgetful"), message="the worker")
    other = Queue("other", connection=connection)  # a queue the worker does not listen to
    job = other.enqueue(jobs.add, 2, 3)
    assert lifecycle.claim(connection, KEYS, ["other"], "forgetful", 1) == [("other", job.id)]
    assert job.wait(timeout=10) == 5
    assert connection.scard(KEYS.worker_jobs("forgetful")) == 0
    assert other.finished_job_registry.count == 1 and other.started_job_registry.count == 0
    assert worker.proc.poll() is None


@pytest.mark.timeout(90)
def test_chaos_kill_a_worker_every_half_second(connection, queue, start_worker, tmp_path):
    """3,000 jobs, 4 workers, one SIGKILLed (and replaced) every 0.5 s: none lost."""
    concurrency = 20
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, CONCURRENCY=concurrency,
                          LOGGING_LEVEL="WARNING")
    total = 3000
    ids = [j.id for j in queue.enqueue_many(
        [Queue.prepare_data(jobs.record, (0.002, 0.01)) for _ in range(total)])]
    serial = iter(range(1000))
    workers = [start_worker("-c", config, "--name", f"chaos{next(serial)}", "default")
               for _ in range(4)]

    def ended() -> int:
        return queue.finished_job_registry.count + queue.failed_job_registry.count

    rng = random.Random(6)
    kills = 0
    began = time.monotonic()
    while ended() < total and time.monotonic() - began < 40:
        window = time.monotonic()
        time.sleep(rng.uniform(0.0, 0.5))  # a random moment within each half second
        if ended() >= total:
            break
        victim = workers.pop(rng.randrange(len(workers)))
        kill(victim)
        kills += 1
        workers.append(start_worker("-c", config, "--name", f"chaos{next(serial)}", "default"))
        time.sleep(max(0.0, window + 0.5 - time.monotonic()))  # the scenario: one kill a half second
    wait_for(lambda: ended() >= total, timeout=30, message=f"all {total} jobs ended")
    elapsed = time.monotonic() - began

    statuses = [Job.fetch(i, connection=connection) for i in ids]
    finished = [j for j in statuses if j.get_status(refresh=False) == "finished"]
    failed = [j for j in statuses if j.get_status(refresh=False) == "failed"]
    counts = dict(zip(ids, jobs.executions(connection, ids)))
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    print(f"\nchaos: {total} jobs, 4 workers x {concurrency}, {kills} SIGKILLs in {elapsed:.1f} s: "
          f"finished {len(finished)}, failed as abandoned {len(failed)}, lost 0, "
          f"double executions {duplicates} (bound {kills * concurrency})")
    assert len(finished) + len(failed) == total  # lost = 0
    for job in failed:
        assert job.exc_info.startswith("abandoned: worker chaos"), job.exc_info
    finished_ids = set(queue.finished_job_registry.get_job_ids())
    failed_ids = set(queue.failed_job_registry.get_job_ids())
    assert finished_ids | failed_ids == set(ids) and not finished_ids & failed_ids
    assert queue.count == 0 and queue.started_job_registry.count == 0
    assert all(counts.get(j.id, 0) >= 1 for j in finished)  # finished means it ran
    assert duplicates <= kills * concurrency
    assert int(connection.get(jobs.COUNTER)) == sum(counts.values())
    assert kills >= 5
