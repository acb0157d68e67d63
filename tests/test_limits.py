"""Limits per key (API section 8), decided in the claim script: Limit validation, parking
(no head-of-line blocking), slots given back on every ending, rate windows, self-healing."""

from __future__ import annotations

import time

import pytest

from geventq import Limit, Queue, lifecycle
from geventq.endings import Ending
from geventq.job import Job
from geventq.keys import Keys
from tests import jobs
from tests.helpers import wait_for

KEYS = Keys()


def claim(connection, count=10, queues=("q",), worker="w1"):
    return [job_id for _, job_id in lifecycle.claim(connection, KEYS, list(queues), worker, count)]


def end(connection, job_id, outcome="finished", worker="w1"):
    job = Job.fetch(job_id, connection=connection)
    lifecycle.start(connection, KEYS, worker, [(job.origin, job_id)])
    job = Job.fetch(job_id, connection=connection)
    lifecycle.end_job(connection, KEYS, worker, Ending(job, outcome, b"x" if outcome ==
                                                       "finished" else "boom"))


@pytest.mark.parametrize("make, needle", [
    (lambda: Limit("k", concurrency=0), "concurrency"),
    (lambda: Limit("k", concurrency=-1), "concurrency"),
    (lambda: Limit("k", concurrency=2.5), "concurrency"),
    (lambda: Limit("k", concurrency=True), "concurrency"),
    (lambda: Limit("k", rate=-3), "rate"),
    (lambda: Limit("k", rate=0), "rate"),
    (lambda: Limit("k", rate=5, per=0), "per"),
    (lambda: Limit("k", rate=5, per=float("nan")), "per"),
    (lambda: Limit("k", rate=5, per="1s"), "per"),
    (lambda: Limit(42, concurrency=1), "string"),
    (lambda: Limit("", concurrency=1), "printable"),
    (lambda: Limit("a\nb", concurrency=1), "printable"),
    (lambda: Limit("k"), "concurrency= or rate="),
])
def test_bad_limits_are_refused_at_once(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()


def test_bad_limit_options_write_nothing(connection):
    q = Queue("q", connection=connection)
    with pytest.raises(ValueError, match="geventq.Limit"):
        q.enqueue(jobs.noop, limit={"key": "k", "concurrency": 1})
    with pytest.raises(ValueError, match="is_async=False"):
        Queue("q", connection=connection, is_async=False).enqueue(
            jobs.noop, limit=Limit("k", concurrency=1))
    with pytest.raises(ValueError, match="is_async=False"):
        Queue("q", connection=connection, is_async=False, limit=Limit("k", concurrency=1))
    with pytest.raises(ValueError, match="geventq.Limit"):
        q.enqueue_many([Queue.prepare_data(jobs.noop), Queue.prepare_data(jobs.noop, limit=3)])
    assert connection.dbsize() == 0


def test_a_full_key_parks_its_jobs_and_the_others_go_past(connection):
    q = Queue("q", connection=connection)
    busy = [q.enqueue(jobs.noop, limit=Limit("busy", concurrency=2)) for _ in range(50)]
    other = q.enqueue(jobs.noop, limit=Limit("other", concurrency=2))
    plain = q.enqueue(jobs.noop)
    got = claim(connection, 10)
    # two of the busy key, then the jobs behind its 48 parked ones: no head-of-line blocking
    assert got == [busy[0].id, busy[1].id, other.id, plain.id]
    assert [i.decode() for i in connection.lrange(KEYS.limit_parked("busy"), 0, -1)] == \
        [j.id for j in busy[2:]]
    assert connection.zcard(KEYS.limit_slots("busy")) == 2
    assert all(j.get_status() == "queued" for j in busy[2:])
    assert claim(connection, 10) == []  # nothing has room
    # a freed slot puts the next parked job back at the head of its queue, first parked first
    end(connection, busy[0].id)
    assert q.job_ids == [busy[2].id]
    assert connection.llen(KEYS.wake("q")) == 1  # and wakes the idle workers
    assert claim(connection, 10) == [busy[2].id]


def test_every_ending_gives_the_slot_back(connection):
    q = Queue("q", connection=connection)
    limit = Limit("k", concurrency=1)
    first = q.enqueue(jobs.noop, limit=limit)
    waiting = [q.enqueue(jobs.noop, limit=limit) for _ in range(6)]
    assert claim(connection) == [first.id]

    def next_one(previous_id, how):
        how(previous_id)
        got = claim(connection)
        assert len(got) == 1, f"no slot came back after {how.__name__}"
        assert connection.zcard(KEYS.limit_slots("k")) == 1
        return got[0]

    def finished(job_id):
        end(connection, job_id, "finished")

    def failed(job_id):
        end(connection, job_id, "failed")

    def stopped(job_id):
        end(connection, job_id, "stopped")

    def canceled_while_started(job_id):
        lifecycle.start(connection, KEYS, "w1", [("q", job_id)])
        Job.fetch(job_id, connection=connection).cancel()

    def canceled_while_claimed(job_id):
        Job.fetch(job_id, connection=connection).cancel()

    def cold_shutdown_requeue(job_id):
        lifecycle.start(connection, KEYS, "w1", [("q", job_id)])
        assert lifecycle.requeue_started(connection, KEYS, "w1", job_id, "q", "cold") == "queued"

    current = first.id
    for how in (finished, failed, stopped, canceled_while_started, canceled_while_claimed,
                cold_shutdown_requeue):
        current = next_one(current, how)
    assert {current} <= {j.id for j in waiting} | {first.id}


def test_a_dead_workers_jobs_give_their_slots_back_when_recovered(connection):
    q = Queue("q", connection=connection)
    limit = Limit("k", concurrency=2)
    ids = [q.enqueue(jobs.noop, limit=limit).id for _ in range(3)]
    assert claim(connection, worker="dead") == ids[:2]
    lifecycle.start(connection, KEYS, "dead", [("q", ids[0])])  # one started, one claimed
    connection.sadd(KEYS.workers, "dead")  # registered, and its heartbeat key is gone
    lifecycle.recover_dead_workers(connection, KEYS)
    assert connection.zcard(KEYS.limit_slots("k")) == 0
    assert sorted(claim(connection, worker="w2")) == sorted(ids[:2])


def test_rate_window_holds_starts_back_and_says_when(connection):
    q = Queue("q", connection=connection)
    limit = Limit("k", rate=2, per=0.5)
    ids = [q.enqueue(jobs.noop, limit=limit).id for _ in range(5)]
    started = time.monotonic()
    result = lifecycle.claim_and_start(connection, KEYS, ["q"], "w1", 10)
    assert [i for _, i in result.claimed] == ids[:2]
    assert result.retry_in is not None and 0.3 < result.retry_in <= 0.5
    assert claim(connection) == []
    got = wait_for(lambda: claim(connection), timeout=3, message="the next rate window")
    assert got == ids[2:4]
    assert time.monotonic() - started >= 0.45


def test_latest_definition_of_a_key_wins(connection):
    q = Queue("q", connection=connection)
    [q.enqueue(jobs.noop, limit=Limit("k", concurrency=1)) for _ in range(3)]
    q.enqueue(jobs.noop, limit=Limit("k", concurrency=3))
    assert len(claim(connection)) == 3
    assert connection.hget(KEYS.limits, "k") == b"3 - 1.0"


def test_queue_default_limit_and_job_override(connection):
    q = Queue("q", connection=connection, limit=Limit("site", concurrency=1))
    a, b = q.enqueue(jobs.noop), q.enqueue(jobs.noop)
    c = q.enqueue(jobs.noop, limit=Limit("other", concurrency=1))
    d = q.enqueue_many([Queue.prepare_data(jobs.noop)])[0]
    assert {Job.fetch(j.id, connection=connection).extra["limit"] for j in (a, b, d)} == {"site"}
    assert claim(connection) == [a.id, c.id]


def holder_and_parked(connection):
    """Two jobs under a limit of one: the first claimed (it holds the slot), the second parked."""
    q = Queue("q", connection=connection)
    limit = Limit("k", concurrency=1)
    holder = q.enqueue(jobs.noop, limit=limit)
    waiting = q.enqueue(jobs.noop, limit=limit)
    assert claim(connection) == [holder.id]
    assert claim(connection) == []  # waiting is parked
    return holder, waiting


def test_slots_heal_when_a_job_left_without_giving_its_slot(connection):
    ghost, waiting = holder_and_parked(connection)
    # the slot's job vanished without an ending (a hostile write, a lost script): once the
    # slot's deadline is past, the key's timer drops it and the parked job goes on
    connection.delete(KEYS.job(ghost.id))
    connection.zadd(KEYS.limit_slots("k"), {ghost.id: time.time() - 1})
    assert wait_for(lambda: claim(connection), timeout=3) == [waiting.id]


def test_limit_keys_stay_in_the_prefix_slot(connection):
    keys = Keys("{app}:")
    q = Queue("q", connection=connection, keys=keys)
    for _ in range(3):
        q.enqueue(jobs.noop, limit=Limit("k", concurrency=1))
    assert len(lifecycle.claim(connection, keys, ["q"], "w1", 10)) == 1
    names = {k.decode() for k in connection.keys("*")}
    assert keys.limit_parked("k") in names and keys.limit_slots("k") in names
    assert all(name.startswith("{app}:") for name in names)


def test_a_slot_whose_job_no_longer_runs_is_healed_within_a_second(connection):
    leaked, waiting = holder_and_parked(connection)
    # the job left without giving its slot back (its deadline is still far ahead)
    connection.zrem(KEYS.registry("started", "q"), leaked.id)
    connection.srem(KEYS.worker_jobs("w1"), leaked.id)
    connection.hset(leaked.key, "status", "failed")
    assert claim(connection) == []
    started = time.monotonic()
    assert wait_for(lambda: claim(connection), timeout=3) == [waiting.id]
    assert time.monotonic() - started < 1.5


def test_a_job_put_back_without_its_slot_takes_it_again(connection):
    q = Queue("q", connection=connection)
    job = q.enqueue(jobs.noop, limit=Limit("k", concurrency=1))
    assert claim(connection) == [job.id]
    connection.zrem(KEYS.registry("started", "q"), job.id)  # back, its slot not given
    connection.srem(KEYS.worker_jobs("w1"), job.id)
    connection.lpush(KEYS.queue("q"), job.id)
    assert claim(connection) == [job.id]
    assert connection.zcard(KEYS.limit_slots("k")) == 1


def test_limit_through_job_decorator_and_enqueue_in(connection):
    from datetime import timedelta

    from geventq.decorators import job

    add = job("q", connection=connection, limit=Limit("deco", concurrency=1))(jobs.add)
    made = add.delay(1, 2)
    assert Job.fetch(made.id, connection=connection).extra["limit"] == "deco"
    later = Queue("q", connection=connection).enqueue_in(
        timedelta(hours=1), jobs.noop, limit=Limit("sched", rate=1))
    assert later.get_status() == "scheduled"
    assert connection.hget(KEYS.limits, "sched") == b"- 1 1.0"


def test_limits_on_a_redis_cluster(cluster_connection, redis_cluster):
    from geventq import SimpleWorker
    from tests.test_cluster import keys_by_node

    q = Queue("default", connection=cluster_connection)
    limit = Limit("api", concurrency=1)
    batch = [q.enqueue(jobs.add, i, 1, limit=limit) for i in range(4)]
    batch.append(q.enqueue(jobs.add, 10, 1, limit=Limit("other", rate=100)))
    SimpleWorker([q], connection=cluster_connection).work(burst=True)
    assert [j.return_value() for j in batch] == [1, 2, 3, 4, 11]
    # every limit key went to the one primary of the prefix's slot
    assert set(keys_by_node(redis_cluster)) == {redis_cluster.primary_of("{geventq}:").port}


def test_info_shows_limit_keys_with_running_and_parked_jobs(connection, redis_url):
    from click.testing import CliRunner

    from geventq.cli import main

    q = Queue("q", connection=connection)
    for _ in range(3):
        q.enqueue(jobs.noop, limit=Limit("api", concurrency=1, rate=10, per=1))
    q.enqueue(jobs.noop, limit=Limit("idle", rate=5))
    claim(connection, count=1)  # api: 1 running; a second claim parks the others
    claim(connection, count=1)
    connection.hset(KEYS.limits, "bad\x1b[31m", "garbage")  # not ours: shown, escaped
    out = CliRunner().invoke(main, ["info", "-u", redis_url]).output
    assert "3 limit key(s)" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("api "))
    assert "concurrency 1, 10 per 1 s" in line and "running=1" in line and "parked=2" in line
    assert "\x1b" not in out and "bad\\x1b[31m" in out


def test_each_queued_limited_job_is_in_exactly_one_place(connection):
    """A queued job of a limit key is in its queue, or parked under its key, or claimed:
    never two of those, never none, through claims, endings and un-parking."""
    q = Queue("q", connection=connection)
    limit = Limit("k", concurrency=2)
    batch = [q.enqueue(jobs.noop, limit=limit) for _ in range(8)]

    def places(job_id):
        found = set()
        if connection.lpos(KEYS.queue("q"), job_id) is not None:
            found.add("queue")
        if connection.lpos(KEYS.limit_parked("k"), job_id) is not None:
            found.add("parked")
        if connection.zscore(KEYS.registry("started", "q"), job_id) is not None:
            found.add("claimed")
        return found

    def check():
        for job in batch:
            status = connection.hget(job.key, "status").decode()
            where = places(job.id)
            if status == "queued":
                assert len(where) == 1, (job.id, where)
            else:
                assert "queue" not in where and "parked" not in where, (job.id, status, where)

    check()
    running = claim(connection, 3)
    check()
    while running:
        end(connection, running.pop())
        check()
        running += claim(connection, 3)
        check()
    assert all(connection.hget(j.key, "status") == b"finished" for j in batch)
