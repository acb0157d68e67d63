"""`geventq pool` as real processes: started under setsid, signalled with killpg.

Two kinds of children: the real worker (``python -m geventq pool`` against the
private redis-server of conftest), and the stub worker of tests/stubs (run by
tests/stubs/run_pool.py) for failure modes a real worker does not produce on
demand. Every wait is a poll with a deadline; exit codes are asserted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from geventq import Queue
from geventq.defaults import EXIT_BOOT_ERROR, EXIT_FAILURE
from geventq.job import resolve_keys
from tests.helpers import kill_group, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUBS = os.path.join(ROOT, "tests", "stubs")
KEYS = resolve_keys(None, None)
POOL = "testpool"


class PoolProcess:
    """A launcher in its own session; its output goes to a file (no pipe to fill)."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: str) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def killpg(self, signum: int) -> None:
        """Signal the launcher's whole process group, as a terminal or systemd would."""
        os.killpg(self.proc.pid, signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"pool still running after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def logged(self, text: str) -> bool:
        return text in self.output()

    def worker_pids(self) -> dict[str, int]:
        """Worker name -> pid, from the launcher's live children."""
        found = {}
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return {}
        for child in children:
            try:
                argv = child.cmdline()
            except psutil.Error:
                continue
            if "--name" in argv:
                found[argv[argv.index("--name") + 1]] = child.pid
        return found

    def cleanup(self) -> None:
        """Kill the launcher and every descendant (workers have their own groups)."""
        try:
            procs = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                pass
        kill_group(self.proc)
        psutil.wait_procs(procs, timeout=5)


@pytest.fixture
def start_pool(tmp_path, redis_url):
    """start_pool(*args, config={...}, env={...}) -> a PoolProcess running the real CLI."""
    pools: list[PoolProcess] = []

    def start(*args: str, config: dict | None = None, env: dict | None = None,
              config_text: str = "") -> PoolProcess:
        conf = tmp_path / f"pool{len(pools)}.py"
        conf.write_text("".join(f"{k} = {v!r}\n" for k, v in (config or {}).items())
                        + config_text)
        full_env = dict(os.environ, PYTHONPATH=ROOT, REDIS_URL=redis_url, **(env or {}))
        argv = [sys.executable, "-m", "geventq", "pool", "-c", str(conf), "-u", redis_url,
                "--pool-name", POOL, *args]
        pool = PoolProcess(argv, full_env, str(tmp_path / f"pool{len(pools)}.log"))
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        pool.cleanup()


@pytest.fixture
def start_stub_pool(tmp_path):
    """start_stub_pool(settings, **stub_env) -> (PoolProcess, events path), stub workers."""
    pools: list[PoolProcess] = []

    def start(settings: dict, **stub_env: str) -> tuple[PoolProcess, str]:
        path = tmp_path / f"stub{len(pools)}.json"
        path.write_text(json.dumps({"pool_name": POOL, **settings}))
        events = str(tmp_path / f"events{len(pools)}.jsonl")
        env = dict(os.environ, STUB_EVENTS=events, **stub_env)
        pool = PoolProcess([sys.executable, os.path.join(STUBS, "run_pool.py"), str(path)], env,
                           str(tmp_path / f"stub{len(pools)}.log"))
        pools.append(pool)
        return pool, events

    yield start
    for pool in pools:
        pool.cleanup()


def read_events(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def registered(connection) -> set[str]:
    """Names of the workers registered in Redis by this test's pool."""
    return {n.decode() for n in connection.smembers(KEYS.workers) if n.startswith(b"testpool.")}


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class NotifyListener(threading.Thread):
    """A datagram socket playing systemd: reads every sd_notify message as it comes."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self.stopped = False

    def run(self) -> None:
        while not self.stopped:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def wait_for(self, first_line: str, count: int = 1, timeout: float = 30) -> None:
        wait_for(lambda: sum(m.split("\n")[0] == first_line for m in self.messages) >= count,
                 timeout=timeout, message=f"{count} x {first_line}")

    def close(self) -> None:
        self.stopped = True
        self.join(5)
        self.sock.close()


# -- the real worker ---------------------------------------------------------


def test_pool_of_3_replaces_a_sigkilled_worker_and_loses_none_of_500_jobs(
        start_pool, queue, connection):
    jobs = queue.enqueue_many([Queue.prepare_data("tests.jobs.sleep", (0.05,))
                               for _ in range(500)])
    pool = start_pool("-N", "3", "--concurrency", "10")

    def busy_worker():
        # any worker holding claimed jobs: started ones, or claimed but not yet started
        for name, pid in pool.worker_pids().items():
            if connection.scard(KEYS.worker_jobs(name)) > 0:
                return name, pid
        return None

    victim, pid = wait_for(busy_worker, timeout=20, message="a worker with jobs in flight")
    os.kill(pid, signal.SIGKILL)
    def settled():  # all done, or nothing left anywhere to do
        done = queue.finished_job_registry.count + queue.failed_job_registry.count
        return done == 500 or (queue.count == 0 and queue.started_job_registry.count == 0)

    wait_for(settled, timeout=30, message=f"the jobs to settle\n{pool.output()[-3000:]}")
    if queue.finished_job_registry.count != 500:
        lost = {j.id for j in jobs if j.get_status() != "finished"}
        raise AssertionError(
            f"finished {queue.finished_job_registry.count}, failed "
            f"{queue.failed_job_registry.count}, started {queue.started_job_registry.count}, "
            f"queued {queue.count}; {len(lost)} lost\n{pool.output()[-5000:]}")
    assert queue.failed_job_registry.count == 0
    assert {j.get_status() for j in jobs} == {"finished"}
    out = pool.output()
    assert f"worker {victim} (pid {pid}) was killed by SIGKILL" in out
    assert f"recovering the in-flight jobs of {victim}" in out
    slot = victim.split(".")[1]
    assert f"started worker {POOL}.{slot}.1" in out
    wait_for(lambda: pool.logged(f"recovery of {victim}'s jobs exited with code 0"), timeout=10)
    pool.killpg(signal.SIGTERM)
    assert pool.wait(20) == 0


def test_sigterm_drains_a_long_job_then_exits_0(start_pool, queue):
    job = queue.enqueue("tests.jobs.sleep", 2)
    pool = start_pool("-N", "2", config={"SHUTDOWN_GRACE": 15})
    wait_for(lambda: job.get_status() == "started", timeout=20, message="the job to start")
    pool.killpg(signal.SIGTERM)
    assert pool.wait(20) == 0, pool.output()
    assert job.get_status() == "finished" and job.result == 2
    assert "cold shutdown" not in pool.output()


def test_the_redis_url_never_reaches_a_command_line(start_pool, queue, redis_url):
    # `ps` shows every user the command lines: a URL may carry a password
    job = queue.enqueue("tests.jobs.add", 1, 2)
    pool = start_pool("-N", "1")
    assert job.wait(timeout=20) == 3
    pids = list(pool.worker_pids().values())
    assert pids
    for pid in pids:
        assert redis_url not in " ".join(psutil.Process(pid).cmdline())
    pool.killpg(signal.SIGTERM)
    assert pool.wait(20) == 0, pool.output()


def test_sighup_replaces_every_worker_new_before_old_with_sd_notify(
        start_pool, connection, tmp_path):
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    listener.start()
    try:
        pool = start_pool("-N", "2",
                          env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "1000000"})
        listener.wait_for("READY=1")
        assert registered(connection) == {f"{POOL}.0.0", f"{POOL}.1.0"}
        pool.killpg(signal.SIGHUP)
        seen = []
        new = {f"{POOL}.0.1", f"{POOL}.1.1"}
        deadline = time.monotonic() + 40
        while registered(connection) != new:
            seen.append(len(registered(connection)))
            assert time.monotonic() < deadline, pool.output()
            time.sleep(0.02)  # a poll with the deadline above that samples every size on the way
        assert min(seen) >= 1, "never fewer than N - 1 workers"
        listener.wait_for("READY=1", count=2)
        pool.killpg(signal.SIGTERM)
        assert pool.wait(20) == 0, pool.output()
        listener.wait_for("STOPPING=1")
    finally:
        listener.close()
    out = pool.output()
    for slot in range(2):  # each new worker was up before its old one was told to stop
        assert out.index(f"worker {POOL}.{slot}.1 started on queues") < \
            out.index(f"worker {POOL}.{slot}.0 got SIGTERM")
    messages = listener.messages
    kinds = [m.split("\n")[0] for m in messages if not m.startswith(("WATCHDOG", "STATUS"))]
    assert kinds == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
    assert "WATCHDOG=1" in messages
    assert "STATUS=2/2 workers up" in next(m for m in messages if m.startswith("READY=1"))
    assert "NOTIFY_SOCKET" not in out  # the workers never saw systemd's socket


def test_ttin_and_ttou_change_the_number_of_workers(start_pool, connection):
    pool = start_pool("-N", "1")
    wait_for(lambda: registered(connection) == {f"{POOL}.0.0"}, timeout=20)
    pool.killpg(signal.SIGTTIN)
    wait_for(lambda: registered(connection) == {f"{POOL}.0.0", f"{POOL}.1.0"}, timeout=20,
             message="a second worker")
    pool.killpg(signal.SIGTTOU)
    wait_for(lambda: registered(connection) == {f"{POOL}.0.0"}, timeout=20,
             message="back to one worker")
    wait_for(lambda: pool.worker_pids().keys() == {f"{POOL}.0.0"}, timeout=10,
             message="the retired worker's exit")
    assert pool.logged(f"stopping worker {POOL}.1.0")
    pool.killpg(signal.SIGTERM)
    assert pool.wait(20) == 0


def test_a_worker_over_max_memory_is_recycled(start_pool, queue, connection):
    pool = start_pool("-N", "1", config={"MAX_MEMORY": "150M"})
    job = queue.enqueue("tests.stubs.pool_jobs.hog", 200)
    wait_for(lambda: registered(connection) == {f"{POOL}.0.1"}, timeout=30,
             message=f"the replacement worker\n{pool.output()}")
    assert job.get_status() == "finished"
    wait_for(lambda: re.search(rf"worker {POOL}\.0\.0 \(pid \d+\) exited with code 0",
                               pool.output()), timeout=10, message="the fat worker's exit")
    assert "over MAX_MEMORY 150.0M" in pool.output()
    pool.killpg(signal.SIGTERM)
    assert pool.wait(20) == 0


def test_a_worker_with_a_blocked_hub_is_killed_and_its_job_recovered(
        start_pool, queue, tmp_path):
    marker = str(tmp_path / "blocked-once")
    job = queue.enqueue("tests.stubs.pool_jobs.block_once", marker, 8)
    pool = start_pool("-N", "1", config={"WORKER_TIMEOUT": 2})
    wait_for(lambda: job.get_status() == "finished", timeout=30,
             message=f"the recovered job to finish\n{pool.output()}")
    assert job.result == "second run"
    out = pool.output()
    assert f"killing worker {POOL}.0.0" in out and "(WORKER_TIMEOUT=2)" in out
    assert f"recovering the in-flight jobs of {POOL}.0.0" in out
    pool.killpg(signal.SIGTERM)
    assert pool.wait(20) == 0


def test_a_config_that_fails_to_import_exits_3_with_one_line(start_pool):
    pool = start_pool(config={"WORKERS": 2}, config_text="import module_that_does_not_exist\n")
    assert pool.wait(20) == EXIT_BOOT_ERROR
    lines = pool.output().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("geventq pool: config file ") and "failed to load" in lines[0]
    assert "module_that_does_not_exist" in lines[0]


def test_a_worker_that_cannot_boot_stops_the_pool_without_a_restart_storm(start_pool):
    pool = start_pool("-N", "2", config={"WORKER_CLASS": "tests.no_such_module.Worker"})
    assert pool.wait(30) == EXIT_BOOT_ERROR
    out = pool.output()
    assert out.count("started worker") == 2
    last = out.strip().splitlines()[-1]
    assert "exiting with code 3: worker testpool." in last and "could not start" in last
    assert "tests.no_such_module.Worker" in last


# -- the stub worker ------------------------------------------------------------


def test_workers_crashing_at_start_make_the_pool_give_up_with_the_reason(start_stub_pool):
    pool, events = start_stub_pool(
        {"workers": 2, "policy": {"start_window": 5, "max_failures": 4, "base_delay": 0.05}},
        STUB_MODE="crash")
    assert pool.wait(20) == EXIT_FAILURE
    last = pool.output().strip().splitlines()[-1]
    assert "workers keep failing (4 in a row" in last and "crashed on purpose" in last
    assert len([e for e in read_events(events) if e["ev"] == "start"]) <= 5


def test_killpg_reaches_only_the_pool_and_a_second_sigterm_is_cold(start_stub_pool):
    pool, events = start_stub_pool({"workers": 2, "shutdown_grace": 30}, STUB_JOB_SECONDS="30")
    wait_for(lambda: len([e for e in read_events(events) if e["ev"] == "beat"]) == 2,
             message="two stub workers up")
    pool.killpg(signal.SIGTERM)
    wait_for(lambda: len([e for e in read_events(events) if e["ev"] == "term"]) == 2,
             message="each worker's warm SIGTERM")
    pool.killpg(signal.SIGTERM)
    assert pool.wait(10) == 0, pool.output()
    evs = read_events(events)
    for name in {e["name"] for e in evs}:
        terms = [e["n"] for e in evs if e["name"] == name and e["ev"] == "term"]
        assert terms == [1, 2], (name, terms)  # one SIGTERM from the pool per signal
        assert [e for e in evs if e["name"] == name and e["ev"] == "exit"][0]["cold"]
    starts = [e for e in evs if e["ev"] == "start"]
    assert {e["pool"] for e in starts} == {POOL}
    assert all(e["heartbeat"] and e["notify"] is None for e in starts)


def test_workers_get_a_warm_sigterm_when_the_launcher_is_killed(start_stub_pool):
    pool, events = start_stub_pool({"workers": 2})
    wait_for(lambda: len([e for e in read_events(events) if e["ev"] == "beat"]) == 2,
             message="two stub workers up")
    pids = set(pool.worker_pids().values())
    pool.killpg(signal.SIGKILL)  # the OOM killer, say: no chance to stop the workers itself
    assert pool.wait(10) == -signal.SIGKILL
    wait_for(lambda: not any(running(p) for p in pids), timeout=10,
             message="the orphaned workers to exit")
    terms = [e for e in read_events(events) if e["ev"] == "term"]
    assert {e["pid"] for e in terms} == pids and all(e["n"] == 1 for e in terms)
