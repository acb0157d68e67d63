"""The worker's state transitions, called directly (no worker process)."""

from __future__ import annotations

import pytest

from geventq import Job, Queue, lifecycle
from geventq.lifecycle import Ending
from tests import jobs

W = "w1"


def claim_one(queue, names=None):
    claimed = lifecycle.claim(queue.connection, queue.keys, names or [queue.name], W, 1)
    return lifecycle.start(queue.connection, queue.keys, W, claimed)


def test_claim_moves_job_to_started_and_in_flight_atomically(queue, connection):
    job = queue.enqueue(jobs.add, 1, 2)
    claimed = lifecycle.claim(connection, queue.keys, ["default"], W, 10)
    assert claimed == [("default", job.id)]
    assert queue.job_ids == []
    assert job.id in queue.started_job_registry
    assert connection.smembers(queue.keys.worker_jobs(W)) == {job.id.encode()}
    (started,) = lifecycle.start(connection, queue.keys, W, claimed)
    assert started.get_status() == "started" and started.worker_name == W
    assert started.started_at is not None and started.args == (1, 2)


def test_claim_respects_priority_and_count(connection):
    low, high = Queue("low", connection=connection), Queue("high", connection=connection)
    low_ids = [low.enqueue(jobs.noop).id for _ in range(3)]
    high_ids = [high.enqueue(jobs.noop).id for _ in range(2)]
    claimed = lifecycle.claim(connection, high.keys, ["high", "low"], W, 3)
    assert claimed == [("high", high_ids[0]), ("high", high_ids[1]), ("low", low_ids[0])]


def test_claim_peeks_at_the_next_jobs_in_priority_order(connection):
    low, high = Queue("low", connection=connection), Queue("high", connection=connection)
    high_ids = [high.enqueue(jobs.noop).id for _ in range(2)]
    low_ids = [low.enqueue(jobs.noop).id for _ in range(3)]
    result = lifecycle.claim_and_start(connection, high.keys, ["high", "low"], W, 1, peek=3)
    assert [j.id for j in result.jobs] == [high_ids[0]]
    assert result.peeked == [("high", high_ids[1]), ("low", low_ids[0]), ("low", low_ids[1])]
    # a peek is a read: the peeked jobs are still queued, in no worker's hands
    assert high.job_ids == high_ids[1:] and low.job_ids == low_ids
    assert connection.smembers(high.keys.worker_jobs(W)) == {high_ids[0].encode()}


def test_claim_starts_its_candidates_in_one_round_trip(queue, connection, monkeypatch):
    ids = [queue.enqueue(jobs.add, i, 1).id for i in range(4)]
    first = lifecycle.claim_and_start(connection, queue.keys, ["default"], W, 1, peek=2)
    sends = []
    real_send = lifecycle.scripts.send
    monkeypatch.setattr(lifecycle.scripts, "send",
                        lambda client, commands: sends.append(1) or real_send(client, commands))
    second = lifecycle.claim_and_start(connection, queue.keys, ["default"], W, 2,
                                       first.peeked, peek=2)
    assert len(sends) == 1
    assert [j.id for j in second.jobs] == ids[1:3]
    assert [j.args for j in second.jobs] == [(1, 1), (2, 1)]
    assert all(j.get_status() == "started" for j in second.jobs)
    assert second.peeked == [("default", ids[3])]


def test_stale_candidates_are_left_to_the_worker_that_claimed_them(queue, connection):
    ids = [queue.enqueue(jobs.noop).id for _ in range(3)]
    peek = lifecycle.claim_and_start(connection, queue.keys, ["default"], W, 0, peek=2).peeked
    assert peek == [("default", ids[0]), ("default", ids[1])]
    # another worker claims the peeked jobs first
    theirs = lifecycle.claim(connection, queue.keys, ["default"], "w2", 2)
    ours = lifecycle.claim_and_start(connection, queue.keys, ["default"], W, 2, peek)
    assert [j.id for j in ours.jobs] == [ids[2]]
    assert ours.jobs[0].get_status() == "started"
    # the other worker's claimed jobs are untouched: claimed by it, not yet started
    for _, job_id in theirs:
        assert Job.fetch(job_id, connection=connection).get_status() == "queued"
    assert connection.smembers(queue.keys.worker_jobs("w2")) == {i.encode() for i in ids[:2]}


def test_claim_keeps_wake_tokens_true(connection):
    q = Queue("default", connection=connection)
    q.enqueue(jobs.noop)
    q.enqueue(jobs.noop)
    wake = q.keys.wake("default")
    assert connection.llen(wake) == 1
    lifecycle.claim(connection, q.keys, ["default"], W, 1)
    assert connection.llen(wake) == 1  # one job still queued
    lifecycle.claim(connection, q.keys, ["default"], W, 1)
    assert connection.llen(wake) == 0


def test_claim_skips_job_whose_ttl_ran_out(queue, connection):
    job = queue.enqueue(jobs.noop, ttl=100)
    connection.delete(job.key)  # as if its ttl had run out
    claimed = lifecycle.claim(connection, queue.keys, ["default"], W, 1)
    assert lifecycle.start(connection, queue.keys, W, claimed) == []
    assert job.id not in queue.started_job_registry
    assert connection.scard(queue.keys.worker_jobs(W)) == 0


