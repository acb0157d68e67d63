"""How jobs end, with real `geventq worker` processes: a job whose ending cannot be
written, a job hash a hostile writer made, `geventq stop` at the wrong moment, and
`cancel()` of a running job never stop a worker, run a job twice or leak its slot.
"""

from __future__ import annotations

import signal

import pytest

from geventq import Dependency, Job, Queue, Retry
from geventq.control import send_stop_job_command
from geventq.defaults import EXIT_HUB_BLOCKED
from tests import jobs, jobs_cpu, jobs_endings
from tests.helpers import wait_for

QUIET = ["--logging-level", "WARNING"]
WORKERS = ["GeventWorker", "SimpleWorker"]


def listening(connection, keys) -> None:
    """Wait until a worker listens for stop requests (it subscribes once it runs)."""
    channel = keys.stop_channel()
    wait_for(lambda: connection.pubsub_numsub(channel)[0][1] >= 1, 10,
             message="the worker to listen for stop requests")


def settings(tmp_path, **values) -> str:
    path = tmp_path / "endings_settings.py"
    path.write_text("".join(f"{name} = {value!r}\n" for name, value in values.items()))
    return str(path)


@pytest.mark.parametrize("worker_class", WORKERS)
def test_a_job_failing_with_unencodable_text_ends_failed_and_the_worker_goes_on(
        queue, connection, start_worker, worker_class):
    poisoned = queue.enqueue(jobs_endings.raise_surrogate)
    after = [queue.enqueue(jobs.add, i, 1) for i in range(20)]
    worker = start_worker("-w", worker_class, *QUIET)
    wait_for(lambda: all(j.get_status() == "finished" for j in after), 20,
             message="the jobs after the poisoned one")
    # the jobs run side by side: the poisoned one's ending may be written after theirs
    wait_for(lambda: poisoned.get_status() == "failed", 10, message="the poisoned job failed")
    poisoned.refresh()
    assert poisoned.id in queue.failed_job_registry
    assert "cannot read /data/caf\\udcff.csv" in poisoned.exc_info  # readable, escaped
    assert [j.result for j in after] == [i + 1 for i in range(20)]
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0  # a warm stop is prompt: nothing is left unwritten
    assert jobs_endings.runs(connection, poisoned.id) == 1


@pytest.mark.parametrize("worker_class", WORKERS)
def test_a_job_hash_a_hostile_writer_made_fails_that_job_alone(queue, connection, start_worker,
                                                              worker_class):
    bad = {
        "result_ttl 1.5": queue.enqueue(jobs.add, 1, 1),
        "result_ttl abc": queue.enqueue(jobs.add, 1, 1),
        "result_ttl huge": queue.enqueue(jobs.add, 1, 1),
        "failure_ttl negative": queue.enqueue(jobs.fail),
        "retries_left abc": queue.enqueue(jobs.fail, retry=Retry(max=2)),
    }
    key = queue.keys.job
    connection.hset(key(bad["result_ttl 1.5"].id), "result_ttl", "1.5")
    connection.hset(key(bad["result_ttl abc"].id), "result_ttl", "abc")
    connection.hset(key(bad["result_ttl huge"].id), "result_ttl", str(10**20))
    connection.hset(key(bad["failure_ttl negative"].id), "failure_ttl", "-5")
    connection.hset(key(bad["retries_left abc"].id), "retries_left", "abc")
    good = queue.enqueue(jobs.add, 20, 22)
    worker = start_worker("--burst", "-w", worker_class, *QUIET)
    assert worker.wait(30) == 0
    output = worker.output()
    assert good.result == 42, output
    expected = {
        "result_ttl 1.5": "invalid literal for int() with base 10: '1.5'",
        "result_ttl abc": "invalid literal for int() with base 10: 'abc'",
        "result_ttl huge": f"result_ttl of job {bad['result_ttl huge'].id} is {10**20}",
        "failure_ttl negative": "failure_ttl of job",
        "retries_left abc": "invalid literal for int() with base 10: 'abc'",
    }
    for case, job in bad.items():
        status, exc_info = connection.hmget(job.key, "status", "exc_info")  # (refresh() refuses
        assert status == b"failed", (case, output)                          # such a hash)
        assert expected[case] in exc_info.decode(), (case, exc_info)
        assert job.id in queue.failed_job_registry, case
    assert queue.started_job_registry.count == 0


