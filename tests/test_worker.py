"""GeventWorker and `geventq worker`, as real processes against the real Redis."""

from __future__ import annotations

import re
import signal
import time

import pytest

from geventq import Job, Queue, Worker
from geventq.exceptions import JobFailed
from tests import jobs, jobs_worker
from tests.helpers import wait_for

QUIET = ["--logging-level", "WARNING"]


def test_many_sleeping_jobs_overlap(queue, start_worker):
    batch = [queue.enqueue(jobs.sleep, 1) for _ in range(200)]
    started = time.monotonic()
    worker = start_worker("--burst", "-n", "200", *QUIET)
    assert worker.wait(30) == 0
    elapsed = time.monotonic() - started
    assert all(job.get_status() == "finished" for job in batch)
    assert batch[0].result == 1
    assert elapsed < 6, f"200 one-second jobs took {elapsed:.1f} s on one worker"


def test_timeout_fails_one_job_while_parallel_job_succeeds(queue, start_worker):
    slow = queue.enqueue(jobs.swallow_everything, 5, job_timeout=1)
    fast = queue.enqueue(jobs.sleep, 0.5)
    worker = start_worker("--burst", *QUIET)
    assert worker.wait(20) == 0
    slow.refresh()
    assert slow.get_status() == "failed"
    assert "JobTimeoutException" in slow.exc_info
    assert fast.get_status() == "finished" and fast.result == 0.5
    assert slow.ended_at - slow.started_at < __import__("datetime").timedelta(seconds=3)


def test_throughput_carries_on_after_many_timeouts(queue, start_worker):
    timeouts = [queue.enqueue(jobs.sleep, 10, job_timeout=1) for _ in range(50)]
    after = [queue.enqueue(jobs.add, i, 1) for i in range(200)]
    worker = start_worker("--burst", "-n", "50", *QUIET)
    assert worker.wait(30) == 0
    assert all(j.get_status() == "failed" for j in timeouts)
    assert [j.result for j in after] == [i + 1 for i in range(200)]
    assert queue.started_job_registry.count == 0


def test_strict_queue_priority(connection, start_worker):
    low, normal, high = (Queue(n, connection=connection) for n in ("low", "normal", "high"))
    for i in range(3):
        low.enqueue(jobs_worker.record_order, f"low{i}")
        normal.enqueue(jobs_worker.record_order, f"normal{i}")
        high.enqueue(jobs_worker.record_order, f"high{i}")
    worker = start_worker("--burst", "-n", "1", "high", "normal", "low", *QUIET)
    assert worker.wait(20) == 0
    order = [x.decode() for x in connection.lrange("test:order", 0, -1)]
    assert order == [f"{q}{i}" for q in ("high", "normal", "low") for i in range(3)]


def test_result_failure_and_registries(queue, start_worker):
    ok = queue.enqueue(jobs.add, 2, 3, result_ttl=86400)
    bad = queue.enqueue(jobs.fail, "kaput")
    unpicklable = queue.enqueue(jobs.unpicklable_result)
    worker = start_worker("--burst", *QUIET)
    assert worker.wait(20) == 0
    assert ok.result == 5 and ok.id in queue.finished_job_registry
    assert 86000 < queue.connection.ttl(ok.key) <= 86400
    bad.refresh()
    assert bad.is_failed and "ValueError: kaput" in bad.exc_info
    assert bad.id in queue.failed_job_registry
    unpicklable.refresh()
    assert unpicklable.is_failed and "cannot be serialized" in unpicklable.exc_info
    assert queue.started_job_registry.count == 0


def test_dependents_are_released_by_the_worker(queue, start_worker):
    parent = queue.enqueue(jobs.add, 1, 1)
    child = queue.enqueue(jobs.add, 2, 2, depends_on=parent)
    worker = start_worker("--burst", *QUIET)
    assert worker.wait(20) == 0
    assert child.result == 4


