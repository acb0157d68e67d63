"""How jobs end, called directly against real Redis (no worker process): one job's bad
ending stays its own problem, errors are told apart, and each transition keeps the rules.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from geventq import Job, lifecycle, recording
from geventq.endings import Ending
from geventq.exceptions import InvalidJobOperation
from geventq.redis_errors import is_transient
from tests import jobs

W = "w1"


def started(queue, count):
    """Claim and start ``count`` jobs as worker W."""
    claimed = lifecycle.claim(queue.connection, queue.keys, [queue.name], W, count)
    return lifecycle.start(queue.connection, queue.keys, W, claimed)


def in_flight(queue):
    return {i.decode() for i in queue.connection.smembers(queue.keys.worker_jobs(W))}


# -- one job's ending is its own problem ------------------------------------------------

def test_an_exc_info_with_a_lone_surrogate_is_stored_readable(queue, connection):
    job = queue.enqueue(jobs.fail)
    (run,) = started(queue, 1)
    lifecycle.end_job(connection, queue.keys, W,
                      Ending(run, "failed", "ValueError: cannot read caf\udcff.csv"))
    job.refresh()
    assert job.get_status() == "failed"
    assert job.exc_info == "ValueError: cannot read caf\\udcff.csv"


def test_an_ending_no_script_accepts_fails_its_job_alone(queue, connection):
    ids = [queue.enqueue(jobs.add, i, 1).id for i in range(6)]
    # a hostile writer: a result_ttl Redis cannot take
    connection.hset(queue.keys.job(ids[2]), "result_ttl", str(10**20))
    runs = started(queue, 6)
    recording.record_endings(connection, queue.keys, W,
                             [Ending(job, "finished", job.serializer.dumps(1)) for job in runs])
    statuses = [Job.fetch(i, connection=connection).get_status() for i in ids]
    assert statuses == ["finished"] * 2 + ["failed"] + ["finished"] * 3
    bad = Job.fetch(ids[2], connection=connection)
    assert "could not record how job" in bad.exc_info and "result_ttl" in bad.exc_info
    assert bad.exc_info.isascii()
    assert bad.id in queue.failed_job_registry and bad.id not in queue.finished_job_registry
    assert in_flight(queue) == set() and queue.started_job_registry.count == 0


def test_a_failure_that_cannot_be_recorded_either_leaves_the_worker_and_fails(queue, connection):
    good, odd, not_a_hash = (queue.enqueue(jobs.noop) for _ in range(3))
    runs = started(queue, 3)
    connection.set(queue.keys.dependents(odd.id), "not a set")  # every end script fails on it
    connection.delete(not_a_hash.key)
    connection.set(not_a_hash.key, "not a hash")
    recording.record_endings(connection, queue.keys, W,
                             [Ending(job, "failed", "boom") for job in runs])
    assert good.get_status() == "failed" and Job.fetch(good.id, connection=connection).exc_info == "boom"
    odd.refresh()
    assert odd.get_status() == "failed" and "WRONGTYPE" in odd.exc_info
    assert odd.id in queue.failed_job_registry
    assert connection.get(not_a_hash.key) == b"not a hash"
    assert in_flight(queue) == set() and queue.started_job_registry.count == 0


def test_a_hostile_retry_history_does_not_stop_the_ending(queue, connection):
    from geventq import Retry as JobRetry

    job = queue.enqueue(jobs.fail, retry=JobRetry(max=2))
    connection.hset(job.key, mapping={"exc_history": "{not json", "retries_left": "abc"})
    (run,) = started(queue, 1)
    run.extra["retries_left"] = "1"  # as loaded, before the hostile write
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "failed", "boom"))
    job.refresh()
    assert job.get_status() == "failed" and job.exc_history == ["boom"]


def test_transient_errors_are_retried_and_permanent_ones_are_not(queue, connection):
    job = queue.enqueue(jobs.add, 1, 1)
    (run,) = started(queue, 1)
    # writes refused until a replica is connected: a transient error, fixed without the job
    connection.config_set("min-replicas-to-write", 1)
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        connection.config_set("min-replicas-to-write", 0)  # the replica is back

    try:
        recording.record_until_taken(connection, queue.keys, W,
                                     [Ending(run, "finished", run.serializer.dumps(2))], sleep=sleep)
    finally:
        connection.config_set("min-replicas-to-write", 0)
    assert len(sleeps) == 1 and job.get_status() == "finished" and job.result == 2

    other = queue.enqueue(jobs.add, 1, 1)
    connection.hset(other.key, "result_ttl", "-7")
    (run,) = started(queue, 1)
    recording.record_until_taken(connection, queue.keys, W,
                                 [Ending(run, "finished", b"N.")], sleep=sleeps.append)
    assert len(sleeps) == 1  # not retried: failed at once, with the reason
    assert other.get_status() == "failed"


def test_errors_are_classified_from_real_replies(connection, redis_server):
    def error_of(*command):
        with pytest.raises(Exception) as info:
            connection.execute_command(*command)
        return info.value

    connection.set("text", "x")
    assert not is_transient(error_of("HSET", "text", "a", "1"))  # WRONGTYPE
    assert not is_transient(error_of("EXPIRE", "text", "1.5"))  # value is not an integer
    assert not is_transient(error_of("EVAL", "return redis.call('EXPIRE', 'text', 'x')", 0))
    assert not is_transient(UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates"))
    assert not is_transient(ValueError("bad"))
    connection.config_set("min-replicas-to-write", 1)
    try:
        assert is_transient(error_of("SET", "k", "v"))  # NOREPLICAS
        assert is_transient(error_of("EVAL", "return redis.call('SET', 'k', 'v')", 0))
    finally:
        connection.config_set("min-replicas-to-write", 0)
    connection.config_set("maxmemory", 1)
    try:
        assert is_transient(error_of("SET", "k", "v"))  # OOM
    finally:
        connection.config_set("maxmemory", 0)
    with pytest.raises(redis.ConnectionError) as info:  # nothing listens on port 1
        redis.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)).ping()
    assert is_transient(info.value)
    assert is_transient(redis.ResponseError("BUSY Redis is busy running a script."))
    assert is_transient(redis.ResponseError("LOADING Redis is loading the dataset in memory"))
    assert not is_transient(redis.ResponseError("BUSYKEY Target key name already exists."))


def test_a_job_that_cannot_be_put_back_is_failed_with_the_reason(queue, connection):
    job = queue.enqueue(jobs.noop)
    started(queue, 1)
    connection.set(queue.keys.dependents(job.id), "not a set")
    outcome = lifecycle.give_back(connection, queue.keys, W, job.id, "default", "abandoned",
                                  max_requeues=0)
    assert outcome == "failed"
    job.refresh()
    assert job.get_status() == "failed" and "could not put job" in job.exc_info
    assert in_flight(queue) == set() and job.id in queue.failed_job_registry


# -- canceled between claim and start, or while started ---------------------------------

def test_a_job_canceled_between_claim_and_start_never_runs(queue, connection):
    job = queue.enqueue(jobs.noop)
    claimed = lifecycle.claim(connection, queue.keys, ["default"], W, 1)
    Job.fetch(job.id, connection=connection).cancel()
    assert job.id not in queue.started_job_registry  # cancel took it out
    assert lifecycle.start(connection, queue.keys, W, claimed) == []
    assert job.get_status() == "canceled" and in_flight(queue) == set()
    assert job.id in queue.canceled_job_registry
    assert job.id not in queue.finished_job_registry and queue.job_ids == []


def test_a_candidate_canceled_before_its_claim_is_dropped_in_the_same_round_trip(queue, connection):
    first, second = queue.enqueue(jobs.noop), queue.enqueue(jobs.noop)
    peeked = lifecycle.claim_and_start(connection, queue.keys, ["default"], W, 0, peek=2).peeked
    claimed = lifecycle.claim(connection, queue.keys, ["default"], W, 1)  # takes `first`
    Job.fetch(first.id, connection=connection).cancel()
    result = lifecycle.claim_and_start(connection, queue.keys, ["default"], W, 1, peeked)
    assert claimed == [("default", first.id)]
    assert [j.id for j in result.jobs] == [second.id]
    assert first.get_status() == "canceled" and in_flight(queue) == {second.id}


def test_cancel_of_a_started_job_ends_it_and_its_run_is_not_recorded(queue, connection):
    job = queue.enqueue(jobs.noop)
    (run,) = started(queue, 1)
    pubsub = connection.pubsub()
    pubsub.subscribe(queue.keys.stop_channel())
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    Job.fetch(job.id, connection=connection).cancel()
    assert job.get_status() == "canceled" and job.id in queue.canceled_job_registry
    assert job.id not in queue.started_job_registry and in_flight(queue) == set()
    message = pubsub.get_message(timeout=2)
    assert message and message["data"] == job.id.encode()  # its worker is asked to stop it
    pubsub.close()
    # the worker's ending of the run comes later: it changes nothing
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "finished", b"N."))
    assert job.get_status() == "canceled" and job.id not in queue.finished_job_registry
    with pytest.raises(InvalidJobOperation, match="canceled"):
        job.cancel()


def test_a_replayed_ending_changes_nothing(queue, connection):
    from geventq import Retry as JobRetry

    job = queue.enqueue(jobs.noop, retry=JobRetry(max=3))
    (run,) = started(queue, 1)
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "failed", "first try"))
    assert job.get_status() == "queued" and queue.job_ids == [job.id]
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "failed", "first try"))
    assert queue.job_ids == [job.id]  # not pushed twice, no retry spent twice
    assert Job.fetch(job.id, connection=connection).retries_left == 2


# -- allow_failure dependents are released by every ending --------------------------------

def _children(queue, parent):
    from geventq import Dependency

    tolerant = queue.enqueue(jobs.noop, depends_on=Dependency([parent], allow_failure=True))
    strict = queue.enqueue(jobs.noop, depends_on=parent)
    return tolerant, strict


def _released(queue, tolerant, strict):
    assert tolerant.get_status() == "queued" and tolerant.id in queue.job_ids
    assert tolerant.id not in queue.deferred_job_registry
    assert strict.get_status() == "deferred" and strict.id in queue.deferred_job_registry
    assert strict.id not in queue.job_ids


def test_canceling_a_queued_parent_releases_allow_failure_dependents(queue, connection):
    parent = queue.enqueue(jobs.noop)
    tolerant, strict = _children(queue, parent)
    parent.cancel()
    _released(queue, tolerant, strict)


def test_canceling_a_started_parent_releases_allow_failure_dependents(queue, connection):
    parent = queue.enqueue(jobs.noop)
    tolerant, strict = _children(queue, parent)
    started(queue, 1)
    Job.fetch(parent.id, connection=connection).cancel()
    _released(queue, tolerant, strict)


def test_a_parent_failed_as_abandoned_releases_allow_failure_dependents(queue, connection):
    parent = queue.enqueue(jobs.noop)
    tolerant, strict = _children(queue, parent)
    started(queue, 1)
    connection.sadd(queue.keys.workers, W)  # a registered worker whose key has lapsed
    outcomes = lifecycle.recover_dead_workers(connection, queue.keys, max_requeues=0)
    assert outcomes == {parent.id: "failed"}
    assert "abandoned" in Job.fetch(parent.id, connection=connection).exc_info
    _released(queue, tolerant, strict)


def test_a_stopped_parent_releases_allow_failure_dependents(queue, connection):
    parent = queue.enqueue(jobs.noop)
    tolerant, strict = _children(queue, parent)
    (run,) = started(queue, 1)
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "stopped", "stopped"))
    _released(queue, tolerant, strict)


def test_a_last_resort_failure_releases_allow_failure_dependents(queue, connection):
    parent = queue.enqueue(jobs.noop)
    tolerant, strict = _children(queue, parent)
    connection.hset(parent.key, "result_ttl", str(10**20))
    (run,) = started(queue, 1)
    recording.record_endings(connection, queue.keys, W, [Ending(run, "finished", b"N.")])
    assert parent.get_status() == "failed"
    _released(queue, tolerant, strict)


# -- deferred jobs keep their options -------------------------------------------------------

def test_a_released_child_due_later_waits_in_the_scheduled_registry(queue, connection):
    parent = queue.enqueue(jobs.noop)
    later = queue.enqueue_in(3600, jobs.noop, depends_on=parent)
    due_now = queue.enqueue_at(datetime(2000, 1, 1), jobs.noop, depends_on=parent)
    assert later.get_status() == "deferred" and later.scheduled_at is not None
    assert "scheduled_at" not in Job.fetch(later.id, connection=connection).extra
    (run,) = started(queue, 1)
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "finished", b"N."))
    assert later.get_status() == "scheduled" and later.id not in queue.job_ids
    score = queue.scheduled_job_registry.get_scheduled_time(later)
    assert score == Job.fetch(later.id, connection=connection).scheduled_at
    assert later.id not in queue.deferred_job_registry
    assert due_now.get_status() == "queued" and queue.job_ids == [due_now.id]


def test_a_deferred_job_with_a_ttl_waits_for_its_dependencies_without_expiring(queue, connection):
    parent = queue.enqueue(jobs.noop)
    child = queue.enqueue(jobs.noop, depends_on=parent, ttl=30)
    assert connection.ttl(child.key) == -1  # its ttl starts when it is queued
    assert connection.exists(queue.keys.pending(child.id))
    (run,) = started(queue, 1)
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "finished", b"N."))
    assert child.get_status() == "queued" and 0 < connection.ttl(child.key) <= 30
    assert connection.zscore(queue.keys.expiring("default"), child.id) is not None
    assert not connection.exists(queue.keys.pending(child.id))


def test_a_canceled_deferred_job_leaves_nothing_behind(queue, connection):
    parent = queue.enqueue(jobs.noop)
    child = queue.enqueue(jobs.noop, depends_on=parent)
    child.cancel()
    assert not connection.exists(queue.keys.pending(child.id))
    assert child.id not in queue.deferred_job_registry
    (run,) = started(queue, 1)
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "finished", b"N."))
    assert child.get_status() == "canceled" and queue.job_ids == []
    assert not connection.exists(queue.keys.dependents(parent.id))


def test_a_child_whose_hash_is_gone_leaves_the_deferred_registry_at_release(queue, connection):
    parent = queue.enqueue(jobs.noop)
    child = queue.enqueue(jobs.noop, depends_on=parent)
    connection.delete(child.key)  # a hostile writer, or an old version's expiry
    (run,) = started(queue, 1)
    lifecycle.end_job(connection, queue.keys, W, Ending(run, "finished", b"N."))
    assert child.id not in queue.deferred_job_registry and queue.job_ids == []


# -- geventq stop before a job's greenlet first ran --------------------------------------

def test_a_job_stopped_before_its_greenlet_ran_ends_stopped_without_running(queue, connection):
    import gevent

    from geventq.green.worker import GeventWorker
    from tests import jobs_endings

    worker = GeventWorker(["default"], connection=connection, name="early")
    job = queue.enqueue(jobs_endings.counted_sleep, 0)
    claimed = lifecycle.claim(connection, queue.keys, ["default"], "early", 1)
    worker.loop.submit(lifecycle.start(connection, queue.keys, "early", claimed))  # not run yet
    assert list(worker.running()) == [job.id]
    assert worker.stop_job(job.id)
    with gevent.Timeout(5):
        while worker.running():
            gevent.sleep(0.001)
    assert worker.loop.slot_free.is_set()  # its slot came free
    assert [(e.job.id, e.outcome) for e in worker.finisher.pending()] == [(job.id, "stopped")]
    assert jobs_endings.runs(connection, job.id) == 0
    assert not worker.stop_job(job.id)  # it runs here no more
    gevent.sleep(0)


def test_an_inline_job_failing_with_unencodable_text_is_stored(connection):
    from geventq import Queue
    from tests import jobs_endings

    inline = Queue("inline", connection=connection, is_async=False)
    job = inline.enqueue(jobs_endings.raise_surrogate)
    assert job.get_status() == "failed" and "caf\\udcff.csv" in job.exc_info


def test_a_stop_heard_between_the_claim_and_the_executor_is_not_lost(queue, connection):
    # the stop listener may hear `geventq stop` after the claim started the job and before
    # the loop handed it to an executor: the stop is kept, and the job ends `stopped`
    # without running, its ending written like any other
    import gevent

    from geventq.control import send_stop_job_command
    from geventq.green.worker import GeventWorker
    from tests import jobs_endings

    worker = GeventWorker(["default"], connection=connection, name="between")
    job = queue.enqueue(jobs_endings.counted_sleep, 0)
    claimed = lifecycle.claim(connection, queue.keys, ["default"], "between", 1)
    jobs_started = lifecycle.start(connection, queue.keys, "between", claimed)
    send_stop_job_command(connection, job.id)  # the job is `started` in Redis: accepted
    assert not worker.stop_job(job.id)  # what the listener does with it: not running here yet
    worker.loop.submit(jobs_started)
    assert worker.running() == {}  # never given to the executor
    assert [(e.job.id, e.outcome) for e in worker.finisher.pending()] == [(job.id, "stopped")]
    worker.finisher.write(worker.finisher.pending())
    job.refresh()
    assert job.get_status() == "stopped" and jobs_endings.runs(connection, job.id) == 0
    gevent.sleep(0)


def test_a_kept_stop_expires_and_is_taken_once():
    from geventq.worker.executors import EarlyStops

    now = [0.0]
    stops = EarlyStops(memory=30, limit=2, clock=lambda: now[0])
    stops.remember("a")
    assert stops.take("a") and not stops.take("a")  # once
    for job_id in ("b", "c", "d"):
        stops.remember(job_id)
    assert not stops.take("b") and stops.take("c")  # the oldest went past the limit
    now[0] = 30.0
    assert not stops.take("d")  # expired


def test_the_stop_listener_is_subscribed_before_the_first_claim(queue, connection):
    # the worker's services start before its loop claims anything: a stop published
    # before the listening greenlet first ran is still heard (it was lost under load)
    from geventq.green.worker import GeventWorker

    worker = GeventWorker(["default"], connection=connection, name="subscribed")
    worker.stop_listener.start()
    try:
        assert connection.publish(queue.keys.stop_channel(), "early-id") == 1
        assert worker.stop_listener.poll(timeout=5) == 1
        assert "early-id" in worker.loop.early_stops  # not running here: kept
    finally:
        worker.stop_listener.close()


def test_job_log_lines_go_out_as_one_record_when_due(queue, caplog):
    # one line per ended job, gathered: a record every `interval` s or `limit` lines
    import logging

    from geventq.worker.joblog import JobLog

    now = [0.0]
    log = JobLog(interval=0.1, limit=3, clock=lambda: now[0])
    ok, bad = queue.enqueue(jobs.noop), queue.enqueue(jobs.noop)
    endings = [Ending(ok, "finished", b"N.", extra={"duration": "0.0012"}),
               Ending(bad, "failed", "Traceback...\nValueError: boom\n",
                      extra={"duration": "0.5"})]
    with caplog.at_level(logging.INFO, logger="geventq.jobs"):
        log.add(endings)
        assert not log.due() and log.wait_time() == 0.1
        now[0] = 0.1
        assert log.due()
        log.flush()
        log.add(endings + endings[:1])  # the limit
        assert log.due()
    assert [r.getMessage() for r in caplog.records][0].splitlines() == [
        f"job {ok.id} tests.jobs.noop finished in 0.001 s",
        f"job {bad.id} tests.jobs.noop failed after 0.500 s: ValueError: boom"]
    with caplog.at_level(logging.WARNING, logger="geventq.jobs"):
        log.flush()
        log.add(endings)  # nothing is gathered below INFO
        assert log.wait_time() is None
