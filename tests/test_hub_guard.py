"""The hub guard of a real `geventq worker`: warnings, counters, and stopping a wedged worker."""

from __future__ import annotations

import signal

import pytest

from geventq import Queue, Worker
from geventq.defaults import EXIT_HUB_BLOCKED
from tests import jobs_cpu
from tests.helpers import wait_for


@pytest.fixture
def settings(tmp_path) -> str:
    path = tmp_path / "guard_settings.py"
    path.write_text("MAX_BLOCKING_TIME = 0.3\n")
    return str(path)


def test_cpu_job_in_a_gevent_queue_is_reported_with_its_function(queue, start_worker, settings):
    hog = queue.enqueue(jobs_cpu.spin, 1.2)
    worker = start_worker("-c", settings, "--name", "guarded1", "default")
    wait_for(lambda: hog.get_status() == "finished", 15, message="the CPU-bound job")
    record = next(w for w in Worker.all(connection=queue.connection) if w.name == "guarded1")
    assert int(queue.connection.hget(record.key, "hub_blocked") or 0) >= 1
    assert 0.3 <= float(queue.connection.hget(hog.key, "hub_blocked")) <= 1.5
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    warnings = [line for line in worker.output().splitlines() if "WARNING" in line and hog.id in line]
    assert warnings, "no warning naming the job"
    assert "tests.jobs_cpu.spin" in warnings[0] and "--fork-queue default" in warnings[0]
    assert "jobs_cpu.py" in warnings[0]  # where it was blocking


def test_job_blocking_past_its_timeout_stops_the_worker_and_requeues_the_rest(
        connection, queue, start_worker, settings):
    cpu = Queue("cpu", connection=connection)
    waiting = [queue.enqueue(jobs_cpu.window, 30) for _ in range(3)]
    forked = cpu.enqueue(jobs_cpu.spin, 30)
    worker = start_worker("-c", settings, "--name", "wedged1", "--fork-queue", "cpu",
                          "default", "cpu", "--logging-level", "WARNING")
    wait_for(lambda: all(j.get_status() == "started" for j in waiting + [forked]), 15,
             message="the jobs to start")
    hog = queue.enqueue(jobs_cpu.spin, 60, job_timeout=1)
    assert worker.wait(20) == EXIT_HUB_BLOCKED
    hog.refresh()
    assert hog.get_status() == "failed" and hog.id in queue.failed_job_registry
    assert "JobTimeoutException" in hog.exc_info
    assert "blocked the gevent hub past its timeout of 1 s" in hog.exc_info
    assert "--fork-queue default" in hog.exc_info
    for job in waiting:
        assert job.get_status() == "queued"
    assert sorted(queue.get_job_ids()) == sorted(j.id for j in waiting)
    assert forked.get_status() == "queued" and cpu.get_job_ids() == [forked.id]
    assert queue.started_job_registry.count == 0 and cpu.started_job_registry.count == 0
    assert "wedged1" not in [w.name for w in Worker.all(connection=connection)]
    assert "worker wedged1 stopped" in worker.output()