def test_dependents_enqueued_exactly_once_with_two_workers(connection, start_worker):
    q = Queue("default", connection=connection)
    children = []
    for i in range(40):
        a = q.enqueue(jobs_worker.mark_and_sleep, f"a{i}", 0.2)
        b = q.enqueue(jobs_worker.mark_and_sleep, f"b{i}", 0.2)
        children.append(q.enqueue(jobs_worker.record_order, f"child{i}", depends_on=[a, b]))
    one = start_worker("--burst", "-n", "40", *QUIET)
    two = start_worker("--burst", "-n", "40", *QUIET)
    assert one.wait(30) == 0 and two.wait(30) == 0
    order = [x.decode() for x in connection.lrange("test:order", 0, -1)]
    assert sorted(order) == sorted(f"child{i}" for i in range(40))  # each exactly once
    assert all(c.get_status() == "finished" for c in children)


def test_get_current_job_is_per_greenlet(queue, start_worker):
    batch = [queue.enqueue(jobs_worker.current_ids_across_timeouts, 0.3) for _ in range(30)]
    worker = start_worker("--burst", "-n", "30", *QUIET)
    assert worker.wait(20) == 0
    for job in batch:
        assert job.result == [job.id, job.id]


def test_meta_saved_from_a_job(queue, start_worker):
    job = queue.enqueue(jobs.save_meta, 42)
    assert start_worker("--burst", *QUIET).wait(20) == 0
    job.refresh()
    assert job.meta == {"progress": 42}