def test_stop_while_exception_handlers_run_does_not_run_the_job_again(
        tmp_path, queue, connection, start_worker):
    job = queue.enqueue(jobs_endings.fail_once_counted)
    config = settings(tmp_path, HEARTBEAT_INTERVAL=1)
    worker = start_worker("-c", config, "--name", "handlers1", "--exception-handler",
                          "tests.jobs_endings.slow_handler", *QUIET)
    wait_for(lambda: connection.lrange(jobs_endings.IN_HANDLER, 0, -1) == [job.id.encode()], 10,
             message="the exception handler to run")
    listening(connection, queue.keys)
    send_stop_job_command(connection, job.id)
    wait_for(lambda: job.get_status() == "failed", 10, message="the job to end")
    assert "the job failed" in Job.fetch(job.id, connection=connection).exc_info
    in_flight = queue.keys.worker_jobs("handlers1")
    assert connection.scard(in_flight) == 0  # nothing left for the self-check to run again
    # two more heartbeats: the worker's loop (and its self-check) went on meanwhile
    record = queue.keys.worker("handlers1")
    for _ in range(2):
        beat = connection.hget(record, "heartbeat")
        wait_for(lambda last=beat: connection.hget(record, "heartbeat") != last, 5,
                 message="a heartbeat")
    assert jobs_endings.runs(connection, job.id) == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_cancel_of_a_running_job_stops_it_and_frees_its_slot(queue, connection, start_worker):
    running = queue.enqueue(jobs_endings.counted_sleep, 30)
    after = queue.enqueue(jobs.add, 1, 1)
    worker = start_worker("-n", "1", *QUIET)
    wait_for(lambda: running.get_status() == "started", 10, message="the job to start")
    listening(connection, queue.keys)
    running.cancel()
    assert running.get_status() == "canceled"
    assert after.wait(timeout=10) == 2  # the slot came free: the run was stopped
    assert running.get_status() == "canceled" and running.id in queue.canceled_job_registry
    assert running.id not in queue.failed_job_registry
    assert queue.started_job_registry.count == 0
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_cancel_of_a_job_a_simple_worker_runs_discards_its_outcome(queue, connection,
                                                                   start_worker):
    running = queue.enqueue(jobs_endings.counted_sleep, 1)
    after = queue.enqueue(jobs.add, 1, 1)
    worker = start_worker("-w", "SimpleWorker", *QUIET)
    wait_for(lambda: running.get_status() == "started", 10, message="the job to start")
    running.cancel()
    assert after.wait(timeout=10) == 2
    assert running.get_status() == "canceled" and running.id not in queue.finished_job_registry
    assert jobs_endings.runs(connection, running.id) == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0


def test_a_fork_job_stopped_while_it_runs_ends_stopped_and_frees_its_slot(
        connection, start_worker):
    cpu = Queue("cpu", connection=connection)
    stopped = cpu.enqueue(jobs_cpu.spin, 60)
    after = cpu.enqueue(jobs.add, 2, 2)
    worker = start_worker("--fork-queue", "cpu", "--fork-concurrency", "1", "cpu", *QUIET)
    wait_for(lambda: stopped.get_status() == "started", 15, message="the fork job to start")
    listening(connection, cpu.keys)
    send_stop_job_command(connection, stopped.id)
    wait_for(lambda: stopped.get_status() == "stopped", 10, message="the fork job to stop")
    assert after.wait(timeout=15) == 4
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_a_job_the_hub_guard_fails_releases_its_allow_failure_dependents(
        tmp_path, queue, connection, start_worker):
    hog = queue.enqueue(jobs_cpu.spin, 60, job_timeout=1)
    tolerant = queue.enqueue(jobs.noop, depends_on=Dependency([hog], allow_failure=True))
    strict = queue.enqueue(jobs.noop, depends_on=hog)
    worker = start_worker("-c", settings(tmp_path, MAX_BLOCKING_TIME=0.3), *QUIET)
    assert worker.wait(20) == EXIT_HUB_BLOCKED
    assert hog.get_status() == "failed"
    assert tolerant.get_status() == "queued" and queue.job_ids == [tolerant.id]
    assert strict.get_status() == "deferred"


@pytest.mark.parametrize("worker_class", WORKERS)
def test_a_claim_error_retrying_cannot_fix_is_logged_and_the_worker_goes_on(
        queue, connection, start_worker, worker_class):
    connection.set(queue.keys.queue("broken"), "not a list")  # a hostile writer
    worker = start_worker("-w", worker_class, "broken", *QUIET)
    worker.wait_for_output("error while", timeout=15)
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    output = worker.output()
    assert "WRONGTYPE" in output and "Redis unavailable" not in output, output
