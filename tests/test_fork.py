"""Fork queues: jobs in forked children of a real `geventq worker`, next to greenlet jobs."""

from __future__ import annotations

import os
import signal

import pytest

from geventq import Queue, Worker
from geventq.control import send_stop_job_command
from geventq.worker.childproc import describe_status
from geventq.worker.modes import fork_settings
from tests import jobs_cpu
from tests.helpers import wait_for

QUIET = ["--logging-level", "WARNING"]


@pytest.fixture
def cpu(connection):
    return Queue("cpu", connection=connection)


def _window(job):
    start, end = job.result
    return start, end


def _overlap(a, b) -> bool:
    return max(a[0], b[0]) < min(a[1], b[1])


@pytest.mark.parametrize("forking", [("--fork-queue", "cpu"), ("--mode", "fork")],
                         ids=["fork-queue", "fork-mode"])
def test_cpu_loop_past_its_timeout_is_killed_and_failed(cpu, start_worker, forking):
    stuck = cpu.enqueue(jobs_cpu.spin, 60, job_timeout=1)
    deaf = cpu.enqueue(jobs_cpu.spin_ignoring_sigterm, 60, job_timeout=1)
    after = cpu.enqueue(jobs_cpu.noop)
    worker = start_worker("--burst", *forking, "--fork-concurrency", "2", "cpu", *QUIET)
    assert worker.wait(20) == 0
    for job, how in ((stuck, "SIGTERM"), (deaf, "SIGKILL")):
        job.refresh()
        assert job.get_status() == "failed"
        assert "JobTimeoutException" in job.exc_info and "timeout of 1 s" in job.exc_info
        assert f"killed with {how}" in job.exc_info
        assert (job.ended_at - job.started_at).total_seconds() < 4
    assert after.get_status() == "finished"
    assert cpu.started_job_registry.count == 0


def test_dead_child_fails_its_job_naming_the_signal_and_the_next_job_runs(cpu, start_worker):
    crash = cpu.enqueue(jobs_cpu.segfault)
    bail = cpu.enqueue(jobs_cpu.exit_abruptly, 3)
    after = cpu.enqueue(jobs_cpu.job_details, "ok")
    worker = start_worker("--burst", "--fork-queue", "cpu", "--fork-concurrency", "1", "cpu",
                          *QUIET)
    assert worker.wait(20) == 0
    crash.refresh()
    bail.refresh()
    assert crash.get_status() == "failed" and "killed by SIGSEGV" in crash.exc_info
    assert "ChildProcessDied" in crash.exc_info
    assert bail.get_status() == "failed" and "exited with code 3" in bail.exc_info
    assert after.get_status() == "finished" and after.result["id"] == after.id
    assert crash.id in cpu.failed_job_registry and after.id in cpu.finished_job_registry


def test_mixed_worker_runs_io_on_greenlets_and_cpu_in_children_at_once(connection, cpu,
                                                                       start_worker):
    io = Queue("io", connection=connection)
    cpu_jobs = [cpu.enqueue(jobs_cpu.cpu_window, 1.0) for _ in range(2)]
    io_jobs = [io.enqueue(jobs_cpu.window, 1.0) for _ in range(4)]
    worker = start_worker("--burst", "--fork-queue", "cpu", "--fork-concurrency", "2",
                          "cpu", "io", *QUIET)
    assert worker.wait(30) == 0
    assert all(j.get_status() == "finished" for j in cpu_jobs + io_jobs)
    cpu_windows = [_window(j) for j in cpu_jobs]
    io_windows = [_window(j) for j in io_jobs]
    # the two CPU jobs ran in parallel (two children), and the greenlets ran meanwhile
    assert _overlap(*cpu_windows), cpu_windows
    assert all(_overlap(cpu_windows[0], w) for w in io_windows), (cpu_windows, io_windows)


def test_fork_jobs_share_results_meta_counters_and_dependents(connection, cpu, start_worker):
    io = Queue("io", connection=connection)
    details = cpu.enqueue(jobs_cpu.job_details, "half way", result_ttl=600)
    failing = cpu.enqueue(jobs_cpu.fail_here, "bad input")
    child_job = io.enqueue(jobs_cpu.noop, depends_on=details)
    worker = start_worker("--fork-queue", "cpu", "--name", "mixed1", "cpu", "io", *QUIET)
    wait_for(lambda: child_job.get_status() == "finished", 15, message="the dependent job")
    wait_for(lambda: failing.get_status() == "failed", 15, message="the failing job")
    result = details.result
    assert result["id"] == details.id and result["origin"] == "cpu"
    assert result["pid"] != worker.pid  # it ran in a child
    details.refresh()
    assert details.meta == {"progress": "half way"}
    assert 0 < connection.ttl(details.key) <= 600
    failing.refresh()
    assert "ValueError: bad input" in failing.exc_info and "fail_here" in failing.exc_info
    record = next(w for w in Worker.all(connection=connection) if w.name == "mixed1")
    wait_for(lambda: record.successful_job_count == 2, 5, message="the worker's counters")
    assert record.failed_job_count == 1
    assert connection.hmget(record.key, "fork_queues", "mode") == [b"cpu", b"gevent"]
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_stop_and_cold_shutdown_kill_the_children(connection, cpu, start_worker):
    stopped = cpu.enqueue(jobs_cpu.spin, 60)
    busy = cpu.enqueue(jobs_cpu.spin, 60)
    worker = start_worker("--fork-queue", "cpu", "--fork-concurrency", "2", "cpu", *QUIET)
    wait_for(lambda: busy.get_status() == stopped.get_status() == "started", 15,
             message="the jobs to start")
    children = wait_for(lambda: len(_children_of(worker.pid)) == 2 and _children_of(worker.pid),
                        5, message="two fork children")
    send_stop_job_command(connection, stopped.id)
    wait_for(lambda: stopped.get_status() == "stopped", 10, message="the stopped job")
    worker.signal(signal.SIGINT)  # warm shutdown, then (another signal) cold
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert busy.get_status() == "queued" and busy.id in cpu.get_job_ids()
    assert not any(_alive(pid) for pid in children)


def test_bad_fork_options_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="'cpu' not among the worker's queues"):
        fork_settings("gevent", ["cpu"], None, ["default"])
    with pytest.raises(ValueError, match="mode must be 'gevent' or 'fork'"):
        fork_settings("threads", [], None, ["default"])
    with pytest.raises(ValueError, match="fork_concurrency must be a whole number from 1 to"):
        fork_settings("fork", [], 0, ["default"])
    assert fork_settings("fork", [], None, ["a", "b"]) == ("fork", ["a", "b"], os.cpu_count())
    assert fork_settings(None, ["b"], 3, ["a", "b"]) == ("gevent", ["b"], 3)
    assert describe_status(signal.SIGSEGV) == "was killed by SIGSEGV (signal 11)"


def _children_of(pid: int) -> list[int]:
    """The worker's fork children (not its pulse process, which keeps its key alive)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    pulse = b"pulse.py" in f.read()
            except OSError:
                continue
            if int(fields[1]) == pid and not pulse:
                out.append(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