def test_warm_shutdown_lets_running_job_finish(queue, connection, start_worker):
    job = queue.enqueue(jobs_worker.mark_and_sleep, "long", 1.5)
    waiting = queue.enqueue(jobs.noop)
    worker = start_worker("-n", "1", *QUIET)
    wait_for(lambda: connection.llen("test:started"), message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert job.get_status() == "finished"
    assert waiting.get_status() == "queued"  # no new job after the signal
    assert Worker.count(connection=connection) == 0


def test_second_signal_puts_running_job_back(queue, connection, start_worker):
    job = queue.enqueue(jobs_worker.mark_and_sleep, "long", 30)
    worker = start_worker()
    wait_for(lambda: connection.llen("test:started"), message="the job to start")
    worker.signal(signal.SIGINT)
    worker.wait_for_output("warm shutdown")
    worker.signal(signal.SIGINT)
    assert worker.wait(20) == 0
    assert job.get_status() == "queued" and queue.job_ids == [job.id]
    assert queue.started_job_registry.count == 0


def test_exception_handler_chain(queue, connection, start_worker):
    job = queue.enqueue(jobs.fail)
    worker = start_worker("--burst", *QUIET,
                          "--exception-handler", "tests.jobs_worker.handler_raises",
                          "--exception-handler", "tests.jobs_worker.handler_record",
                          "--exception-handler", "tests.jobs_worker.handler_stop",
                          "--exception-handler", "tests.jobs_worker.handler_never")
    assert worker.wait(20) == 0
    calls = [x.decode() for x in connection.lrange("test:handlers", 0, -1)]
    assert calls == [f"first:{job.id}:ValueError", "second"]
    assert job.id in queue.failed_job_registry  # whatever the handlers did


def test_config_file_and_cli_override(tmp_path, connection, start_worker):
    settings = tmp_path / "settings.py"
    settings.write_text("QUEUES = ['from_file']\nCONCURRENCY = 7\nNAME = 'configured'\n")
    Queue("from_cli", connection=connection).enqueue(jobs.noop)
    worker = start_worker("-c", str(settings), "from_cli", "--name", "cli-name", *QUIET)
    found = wait_for(lambda: Worker.find_by_key("geventq:worker:cli-name", connection=connection),
                     message="the worker to register")
    assert found.queue_names == ["from_cli"]
    assert found.record["concurrency"] == "7"
    wait_for(lambda: Queue("from_cli", connection=connection).is_empty(), message="the job to run")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_worker_lookups_and_unregister(connection, start_worker):
    worker = start_worker("--name", "look", "a", "b", *QUIET)
    other = start_worker("--name", "other", "c", *QUIET)
    wait_for(lambda: Worker.count(connection=connection) == 2, message="two workers")
    names = [w.name for w in Worker.all(connection=connection)]
    assert names == ["look", "other"]
    assert [w.name for w in Worker.all(queue=Queue("b", connection=connection))] == ["look"]
    assert Worker.count(queue=Queue("c", connection=connection)) == 1
    found = Worker.find_by_key("geventq:worker:look", connection=connection)
    assert found.pid == worker.pid and found.get_state() == "idle"
    assert found.birth_date is not None and found.last_heartbeat is not None
    worker.signal(signal.SIGTERM)
    other.signal(signal.SIGTERM)
    assert worker.wait(20) == 0 and other.wait(20) == 0
    assert Worker.count(connection=connection) == 0


def test_counters_and_current_jobs(queue, connection, start_worker):
    for _ in range(3):
        queue.enqueue(jobs.noop)
    queue.enqueue(jobs.fail)
    long_job = queue.enqueue(jobs_worker.mark_and_sleep, "x", 30)
    worker = start_worker("--name", "counted")
    found = wait_for(lambda: Worker.find_by_key("geventq:worker:counted", connection=connection))
    wait_for(lambda: found.successful_job_count == 3 and found.failed_job_count == 1,
             message="the counters")
    assert found.current_job_ids == [long_job.id]
    wait_for(lambda: found.get_state() == "busy", timeout=15, message="state busy")
    assert found.total_working_time > 0
    worker.signal(signal.SIGTERM)
    worker.wait_for_output("warm shutdown")
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert long_job.get_status() == "queued"


def test_idle_worker_picks_up_a_job_quickly(queue, start_worker, connection):
    worker = start_worker(*QUIET)
    wait_for(lambda: Worker.count(connection=connection) == 1)
    wait_for(lambda: any(c.get("cmd") == "blpop" for c in connection.client_list()),
             message="the idle worker to block on its wake tokens")
    started = time.monotonic()
    job = queue.enqueue(jobs.add, 1, 2)
    assert job.wait(timeout=5) == 3
    assert time.monotonic() - started < 0.5
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_job_wait_raises_for_a_failed_job(queue, start_worker):
    job = queue.enqueue(jobs.fail, "nope")
    start_worker("--burst", *QUIET)
    with pytest.raises(JobFailed, match="nope"):
        job.wait(timeout=15)


def test_stop_a_running_job(queue, connection, start_worker):
    from click.testing import CliRunner

    from geventq.cli import main

    job = queue.enqueue(jobs_worker.mark_and_sleep, "stoppable", 30)
    after = queue.enqueue(jobs.add, 1, 1)
    worker = start_worker("-n", "1", *QUIET)
    wait_for(lambda: job.get_status() == "started", message="the job to start")
    url = connection.connection_pool.connection_kwargs
    result = CliRunner().invoke(main, ["stop", job.id, "-u",
                                       f"redis://{url['host']}:{url['port']}/0"])
    assert result.exit_code == 0, result.output
    wait_for(lambda: job.get_status() == "stopped", message="the job to stop")
    assert job.id in queue.failed_job_registry
    assert after.wait(timeout=10) == 2  # the slot was freed
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_suspend_and_resume(queue, connection, start_worker):
    from geventq import control

    control.suspend(connection)
    worker = start_worker(*QUIET)
    wait_for(lambda: Worker.count(connection=connection) == 1)
    job = queue.enqueue(jobs.noop)
    wait_for(lambda: Worker.all(connection=connection)[0].get_state() == "suspended", timeout=15,
             message="state suspended")
    assert job.get_status() == "queued"
    control.resume(connection)
    job.wait(timeout=10)
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_max_jobs_and_simple_worker(queue, start_worker):
    batch = [queue.enqueue(jobs.add, i, i) for i in range(5)]
    worker = start_worker("--max-jobs", "2", "-w", "geventq.SimpleWorker", *QUIET)
    assert worker.wait(20) == 0
    assert [j.get_status() for j in batch].count("finished") == 2
    assert len(queue) == 3


def test_simple_worker_enforces_timeout(queue, start_worker):
    job = queue.enqueue(jobs.sleep, 5, job_timeout=1)
    worker = start_worker("--burst", "-w", "SimpleWorker", *QUIET)  # the bare name works too
    assert worker.wait(20) == 0
    job.refresh()
    assert job.is_failed and "JobTimeoutException" in job.exc_info


def test_logs_one_line_per_job_at_info(queue, start_worker):
    ok = queue.enqueue(jobs.add, 1, 2)
    bad = queue.enqueue(jobs.fail)
    out = start_worker("--burst", "--logging-level", "INFO").output()
    # one line per ended job, each with the prefix of a record of its own, even when the
    # finisher logs a batch of endings as one record; no line when a job starts
    lines = [line for line in out.splitlines() if ok.id in line or bad.id in line]
    assert len(lines) == 2, out
    assert re.search(rf"INFO geventq\.jobs: job {ok.id} tests\.jobs\.add finished in \d+\.\d{{3}} s$",
                     lines[0] if ok.id in lines[0] else lines[1]), out
    assert re.search(rf"INFO geventq\.jobs: job {bad.id} tests\.jobs\.fail failed after \d+\.\d{{3}} s: "
                     r"\w*Error", lines[0] if bad.id in lines[0] else lines[1]), out
    quiet = queue.enqueue(jobs.add, 1, 2)
    out = start_worker("--burst", *QUIET).output()
    assert quiet.id not in out


@pytest.mark.parametrize("args,needle", [
    (["-w", "no.such.Worker"], "cannot import worker class 'no.such.Worker'"),
    (["--job-class", "tests.jobs.add"], "job class must be a subclass of Job"),
    (["-c", "/nonexistent/settings.py"], "config file not found: /nonexistent/settings.py"),
    (["--logging-level", "LOUD"], "LOGGING_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, "
                                  "CRITICAL, got 'LOUD'"),
])
def test_bad_options_print_one_line_and_exit_3(start_worker, args, needle):
    worker = start_worker("--burst", *args)
    out = worker.output()
    assert worker.proc.returncode == 3
    assert needle in out and "Traceback" not in out


def test_redis_down_with_no_wait_exits_with_one_line(start_worker):
    from geventq.testing import free_port

    worker = start_worker("--burst", "--no-wait", "-u", f"redis://:secretpw@127.0.0.1:{free_port()}/0")
    out = worker.output()
    assert worker.proc.returncode == 3
    assert "cannot reach Redis" in out and "secretpw" not in out and "Traceback" not in out


def test_info_shows_queues_and_workers(queue, connection, start_worker, redis_url):
    from click.testing import CliRunner

    from geventq.cli import main

    queue.enqueue(jobs.noop)
    worker = start_worker("--name", "shown", "default", "other", *QUIET)
    wait_for(lambda: queue.finished_job_registry.count == 1)
    result = CliRunner().invoke(main, ["info", "-u", redis_url])
    assert result.exit_code == 0, result.output
    assert "default" in result.output and "finished 1" in result.output
    assert "shown" in result.output and "1 worker(s)" in result.output
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_job_fetch_after_worker(queue, start_worker):
    job = queue.enqueue(jobs.add, 20, 1)
    assert start_worker("--burst", *QUIET).wait(20) == 0
    fetched = Job.fetch(job.id, connection=queue.connection)
    assert fetched.result == 21 and fetched.worker_name
    assert fetched.started_at <= fetched.ended_at


_SIGNALLED_AT_REGISTER = """
import os, signal, sys
import redis
from geventq import SimpleWorker

class Signalled(SimpleWorker):
    def register(self, **fields):
        super().register(**fields)
        os.kill(os.getpid(), signal.SIGTERM)  # as soon as others can see it

conn = redis.Redis.from_url(os.environ["REDIS_URL"])
Signalled(["default"], connection=conn, name="signalled").work()
print("stopped warmly")
"""


def test_a_signal_right_after_registering_stops_the_worker_warmly(connection, redis_url):
    import subprocess
    import sys

    from tests.conftest import worker_env

    proc = subprocess.run([sys.executable, "-c", _SIGNALLED_AT_REGISTER], env=worker_env(redis_url),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "stopped warmly" in proc.stdout, proc.stderr
    assert not Worker.all(connection=connection)  # it unregistered
