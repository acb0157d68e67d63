"""on_success / on_failure callbacks: validation, arguments, failures that change nothing."""

from __future__ import annotations

import json

import pytest

from geventq import Callback, Job, Queue
from tests import jobs_sched


def nested_scope():
    def inner(job, connection, result):
        pass

    return inner


@pytest.mark.parametrize("option, value, message", [
    ("on_success", lambda job, conn, result: None, "on_success: a lambda cannot be"),
    ("on_failure", nested_scope(), "on_failure: .*inner is defined inside another function"),
    ("on_success", jobs_sched.Holder().method, "on_success: .*a callback must be a module-level"),
    ("on_success", "nodots", "on_success: .*dotted path"),
    ("on_failure", 42, "on_failure: .*must be callable"),
])
def test_unimportable_callbacks_are_refused_at_enqueue(queue, connection, option, value, message):
    with pytest.raises(ValueError, match=message):
        queue.enqueue(jobs_sched.add, 1, 2, **{option: value})
    assert connection.keys("*") == []


def test_callback_timeout_is_validated():
    with pytest.raises(ValueError, match="Callback timeout .*got 'abc'"):
        Callback(jobs_sched.on_success_record, timeout="abc")
    assert Callback(jobs_sched.on_success_record).timeout == 60
    assert Callback("tests.jobs_sched.on_success_record", timeout="2m").timeout == 120


def test_callbacks_are_stored_as_dotted_paths(queue, connection):
    job = queue.enqueue(jobs_sched.add, 1, 2, on_success=jobs_sched.on_success_record,
                        on_failure=Callback(jobs_sched.on_failure_record, timeout=5))
    stored = {k.decode(): v.decode() for k, v in connection.hgetall(job.key).items()
              if b"callback" in k}
    assert stored == {"success_callback": "tests.jobs_sched.on_success_record",
                      "success_callback_timeout": "60",
                      "failure_callback": "tests.jobs_sched.on_failure_record",
                      "failure_callback_timeout": "5"}


def test_success_and_failure_callbacks_receive_their_arguments(queue, connection, start_worker):
    ok = queue.enqueue(jobs_sched.add, 2, 3, on_success=jobs_sched.on_success_record,
                       on_failure=jobs_sched.on_failure_record)
    bad = queue.enqueue(jobs_sched.fail, "kaput", on_success=jobs_sched.on_success_record,
                        on_failure=Callback(jobs_sched.on_failure_record, timeout=5))
    worker = start_worker("--burst", "--logging-level", "WARNING")
    assert worker.wait(20) == 0
    assert [json.loads(x) for x in connection.lrange("cb:success", 0, -1)] == [[ok.id, 5]]
    assert [json.loads(x) for x in connection.lrange("cb:failure", 0, -1)] == [
        [bad.id, "ValueError", "kaput", True]]
    assert ok.get_status() == "finished" and bad.get_status() == "failed"


def test_raising_or_slow_callback_is_logged_and_the_status_stays(queue, start_worker):
    ok = queue.enqueue(jobs_sched.add, 2, 3, on_success=jobs_sched.raising_callback)
    bad = queue.enqueue(jobs_sched.fail, "kaput", on_failure=jobs_sched.raising_callback)
    slow = queue.enqueue(jobs_sched.add, 1, 1,
                         on_success=Callback(jobs_sched.slow_callback, timeout=1))
    worker = start_worker("--burst", "--logging-level", "WARNING")
    assert worker.wait(20) == 0
    output = worker.output()
    assert f"on_success callback tests.jobs_sched.raising_callback of job {ok.id} failed: " \
           "RuntimeError: the callback broke" in output
    assert f"on_failure callback tests.jobs_sched.raising_callback of job {bad.id} failed" in output
    assert f"on_success callback tests.jobs_sched.slow_callback of job {slow.id} failed: " \
           "JobTimeoutException" in output
    assert ok.get_status() == "finished" and ok.result == 5
    assert slow.get_status() == "finished" and slow.result == 2
    bad.refresh()
    assert bad.get_status() == "failed" and "ValueError: kaput" in bad.exc_info
    assert bad.id in queue.failed_job_registry and queue.failed_job_registry.count == 1


def test_callbacks_run_inline_when_not_async(connection):
    queue = Queue(connection=connection, is_async=False)
    job = queue.enqueue(jobs_sched.add, 4, 5, on_success=jobs_sched.on_success_record)
    assert job.result == 9
    assert json.loads(connection.lpop("cb:success")) == [job.id, 9]
    failed = queue.enqueue(jobs_sched.fail, "x", on_failure=jobs_sched.raising_callback)
    assert Job.fetch(failed.id, connection=connection).get_status() == "failed"
