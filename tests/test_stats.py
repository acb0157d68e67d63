"""geventq.stats: one snapshot of queues, workers and pools, bounded in cost, sure-footed on garbage."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import redis

from geventq import Queue, SimpleWorker, lifecycle
from geventq.keys import Keys
from geventq.stats import (
    MAX_JOB_IDS,
    QUEUE_COMMANDS,
    QUEUE_STATES,
    WORKER_COMMANDS,
    pause_supported,
    take_snapshot,
)


def _commands_processed(connection: redis.Redis) -> int:
    return int(connection.info("stats")["total_commands_processed"])


def test_a_queue_counts_its_jobs_in_every_state(connection):
    q = Queue(connection=connection)
    keys = q.keys
    for _ in range(2):
        q.enqueue("tests.jobs.fail")
    q.enqueue("tests.jobs.add", 1, 2)
    SimpleWorker([q], connection=connection).work(burst=True)  # 2 failed, 1 finished
    running = q.enqueue("tests.jobs.noop")
    claimed = lifecycle.claim_and_start(connection, keys, ["default"], "stats-test-worker", 1)
    assert [job.id for job in claimed.jobs] == [running.id]  # started, held by that "worker"
    parent = q.enqueue("tests.jobs.noop")  # queued
    q.enqueue("tests.jobs.noop", depends_on=parent)  # deferred
    q.enqueue_in(timedelta(hours=1), "tests.jobs.noop")  # scheduled
    q.enqueue("tests.jobs.noop").cancel()  # canceled
    q.enqueue("tests.jobs.noop")  # queued

    stats = take_snapshot(connection, keys).queue("default")
    assert stats.as_dict() == {
        "name": "default", "queued": 2, "started": 1, "scheduled": 1, "deferred": 1, "failed": 2,
        "finished": 1, "canceled": 1, "oldest_job_age": stats.oldest_job_age, "paused": False}
    assert list(stats.as_dict())[1:8] == list(QUEUE_STATES)


def test_the_oldest_job_age_is_how_long_the_head_has_waited(connection):
    q = Queue("ages", connection=connection)
    assert take_snapshot(connection, q.keys).queues == []  # no queue until a job comes
    first = q.enqueue("tests.jobs.noop")
    connection.hset(first.key, "enqueued_at", repr(time.time() - 120))  # waited two minutes
    q.enqueue("tests.jobs.noop")
    q.enqueue("tests.jobs.noop", at_front=True)  # a newer job at the head hides nothing
    age = take_snapshot(connection, q.keys).queue("ages").oldest_job_age
    assert 119 < age < 130
    q.empty()
    assert take_snapshot(connection, q.keys).queue("ages").oldest_job_age == 0


def test_expired_entries_and_expired_queued_jobs_are_not_counted(connection):
    q = Queue(connection=connection)
    q.enqueue("tests.jobs.fail")
    SimpleWorker([q], connection=connection).work(burst=True)
    failed = q.failed_job_registry.key
    connection.zadd(failed, {"long-gone": time.time() - 10})  # an entry past its expiry
    expiring = q.enqueue("tests.jobs.noop", ttl=1)
    connection.zadd(q.keys.expiring("default"), {expiring.id: time.time() - 1})  # its ttl ran out
    before = connection.zcard(failed)
    stats = take_snapshot(connection, q.keys).queue("default")
    assert (stats.failed, stats.queued) == (1, 0)
    assert connection.zcard(failed) == before  # the snapshot only reads: nothing was trimmed


def test_workers_show_state_slots_hub_blocked_current_jobs_and_pools(connection, monkeypatch, register):
    q = Queue(connection=connection)
    for _ in range(30):
        q.enqueue("tests.jobs.noop")
    monkeypatch.setenv("GEVENTQ_POOL", "emails")
    busy = SimpleWorker(["default", "low"], connection=connection, name="busy-one")
    register(busy, concurrency=40, mode="gevent")
    claimed = lifecycle.claim(connection, busy.keys, ["default"], "busy-one", 25)
    connection.hincrby(busy.key, "hub_blocked", 3)
    monkeypatch.delenv("GEVENTQ_POOL")
    idle = SimpleWorker(["low"], connection=connection, name="idle-one")
    register(idle, concurrency=1, mode="simple")
    forked = SimpleWorker(["cpu", "io"], connection=connection, name="forked-one")
    register(forked, concurrency=100, mode="gevent", fork_queues="cpu", fork_concurrency=4)
    connection.hset(forked.key, "state", "suspended")

    snapshot = take_snapshot(connection, Keys())
    by_name = {w.name: w for w in snapshot.workers}
    one = by_name["busy-one"]
    assert (one.state, one.queues, one.pool, one.slots, one.busy, one.free, one.hub_blocked) == \
        ("busy", ["default", "low"], "emails", 40, 25, 15, 3)
    assert len(one.current_job_ids) == MAX_JOB_IDS  # listed up to the cap, all counted
    assert set(one.current_job_ids) <= {job_id for _, job_id in claimed}
    assert (by_name["idle-one"].state, by_name["idle-one"].slots, by_name["idle-one"].free) == \
        ("idle", 1, 1)
    assert (by_name["forked-one"].state, by_name["forked-one"].slots) == ("suspended", 104)
    pools = {p.name: p.as_dict() for p in snapshot.pools}
    assert pools["emails"] == {"name": "emails", "workers": 1, "busy": 25, "free": 15,
                               "hub_blocked": 3}
    assert pools[""]["workers"] == 2 and pools[""]["free"] == 1 + 104
    # one queue's snapshot keeps the workers of that queue only
    only_low = take_snapshot(connection, Keys(), ["low"])
    assert sorted(w.name for w in only_low.workers) == ["busy-one", "idle-one"]
    assert [q.name for q in only_low.queues] == ["low"]


def test_suspended_flag_and_pause_seam(connection):
    from geventq.control import suspend

    assert take_snapshot(connection, Keys()).suspended is False
    suspend(connection)
    assert take_snapshot(connection, Keys()).suspended is True
    # pausing queues (issue 14): the snapshot reads the paused set
    assert pause_supported() is True
    Queue("low", connection=connection).pause()
    snapshot = take_snapshot(connection, Keys())
    assert snapshot.queue("low").paused is True


def test_garbage_in_redis_is_survived(connection):
    keys = Keys()
    q = Queue(connection=connection)
    q.enqueue("tests.jobs.noop")
    connection.sadd(keys.queues, b"\xff\xfe", "wrong-type", "")
    connection.set(keys.queue("wrong-type"), "not a list")
    connection.set(keys.registry("failed", "wrong-type"), "not a zset")
    connection.hset(q.keys.job(q.job_ids[0]), "enqueued_at", "yesterday")
    connection.sadd(keys.workers, "ghost", "junk", "\u202e<b>")
    connection.hset(keys.worker("junk"), mapping={
        "queues": ",,default,", "concurrency": "lots", "pid": "-", "hub_blocked": "1e400",
        "successful": "nan", "birth": "inf", "working_time": "-5", "state": "\x00"})
    connection.set(keys.worker_jobs("junk"), "not a set")
    connection.hset(keys.worker("\u202e<b>"), "concurrency", "3")
    connection.set(keys.suspended, "")

    snapshot = take_snapshot(connection, keys)
    names = [q.name for q in snapshot.queues]
    assert "default" in names and "wrong-type" in names and "" not in names
    broken = snapshot.queue("wrong-type")
    assert (broken.queued, broken.failed, broken.oldest_job_age) == (0, 0, 0)
    assert snapshot.queue("default").queued == 1  # its head's garbage stamp: age unknown
    junk = next(w for w in snapshot.workers if w.name == "junk")
    assert (junk.queues, junk.slots, junk.pid, junk.hub_blocked, junk.successful, junk.birth,
            junk.working_time, junk.busy, junk.state) == (["default"], 0, 0, 0, 0, None, 0.0, 0, "idle")
    assert "ghost" not in [w.name for w in snapshot.workers]  # no hash: dead
    assert snapshot.as_dict()["workers"]  # and it serializes


def test_100_queues_and_50_workers_take_two_round_trips_and_a_fixed_number_of_commands(connection):
    keys = Keys()
    pipe = connection.pipeline(transaction=False)
    for i in range(100):
        name = f"q{i:03d}"
        pipe.sadd(keys.queues, name)
        pipe.rpush(keys.queue(name), *[f"{name}-{n}" for n in range(20)])
        pipe.zadd(keys.registry("failed", name), {f"f{n}": time.time() + 3600 for n in range(10)})
    for i in range(50):
        name = f"w{i:02d}"
        pipe.sadd(keys.workers, name)
        pipe.hset(keys.worker(name), mapping={"queues": "q000,q001", "concurrency": 100})
        pipe.sadd(keys.worker_jobs(name), *[f"job{n}" for n in range(30)])
    pipe.execute()

    before = _commands_processed(connection)
    started = time.perf_counter()
    snapshot = take_snapshot(connection, keys)
    elapsed = time.perf_counter() - started
    sent = _commands_processed(connection) - before - 1  # less the INFO that read `before`
    assert len(snapshot.queues) == 100 and len(snapshot.workers) == 50
    assert snapshot.round_trips == 2
    assert snapshot.commands == sent == 4 + 100 * QUEUE_COMMANDS + 50 * WORKER_COMMANDS
    assert snapshot.queue("q042").failed == 10 and snapshot.queue("q042").queued == 20
    assert elapsed < 1.0, f"a snapshot of 100 queues and 50 workers took {elapsed:.3f} s"


@pytest.fixture
def restricted_user(connection, redis_url):
    """An ACL user that may read geventq:* keys only (SORT ... GET is refused to it)."""
    connection.acl_setuser("stats-reader", enabled=True, passwords=["+pw"],
                           keys=["geventq:*"], commands=["+@all"], reset=True)
    client = redis.Redis.from_url(redis_url.replace("redis://", "redis://stats-reader:pw@"))
    yield client
    client.close()
    connection.acl_deluser("stats-reader")


def test_an_acl_user_limited_to_the_prefix_still_gets_the_ages(connection, restricted_user):
    q = Queue(connection=connection)
    job = q.enqueue("tests.jobs.noop")
    connection.hset(job.key, "enqueued_at", repr(time.time() - 60))
    snapshot = take_snapshot(restricted_user, Keys())
    assert 59 < snapshot.queue("default").oldest_job_age < 70
    assert snapshot.round_trips == 4  # the ages took two more round trips


def test_a_prefix_with_sort_pattern_characters_gets_the_ages_too(connection):
    q = Queue(connection=connection, prefix="odd*->:")
    job = q.enqueue("tests.jobs.noop")
    connection.hset(job.key, "enqueued_at", repr(time.time() - 30))
    snapshot = take_snapshot(connection, q.keys)
    assert 29 < snapshot.queue("default").oldest_job_age < 40