def test_finish_stores_result_and_releases_dependents_once(queue, connection):
    parent = queue.enqueue(jobs.add, 1, 2)
    child = queue.enqueue(jobs.noop, depends_on=parent)
    (started,) = claim_one(queue)
    lifecycle.end_job(connection, queue.keys, W, Ending(started, "finished", started.serializer.dumps(3)))
    assert parent.get_status() == "finished" and parent.result == 3
    assert parent.id in queue.finished_job_registry
    assert parent.id not in queue.started_job_registry
    assert 0 < connection.ttl(parent.key) <= 500
    assert child.get_status() == "queued" and queue.job_ids == [child.id]
    assert child.id not in queue.deferred_job_registry
    # a second (replayed) ending must not enqueue the child twice
    lifecycle.end_job(connection, queue.keys, W, Ending(started, "finished", started.serializer.dumps(3)))
    assert queue.job_ids == [child.id]


def test_child_of_two_parents_waits_for_both(queue, connection):
    a, b = queue.enqueue(jobs.noop), queue.enqueue(jobs.noop)
    child = queue.enqueue(jobs.noop, depends_on=[a, b])
    first, second = lifecycle.start(connection, queue.keys, W,
                                    lifecycle.claim(connection, queue.keys, ["default"], W, 2))
    lifecycle.end_job(connection, queue.keys, W, Ending(first, "finished", b"N."))
    assert child.get_status() == "deferred"
    lifecycle.end_job(connection, queue.keys, W, Ending(second, "finished", b"N."))
    assert child.get_status() == "queued" and queue.job_ids == [child.id]


def test_fail_keeps_traceback_and_leaves_dependents_deferred(queue, connection):
    parent = queue.enqueue(jobs.fail)
    child = queue.enqueue(jobs.noop, depends_on=parent)
    (started,) = claim_one(queue)
    lifecycle.end_job(connection, queue.keys, W, Ending(started, "failed", "Traceback: boom"))
    parent.refresh()
    assert parent.get_status() == "failed" and parent.exc_info == "Traceback: boom"
    assert parent.id in queue.failed_job_registry
    assert child.get_status() == "deferred"
    # requeued and then finished, the parent releases the child after all
    queue.failed_job_registry.requeue(parent)
    (again,) = claim_one(queue)
    lifecycle.end_job(connection, queue.keys, W, Ending(again, "finished", b"N."))
    assert child.get_status() == "queued"


def test_result_ttl_zero_deletes_and_minus_one_keeps(queue, connection):
    gone = queue.enqueue(jobs.noop, result_ttl=0)
    kept = queue.enqueue(jobs.noop, result_ttl=-1)
    first, second = lifecycle.start(connection, queue.keys, W,
                                    lifecycle.claim(connection, queue.keys, ["default"], W, 2))
    lifecycle.end_jobs(connection, queue.keys, W, [Ending(first, "finished", b"N."),
                                                   Ending(second, "finished", b"N.")])
    assert not connection.exists(gone.key)
    assert connection.ttl(kept.key) == -1 and kept.get_status() == "finished"


def test_requeue_started_then_fail_past_limit(queue, connection):
    job = queue.enqueue(jobs.noop)
    claim_one(queue)
    assert lifecycle.requeue_started(connection, queue.keys, W, job.id, "default", "why",
                                     max_requeues=1) == "queued"
    assert queue.job_ids == [job.id] and job.get_status() == "queued"
    claim_one(queue)
    assert lifecycle.requeue_started(connection, queue.keys, W, job.id, "default", "gave up",
                                     max_requeues=1) == "failed"
    job.refresh()
    assert job.get_status() == "failed" and job.exc_info == "gave up"
    assert job.id in queue.failed_job_registry and queue.job_ids == []
    # a second recoverer finds nothing to do
    assert lifecycle.requeue_started(connection, queue.keys, W, job.id, "default", "x") == "gone"


def test_recover_worker_requeues_its_jobs_and_forgets_it(queue, connection):
    jobs_ = [queue.enqueue(jobs.noop) for _ in range(3)]
    connection.sadd(queue.keys.workers, W)
    lifecycle.start(connection, queue.keys, W,
                    lifecycle.claim(connection, queue.keys, ["default"], W, 3))
    assert lifecycle.dead_workers(connection, queue.keys) == [W]
    outcomes = lifecycle.recover_dead_workers(connection, queue.keys)
    assert outcomes == {j.id: "queued" for j in jobs_}
    assert sorted(queue.job_ids) == sorted(j.id for j in jobs_)
    assert lifecycle.dead_workers(connection, queue.keys) == []


def test_wait_returns_result_or_raises(queue, connection):
    from geventq.exceptions import JobFailed

    ok, bad = queue.enqueue(jobs.noop), queue.enqueue(jobs.fail)
    first, second = lifecycle.start(connection, queue.keys, W,
                                    lifecycle.claim(connection, queue.keys, ["default"], W, 2))
    with pytest.raises(TimeoutError):
        ok.wait(timeout=0.05)
    lifecycle.end_jobs(connection, queue.keys, W, [Ending(first, "finished", first.serializer.dumps(7)),
                                                   Ending(second, "failed", "ValueError: boom")])
    assert ok.wait(timeout=1) == 7
    with pytest.raises(JobFailed, match="boom"):
        bad.wait(timeout=1)


def test_cold_shutdown_requeues_jobs_whose_greenlets_never_ran(queue, connection):
    from geventq.green.worker import GeventWorker

    worker = GeventWorker(["default"], connection=connection, name="cold")
    queued = [queue.enqueue(jobs.noop) for _ in range(3)]
    claimed = lifecycle.claim(connection, queue.keys, ["default"], "cold", 3)
    worker.loop.submit(lifecycle.start(connection, queue.keys, "cold", claimed))  # not run yet
    worker.request_stop(cold=True)
    worker.loop.drain()
    assert sorted(queue.job_ids) == sorted(j.id for j in queued)
    assert queue.started_job_registry.count == 0 and worker.running() == {}
