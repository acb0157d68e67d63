"""`geventq worker --mode fork`: a ForkWorker, every job in a pre-forked child, no gevent.

Real `geventq worker` processes against the test redis-server (timeouts in fork mode:
tests/test_fork.py). That the worker has
no gevent is seen two ways: from outside, its memory maps name no gevent or greenlet
extension; from inside, a job in a child (which inherits the worker's modules and
patches) reports what it sees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from geventq import ForkWorker, Queue, Worker
from geventq.cli.mode import UNKNOWN, hub_free_from_start, settings_literals
from geventq.control import send_stop_job_command
from tests import jobs_cpu
from tests.helpers import wait_for
from tests.test_fork import _alive, _children_of

QUIET = ["--logging-level", "WARNING"]
NO_GEVENT = {"gevent": False, "greenlet": False, "patched": False}

pytestmark = pytest.mark.timeout(60)


def _maps_mention(pid: int, *names: str) -> bool:
    """Whether the process has a shared object whose path holds one of ``names`` mapped."""
    with open(f"/proc/{pid}/maps") as f:
        return any(name in line for line in f for name in names)


def _seen(report: dict) -> dict:
    return {key: report[key] for key in NO_GEVENT}


def test_fork_mode_has_no_gevent_and_reuses_its_children(connection, queue, start_worker):
    jobs = [queue.enqueue(jobs_cpu.process_report) for _ in range(6)]
    worker = start_worker("--mode", "fork", "--fork-concurrency", "2", "--name", "forky",
                          "default", *QUIET)
    wait_for(lambda: all(j.get_status() == "finished" for j in jobs), 20, message="the jobs")
    reports = [j.result for j in jobs]
    assert all(_seen(r) == NO_GEVENT for r in reports), reports
    assert all(r["ppid"] == worker.pid for r in reports)  # each ran in a child of the worker
    assert len({r["pid"] for r in reports}) <= 2  # two children, reused job after job
    assert not _maps_mention(worker.pid, "gevent", "greenlet")
    record = next(w for w in Worker.all(connection=connection) if w.name == "forky")
    assert connection.hget(record.key, "mode") == b"fork"
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_a_mixed_worker_has_its_hub(queue, start_worker):
    """The control of the test above: the same observations see gevent where it is."""
    job = queue.enqueue(jobs_cpu.process_report)
    worker = start_worker("--fork-queue", "default", "default", *QUIET)
    wait_for(lambda: job.get_status() == "finished", 20, message="the job")
    assert _seen(job.result) == {"gevent": True, "greenlet": True, "patched": True}
    assert _maps_mention(worker.pid, "greenlet")
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_a_dead_child_fails_its_job_and_the_worker_goes_on(queue, start_worker):
    bail = queue.enqueue(jobs_cpu.exit_abruptly, 3)
    killed = queue.enqueue(jobs_cpu.die_by_sigkill)
    after = queue.enqueue(jobs_cpu.process_report)
    worker = start_worker("--burst", "--mode", "fork", "--fork-concurrency", "1", "default",
                          *QUIET)
    assert worker.wait(20) == 0, worker.output()
    bail.refresh()
    killed.refresh()
    assert bail.get_status() == "failed" and "exited with code 3" in bail.exc_info
    assert killed.get_status() == "failed" and "killed by SIGKILL" in killed.exc_info
    assert "ChildProcessDied" in killed.exc_info
    assert after.get_status() == "finished" and _seen(after.result) == NO_GEVENT


def test_warm_stop_lets_the_running_job_finish(queue, start_worker):
    job = queue.enqueue(jobs_cpu.window, 1.5)
    worker = start_worker("--mode", "fork", "default", *QUIET)
    wait_for(lambda: job.get_status() == "started", 15, message="the job to start")
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    assert job.get_status() == "finished"


def test_cold_stop_kills_the_children_and_puts_the_jobs_back(queue, start_worker):
    busy = [queue.enqueue(jobs_cpu.spin, 60) for _ in range(2)]
    worker = start_worker("--mode", "fork", "--fork-concurrency", "2", "default", *QUIET)
    wait_for(lambda: all(j.get_status() == "started" for j in busy), 15,
             message="the jobs to start")
    children = wait_for(lambda: len(_children_of(worker.pid)) == 2 and _children_of(worker.pid),
                        5, message="two fork children")
    worker.signal(signal.SIGTERM)  # warm...
    worker.signal(signal.SIGINT)  # ...then cold
    assert worker.wait(15) == 0
    assert all(j.get_status() == "queued" for j in busy)
    assert set(queue.get_job_ids()) == {j.id for j in busy}
    wait_for(lambda: not any(_alive(pid) for pid in children), 5, message="the children to end")


def test_geventq_stop_ends_a_running_job_and_the_worker_goes_on(connection, queue,
                                                                start_worker):
    stopped = queue.enqueue(jobs_cpu.spin, 60)
    worker = start_worker("--mode", "fork", "--fork-concurrency", "1", "default", *QUIET)
    wait_for(lambda: stopped.get_status() == "started", 15, message="the job to start")
    send_stop_job_command(connection, stopped.id)
    wait_for(lambda: stopped.get_status() == "stopped", 10, message="the stopped job")
    after = queue.enqueue(jobs_cpu.noop)
    wait_for(lambda: after.get_status() == "finished", 10, message="the next job")
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_burst_with_max_jobs_runs_that_many(queue, start_worker):
    jobs = [queue.enqueue(jobs_cpu.noop) for _ in range(5)]
    worker = start_worker("--burst", "--max-jobs", "3", "--mode", "fork", "default", *QUIET)
    assert worker.wait(20) == 0, worker.output()
    assert [j.get_status() for j in jobs].count("finished") == 3
    assert queue.count == 2


def test_the_scheduler_runs_in_fork_mode(queue, start_worker):
    worker = start_worker("--mode", "fork", "--with-scheduler", "default", *QUIET)
    job = queue.enqueue_in(1, jobs_cpu.process_report)
    wait_for(lambda: job.get_status() == "finished", 15, message="the scheduled job")
    assert _seen(job.result) == NO_GEVENT
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0


def test_a_literal_mode_in_the_settings_file_makes_a_worker_without_gevent(
        tmp_path, queue, start_worker):
    settings = tmp_path / "settings.py"
    settings.write_text('MODE = "fork"\nFORK_CONCURRENCY = 1\n')
    job = queue.enqueue(jobs_cpu.process_report)
    worker = start_worker("--burst", "-c", str(settings), "default", *QUIET)
    assert worker.wait(20) == 0, worker.output()
    assert _seen(job.result) == NO_GEVENT


def test_a_computed_mode_gets_a_hub_and_says_why(tmp_path, queue, start_worker):
    settings = tmp_path / "settings.py"
    settings.write_text('MODE = "fo" + "rk"\n')
    job = queue.enqueue(jobs_cpu.process_report)
    worker = start_worker("--burst", "-c", str(settings), "default")
    assert worker.wait(20) == 0
    assert "MODE is 'fork', but the settings file computes it" in worker.output()
    assert job.get_status() == "finished" and job.result["patched"]


def test_the_mode_is_read_without_running_the_settings_file(tmp_path, monkeypatch):
    settings = tmp_path / "conf_fork.py"
    settings.write_text('raise SystemExit("never run")\nMODE = "fork"\nWORKER_CLASS = None\n')
    assert settings_literals(str(settings), ("MODE", "WORKER_CLASS")) == \
        {"MODE": "fork", "WORKER_CLASS": None}
    assert hub_free_from_start(str(settings), {})
    monkeypatch.chdir(tmp_path)
    assert hub_free_from_start("conf_fork", {})  # a module name: found, not imported
    assert "conf_fork" not in sys.modules
    # fork mode runs without gevent whatever the class (one that needs gevent is refused)
    assert hub_free_from_start(str(settings), {"worker_class": "SimpleWorker"})
    assert not hub_free_from_start(None, {"worker_class": "tests.jobs_cpu.MyForkWorker"})
    assert not hub_free_from_start(None, {})
    assert hub_free_from_start(None, {"mode": "fork"})
    assert hub_free_from_start(None, {"worker_class": "geventq.ForkWorker"})
    settings.write_text('import os\nMODE = os.environ.get("MODE", "fork")\n')
    assert settings_literals(str(settings), ("MODE",)) == {"MODE": UNKNOWN}
    assert not hub_free_from_start(str(settings), {})
    settings.write_text('MODE: str = "fork"\n')  # annotated, still a literal
    assert hub_free_from_start(str(settings), {})
    settings.write_text("x = " + "(" * 200_000 + ")" * 200_000 + '\nMODE = "fork"\n')
    assert not hub_free_from_start(str(settings), {})  # too deep to parse: unknown, no traceback
    settings.write_text('MODE = "fork"\nif True:\n    MODE = "gevent"\n')
    assert not hub_free_from_start(str(settings), {})
    assert hub_free_from_start(str(settings), {"mode": "fork"})  # the command line wins


def test_the_fork_worker_modules_import_no_gevent():
    code = ("import sys, geventq.worker.forkworker, geventq.worker.bootstrap, geventq.cli.mode, "
            "geventq.cli.worker\nimport geventq\ngeventq.ForkWorker\n"
            "print([m for m in ('gevent', 'greenlet') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().replace("'", '"')) == []


def test_a_fork_worker_in_process_replaces_a_child_after_its_jobs(connection):
    queue = Queue("default", connection=connection)
    jobs = [queue.enqueue(jobs_cpu.process_report) for _ in range(5)]
    worker = ForkWorker([queue], connection=connection, fork_concurrency=1)
    worker.forks.max_jobs_per_child = 2
    assert worker.work(burst=True)
    pids = [j.result["pid"] for j in jobs]
    assert all(j.result["ppid"] == os.getpid() for j in jobs)
    assert len(set(pids)) == 3 and pids[0] == pids[1] and pids[2] == pids[3] != pids[4]
    assert worker.forks.pids == []  # closed: every child reaped


GEVENT_WORKER_IN_FORK_MODE = """
from gevent import monkey
monkey.patch_all()
import json, os, sys
from redis import Redis
from geventq import GeventWorker, Queue
from tests import jobs_cpu
conn = Redis.from_url(os.environ["REDIS_URL"])
queue = Queue("default", connection=conn)
jobs = [queue.enqueue(jobs_cpu.process_report) for _ in range(3)]
worker = GeventWorker([queue], connection=conn, mode="fork", fork_concurrency=1)
worker.work(burst=True)
print(json.dumps({"pid": os.getpid(), "results": [j.result for j in jobs]}))
"""


def test_a_gevent_worker_in_fork_mode_from_python_keeps_its_hub(redis_url):
    """``GeventWorker(mode="fork")`` in a monkey-patched process of one's own: every job
    in a child, the worker on its hub."""
    from tests.conftest import ROOT, worker_env

    done = subprocess.run([sys.executable, "-c", GEVENT_WORKER_IN_FORK_MODE], cwd=ROOT,
                          env=worker_env(redis_url), capture_output=True, text=True, timeout=45)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(r["ppid"] == out["pid"] and r["patched"] for r in out["results"])
    assert len({r["pid"] for r in out["results"]}) == 1  # one child, reused


def test_a_forkworker_subclass_under_fork_mode_runs_without_gevent(queue, start_worker):
    job = queue.enqueue(jobs_cpu.process_report)
    worker = start_worker("--burst", "--mode", "fork", "-w", "tests.jobs_cpu.MyForkWorker",
                          "--fork-concurrency", "1", "default", *QUIET)
    assert worker.wait(20) == 0, worker.output()
    job.refresh()
    assert _seen(job.result) == NO_GEVENT


def test_a_gevent_worker_subclass_under_fork_mode_is_refused_with_one_line(start_worker):
    worker = start_worker("--burst", "--mode", "fork", "-w", "tests.jobs_cpu.MyGeventWorker",
                          "default", *QUIET)
    assert worker.wait(20) == 3
    out = worker.output()
    assert "--mode fork runs without gevent, and MyGeventWorker is a GeventWorker" in out
    assert "Traceback" not in out


def test_a_forkworker_subclass_without_fork_mode_is_refused_not_patched(start_worker):
    """Without --mode fork the command line cannot tell what the class is: the process is
    patched, and a ForkWorker refuses to run in it (its threads would be greenlets)."""
    worker = start_worker("--burst", "-w", "tests.jobs_cpu.MyForkWorker", "default", *QUIET)
    assert worker.wait(20) == 3
    out = worker.output()
    assert "MyForkWorker runs without gevent, but this process is monkey-patched" in out
    assert "--mode fork" in out and "Traceback" not in out


def test_fork_queues_of_a_gevent_worker_refuse_an_unpatched_process(connection):
    """The fork pool waits with select.poll, os.waitpid and time.sleep: unpatched, one wait
    would stall every greenlet (this test process is not patched)."""
    from geventq import GeventWorker
    from geventq.exceptions import ConfigError

    with pytest.raises(ConfigError, match="needs gevent's patches of select, os, time"):
        GeventWorker(["default"], connection=connection, fork_queues=["default"])
    assert connection.keys("*") == []
