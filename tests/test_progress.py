"""Job progress and events (API section 9), against real Redis and real worker processes."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest

from geventq import Queue, Retry, SimpleWorker, lifecycle
from geventq.exceptions import NoSuchJobError
from tests.helpers import wait_for


def _kinds(events):
    return [(e["event"], e.get("percent")) for e in events]


@pytest.mark.timeout(60)
def test_a_listener_gets_each_progress_as_it_comes_then_the_end(connection, redis_url,
                                                                start_worker):
    q = Queue("p", connection=connection)
    gate = "test:gate"
    job = q.enqueue("tests.jobs_progress.steps", [10, 60, 100], gate, redis_url)
    worker = start_worker("p")
    wait_for(lambda: job.get_status() == "started", timeout=20, message="the job to start")
    events = job.events(timeout=30)
    delays, seen = [], []
    for _ in range(3):
        sent = time.monotonic()
        connection.rpush(gate, 1)
        seen.append(next(events))
        delays.append(time.monotonic() - sent)
    seen += list(events)
    assert _kinds(seen) == [("progress", 10.0), ("progress", 60.0), ("progress", 100.0),
                            ("finished", None)]
    assert seen[1]["message"] == "step 60" and isinstance(seen[1]["at"], datetime)
    assert isinstance(seen[-1]["at"], datetime)
    # pushed by the stream, not found by the once-a-second status check
    assert max(delays) < 0.5, delays
    assert job.progress["percent"] == 100.0 and job.progress["message"] == "step 100"
    worker.kill()


def test_a_late_listener_gets_the_latest_progress_and_the_end(connection):
    q = Queue("late", connection=connection)
    job = q.enqueue("tests.jobs_progress.steps", [30, 70])
    SimpleWorker([q], connection=connection).work(burst=True)
    assert _kinds(job.events(timeout=5)) == [("progress", 70.0), ("finished", None)]
    # the stream gone (its ttl after the end ran out): the hash still tells both
    assert 0 < connection.ttl(q.keys.events(job.id)) <= 300
    connection.delete(q.keys.events(job.id))
    assert _kinds(job.events(timeout=5)) == [("progress", 70.0), ("finished", None)]


def test_the_end_event_survives_a_job_whose_hash_is_deleted_at_its_end(connection, redis_url,
                                                                      start_worker):
    q = Queue("ttl0", connection=connection)
    gate = "test:gate0"
    job = q.enqueue("tests.jobs_progress.steps", [50], gate, redis_url, result_ttl=0)
    start_worker("ttl0")
    wait_for(lambda: job.get_status() == "started", timeout=20, message="the job to start")
    events = job.events(timeout=30)
    connection.rpush(gate, 1)
    assert _kinds(events) == [("progress", 50.0), ("finished", None)]
    assert not connection.exists(job.key)
    assert _kinds(job.events(timeout=5)) == [("progress", 50.0), ("finished", None)]


def test_failed_and_retried_jobs(connection, redis_url):
    q = Queue("f", connection=connection)
    failed = q.enqueue("tests.jobs_progress.steps", [20], fail=True)
    flaky = q.enqueue("tests.jobs_progress.flaky", "test:tries", redis_url, retry=Retry(max=1))
    # listening from the start (the stream exists), so end.lua's own event is what ends it
    listening = flaky.events(timeout=30)
    SimpleWorker([q], connection=connection).work(burst=True)
    assert _kinds(failed.events(timeout=5)) == [("progress", 20.0), ("failed", None)]
    # the first try's failure is no end: the retry's progress and its end follow
    assert _kinds(listening) == [("progress", 50.0), ("progress", 100.0), ("finished", None)]


def test_a_canceled_job_ends_its_listeners(connection):
    q = Queue("c", connection=connection)
    job = q.enqueue("tests.jobs.noop")
    events = job.events(timeout=10)
    canceler = threading.Timer(0.2, job.cancel)
    canceler.start()
    started = time.monotonic()
    try:
        assert _kinds(events) == [("canceled", None)]
    finally:
        canceler.join(5)
    assert time.monotonic() - started < 5  # found by the status check of a silent second


def test_a_listener_times_out_and_unknown_jobs_raise(connection):
    q = Queue("t", connection=connection)
    job = q.enqueue("tests.jobs.noop")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        list(job.events(timeout=0.3))
    assert time.monotonic() - started < 2
    job.delete()
    with pytest.raises(NoSuchJobError):
        list(job.events(timeout=1))


def test_set_progress_checks_its_arguments_and_the_status(connection):
    q = Queue("v", connection=connection)
    job = q.enqueue("tests.jobs.noop")
    assert job.progress is None
    for bad in (101, -1, float("nan"), True, "50", None):
        with pytest.raises(ValueError, match="percent must be a number from 0 to 100"):
            job.set_progress(bad)
    with pytest.raises(TypeError, match="message must be a str or None, got int"):
        job.set_progress(5, 5)
    assert job.set_progress(5) is False  # queued, not running: nothing is written
    assert job.progress is None and not connection.exists(q.keys.events(job.id))
    lifecycle.claim_and_start(connection, q.keys, ["v"], "progress-test", 1)
    assert job.set_progress(42.5) is True
    assert job.progress["percent"] == 42.5 and job.progress["message"] is None
    connection.delete(q.keys.events(job.id))
    connection.set(q.keys.events(job.id), "not a stream")  # a hostile writer: nothing half-done
    with pytest.raises(Exception, match="not a stream"):
        job.set_progress(50)
    assert job.progress["percent"] == 42.5
