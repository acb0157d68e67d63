"""Retry: validation, storage, the atomic retry-or-fail decision, intervals, abandoned jobs."""

from __future__ import annotations

import pytest

from geventq import Job, Queue, Retry, SimpleWorker, lifecycle
from geventq.decorators import job as job_decorator
from geventq.retry import next_delay
from tests import jobs_sched
from tests.helpers import wait_for

QUIET = ["--logging-level", "WARNING"]


@pytest.mark.parametrize("kwargs, message", [
    ({"max": 0}, "max=...\\) must be a positive integer \\(at most 2147483647\\), got 0"),
    ({"max": "3"}, "got '3'"),
    ({"interval": -1}, "got -1"),
    ({"interval": []}, "needs at least one value"),
    ({"interval": [10, "x"]}, "got 'x'"),
    ({"interval": [1, 2], "backoff": True}, "backoff=True\\) needs one positive interval"),
])
def test_bad_retry_values_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Retry(**kwargs)


def test_retry_option_must_be_a_retry_and_nothing_is_written(queue, connection):
    with pytest.raises(ValueError, match="retry= takes a Retry.*got 3"):
        queue.enqueue(jobs_sched.add, 1, 2, retry=3)
    assert connection.keys("*") == []


def test_retry_fields_are_stored_only_when_given(queue, connection):
    plain = queue.enqueue(jobs_sched.add, 1, 2)
    assert plain.retries_left is None
    assert not any(k.startswith(b"retr") for k in connection.hkeys(plain.key))
    retried = queue.enqueue(jobs_sched.add, 1, 2, retry=Retry(max=3, interval=[10, 30, 60]))
    fetched = Job.fetch(retried.id, connection=connection)
    assert fetched.retries_left == 3 and fetched.exc_history == []
    # @job and prepare_data/enqueue_many take it too
    delayed = job_decorator("default", connection=connection, retry=Retry(max=2))(jobs_sched.flaky)
    assert delayed.delay("k", 0).retries_left == 2
    [many] = queue.enqueue_many([Queue.prepare_data(jobs_sched.add, (1, 2), retry=Retry(max=4))])
    assert Job.fetch(many.id, connection=connection).retries_left == 4


def test_immediate_retries_then_failure_keeps_every_exc_info(queue, connection):
    job = queue.enqueue(jobs_sched.fail_and_record, "tries", retry=Retry(max=2))
    SimpleWorker([queue], connection=connection).work(burst=True)
    job.refresh()
    assert job.get_status() == "failed" and job.retries_left == 0
    assert connection.llen("tries") == 3
    assert [h.strip().splitlines()[-1] for h in job.exc_history] == [
        f"ValueError: try {n} failed" for n in (1, 2, 3)]
    assert job.exc_info == job.exc_history[-1]
    assert job.id in queue.failed_job_registry
    assert queue.started_job_registry.count == 0 and queue.count == 0


def test_job_that_succeeds_on_a_retry_never_enters_the_failed_registry(queue, connection):
    parent = queue.enqueue(jobs_sched.flaky, "calls", 1, retry=Retry(max=1))
    child = queue.enqueue(jobs_sched.add, 1, 2, depends_on=parent)
    worker = SimpleWorker([queue], connection=connection)
    worker.work(burst=True)
    parent.refresh()
    assert parent.get_status() == "finished" and parent.result == 2
    assert parent.retries_left == 0 and len(parent.exc_history) == 1
    assert queue.failed_job_registry.count == 0
    assert child.get_status() == "finished"  # released once, by the successful try


def test_retry_intervals_measured_from_job_timestamps(queue, connection, start_worker):
    start_worker("--with-scheduler", *QUIET)
    job = queue.enqueue(jobs_sched.fail_and_record, "tries", retry=Retry(max=2, interval=[1, 2]))
    # between tries the job waits in the scheduled registry, not the failed one
    wait_for(lambda: job.get_status() == "scheduled", timeout=10, message="first retry scheduled")
    assert job.id in queue.scheduled_job_registry and job.id not in queue.failed_job_registry
    wait_for(lambda: job.get_status() == "failed", timeout=15, message="final failure")
    starts = [float(t) for t in connection.lrange("tries", 0, -1)]
    assert len(starts) == 3
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert 1.0 <= gaps[0] < 2.5, gaps
    assert 2.0 <= gaps[1] < 3.5, gaps
    job.refresh()
    assert len(job.exc_history) == 3 and job.id in queue.failed_job_registry


def test_exponential_backoff_doubles_with_jitter_up_to_the_cap():
    fields = Retry(max=5, interval=1, backoff=True, max_interval=4).fields()
    for done, (low, high) in enumerate([(0.5, 1), (1, 2), (2, 4), (2, 4), (2, 4)]):
        extra = dict(fields, retries_left=str(5 - done))
        assert all(low <= next_delay(extra) <= high for _ in range(20))
    assert next_delay(dict(fields, retries_left="0")) == 0


def test_abandoned_job_spends_a_retry_before_failing(queue, connection):
    job = queue.enqueue(jobs_sched.add, 1, 2, retry=Retry(max=1))
    keys = queue.keys
    for expected in ("queued", "failed"):
        claimed = lifecycle.claim(connection, keys, ["default"], "w1", 1)
        lifecycle.start(connection, keys, "w1", claimed)
        outcome = lifecycle.requeue_started(connection, keys, "w1", job.id, "default",
                                            reason="worker died", max_requeues=0)
        assert outcome == expected
    job.refresh()
    assert job.retries_left == 0 and job.exc_history == ["worker died", "worker died"]
    assert job.id in queue.failed_job_registry
