"""Liveness a job cannot block: the pulse process keeps a worker's key alive.

A job in one long C call holds the GIL, so no thread of its worker can beat.
The pulse (geventq/pulse.py), a process of its own, beats instead, for as long
as the worker lives and no longer. Real worker processes, real Redis; a second
worker sweeps for dead ones the whole time. Figures are printed (-s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import redis

from geventq import Queue
from geventq.connection import connection_from_settings, pulse_endpoint
from geventq.keys import Keys
from geventq.testing import RedisServer
from geventq.worker.heartbeat import PULSE_SCRIPT, Liveness
from tests import jobs_gil, jobs_reliability
from tests.conftest import ROOT, WorkerProcess, worker_env
from tests.helpers import wait_for
from tests.test_pool_integration import POOL, start_pool  # noqa: F401  (a fixture)
from tests.test_recovery import registered, write_config
from tests.test_secure import PASSWORD, tls_files, tls_server  # noqa: F401  (a fixture)

KEYS = Keys()
HOLD = 4.0  # seconds a job holds the GIL in one C call: twice the worker TTL below
INTERVAL = 0.5  # HEARTBEAT_INTERVAL: a worker TTL of 2 s
ALICE = ["--user", "alice", "on", f">{PASSWORD}", "~*", "&*", "+@all"]  # an ACL user


def pulses_of(pid: int) -> list[psutil.Process]:
    """The pulse processes a worker started."""
    return [p for p in psutil.Process(pid).children() if PULSE_SCRIPT in p.cmdline()]


def exited(process: psutil.Process) -> bool:
    """Gone, or a zombie waiting for a reaper (its parent, the worker, is dead)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def assert_ran_once_on(connection, job, worker_name: str | None = None) -> float:
    held = job.wait(timeout=40)
    job.refresh()
    assert held >= HOLD, f"the job held the GIL for only {held:.1f} s"
    assert connection.hget(jobs_gil.EXECUTIONS, job.id) == b"1"
    assert "requeues" not in job.extra  # never recovered
    if worker_name is not None:
        assert job.worker_name == worker_name
    return held


@pytest.mark.timeout(90)
def test_a_job_holding_the_gil_is_not_taken_for_dead(connection, start_worker, tmp_path):
    """A GeventWorker and a SimpleWorker each run a job that holds the GIL for two worker
    TTLs, while a third worker sweeps for dead ones: neither is recovered, each runs once."""
    jobs = {}
    for worker_class in ("GeventWorker", "SimpleWorker"):
        config = write_config(tmp_path, name=f"{worker_class}.py", HEARTBEAT_INTERVAL=INTERVAL,
                              LOGGING_LEVEL="WARNING", WORKER_CLASS=f"geventq.{worker_class}")
        start_worker("-c", config, "--name", worker_class, worker_class)
    watcher = start_worker("-c", config, "--name", "watcher", "elsewhere")  # sweeps all along
    wait_for(lambda: all(registered(connection, name) for name in
                         ("GeventWorker", "SimpleWorker", "watcher")), message="the workers")
    for worker_class in ("GeventWorker", "SimpleWorker"):
        jobs[worker_class] = Queue(worker_class, connection=connection).enqueue(
            jobs_gil.hold_gil, HOLD, job_timeout=-1)
    for worker_class, job in jobs.items():
        held = assert_ran_once_on(connection, job, worker_class)
        print(f"\n{worker_class}: held the GIL {held:.1f} s (worker TTL 2 s); not recovered")
        assert registered(connection, worker_class)
    assert watcher.proc.poll() is None


@pytest.mark.timeout(60)
def test_a_sigkilled_worker_is_recovered_as_promptly_and_its_pulse_stops(connection, queue,
                                                                         start_worker, tmp_path):
    """Only the worker is killed (not its process group): its pulse sees the pipe close."""
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=1, LOGGING_LEVEL="WARNING")
    victim = start_worker("-c", config, "--name", "victim", "-n", "5", "default")
    start_worker("-c", config, "--name", "sweeper", "elsewhere")
    started = [queue.enqueue("tests.jobs.sleep", 60, job_timeout=-1) for _ in range(3)]
    wait_for(lambda: all(j.get_status() == "started" for j in started), timeout=15,
             message="three jobs running on the victim")
    wait_for(lambda: registered(connection, "sweeper"), message="the sweeper")
    [pulse] = pulses_of(victim.pid)
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    wait_for(lambda: exited(pulse), timeout=5, interval=0.005, message="the pulse to exit")
    pulse_gone = time.monotonic() - killed_at
    wait_for(lambda: queue.count == 3, timeout=10, message="the jobs back on their queue")
    recovered = time.monotonic() - killed_at
    print(f"\nSIGKILL of the worker alone: its pulse gone {pulse_gone:.2f} s after, jobs back "
          f"on their queue {recovered:.2f} s after (heartbeat interval 1 s, worker TTL 3 s)")
    assert pulse_gone < 1.0
    assert recovered < 5  # as before the pulse: the TTL since the last beat, plus one sweep


@pytest.mark.timeout(60)
def test_a_killed_pulse_is_replaced_and_the_key_never_lapses(connection, start_worker, tmp_path):
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=INTERVAL, LOGGING_LEVEL="WARNING")
    worker = start_worker("-c", config, "--name", "steady", "default")
    wait_for(lambda: pulses_of(worker.pid), message="the pulse")
    [first] = pulses_of(worker.pid)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # even while it starts
        first.send_signal(signum)  # ignored: a pulse lives as long as its worker
    beat = float(connection.hget(KEYS.worker("steady"), "heartbeat"))
    wait_for(lambda: float(connection.hget(KEYS.worker("steady"), "heartbeat")) > beat + INTERVAL,
             timeout=5, message="two more beats")
    assert not exited(first) and pulses_of(worker.pid) == [first]
    first.kill()
    deadline = time.monotonic() + 3.0  # the worker TTL (2 s) and then some
    while time.monotonic() < deadline:
        assert connection.exists(KEYS.worker("steady"))  # the key never lapses meanwhile
        time.sleep(0.05)  # sampling: the behaviour is that the key exists all through the window
    [second] = pulses_of(worker.pid)
    assert second.pid != first.pid
    worker.wait_for_output("the pulse process that keeps its key alive exited")
    ttl = connection.pttl(KEYS.worker("steady"))
    assert 0 < ttl <= 2000


@pytest.mark.timeout(60)
def test_fork_children_do_not_hold_the_pulse_pipes(connection, queue, start_worker, tmp_path):
    """A fork child (fork mode) closes the worker's ends of the pulse pipes: only the worker
    keeps the pulse alive, so a killed worker's pulse stops at once."""
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=INTERVAL, LOGGING_LEVEL="WARNING")
    worker = start_worker("-c", config, "--name", "forker", "--mode", "fork", "default")
    job = queue.enqueue("tests.jobs_reliability.record", 30, job_timeout=-1)
    wait_for(lambda: connection.sismember(jobs_reliability.EXECUTED, job.id), timeout=15,
             message="the job running in its child")
    [pulse] = pulses_of(worker.pid)
    pipes = {os.readlink(f"/proc/{pulse.pid}/fd/{fd}") for fd in (0, 1)}
    assert all(p.startswith("pipe:") for p in pipes)
    children = [p for p in psutil.Process(worker.pid).children() if p.pid != pulse.pid]
    assert children, "no fork child"
    for child in children:
        held = {os.readlink(f"/proc/{child.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{child.pid}/fd")}
        assert not held & pipes
    assert sum(1 for fd in os.listdir(f"/proc/{worker.pid}/fd")
               if os.readlink(f"/proc/{worker.pid}/fd/{fd}") in pipes) == 2


@pytest.mark.timeout(90)
def test_under_the_pool_a_job_holding_the_gil_runs_once(start_pool, connection, queue):  # noqa: F811
    job = queue.enqueue(jobs_gil.hold_gil, HOLD, job_timeout=-1)
    pool = start_pool("-N", "2", config={"HEARTBEAT_INTERVAL": INTERVAL, "WORKER_TIMEOUT": 30})
    held = assert_ran_once_on(connection, job)
    print(f"\npool: held the GIL {held:.1f} s in {job.worker_name}; not recovered")
    assert job.worker_name.startswith(f"{POOL}.")
    pids = pool.worker_pids()
    assert len(pids) == 2 and all(len(pulses_of(pid)) == 1 for pid in pids.values())
    pool.killpg(signal.SIGTERM)
    assert pool.wait(20) == 0, pool.output()
    assert "heartbeat failed" not in pool.output()


# -- the connections the pulse imitates -----------------------------------------------------
def beats_through_its_pulse(connection, worker: WorkerProcess, name: str) -> None:
    """The worker's key is refreshed by its pulse (never by a thread of the worker)."""
    wait_for(lambda: registered(connection, name), timeout=15, message=f"worker {name}")
    [pulse] = wait_for(lambda: pulses_of(worker.pid), message="its pulse")
    first = float(connection.hget(KEYS.worker(name), "heartbeat"))
    wait_for(lambda: float(connection.hget(KEYS.worker(name), "heartbeat")) > first + 1,
             timeout=5, message="two beats")
    memory = pulse.memory_full_info()
    print(f"\npulse of worker {name}: RSS {memory.rss / 2**20:.1f} MB, "
          f"USS {memory.uss / 2**20:.1f} MB")
    worker.kill()
    out = worker.output()
    assert "beating from a thread" not in out and "heartbeat failed" not in out, out
    assert PASSWORD not in out
    wait_for(lambda: exited(pulse), timeout=5, message="the pulse to exit")


@pytest.mark.timeout(60)
def test_pulse_over_tls_with_an_acl_user(tls_server, tmp_path):  # noqa: F811
    settings = {"REDIS_URL": f"rediss://alice:{PASSWORD}@127.0.0.1:{tls_server.tls_port}/0",
                "HEARTBEAT_INTERVAL": INTERVAL, **tls_files(tls_server)}
    connection = connection_from_settings(settings)
    worker = WorkerProcess(["-c", write_config(tmp_path, **settings), "--name", "tls", "q"],
                           worker_env(f"redis://127.0.0.1:{tls_server.port}/0"))
    beats_through_its_pulse(connection, worker, "tls")


@pytest.mark.timeout(60)
def test_pulse_over_a_unix_socket_with_a_password(tmp_path):
    path = str(tmp_path / "redis.sock")
    with RedisServer(args=["--unixsocket", path, "--unixsocketperm", "700", *ALICE]) as server:
        url = f"unix://alice:{PASSWORD}@{path}?db=3"
        settings = {"REDIS_URL": url, "HEARTBEAT_INTERVAL": INTERVAL}
        connection = connection_from_settings(settings)
        worker = WorkerProcess(["-c", write_config(tmp_path, **settings), "--name", "unix", "q"],
                               worker_env(server.url))
        beats_through_its_pulse(connection, worker, "unix")


@pytest.mark.timeout(60)
def test_pulse_through_sentinel(tmp_path):
    with RedisServer(args=ALICE) as primary:
        sentinel = RedisServer(sentinel=[f"monitor main 127.0.0.1 {primary.port} 1"]).start()
        try:
            settings = {"REDIS_SENTINELS": [("127.0.0.1", sentinel.port)],
                        "REDIS_SENTINEL_MASTER": "main", "REDIS_USERNAME": "alice",
                        "REDIS_PASSWORD": PASSWORD, "REDIS_DB": 2, "HEARTBEAT_INTERVAL": INTERVAL}
            connection = connection_from_settings(settings)
            assert pulse_endpoint(connection)["sentinel"]["service"] == "main"
            worker = WorkerProcess(["-c", write_config(tmp_path, **settings), "--name",
                                    "sentinel", "q"], worker_env(primary.url))
            beats_through_its_pulse(connection, worker, "sentinel")
            assert redis.Redis(port=primary.port, db=2).exists(
                KEYS.worker("sentinel"))
        finally:
            sentinel.close()


def test_the_pulse_is_small(tmp_path, redis_url, connection):
    """Its memory, measured like the worker's (psutil), and its imports: no redis-py, no ssl."""
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=INTERVAL)
    worker = WorkerProcess(["-c", config, "--name", "small", "q"], worker_env(redis_url))
    try:
        [pulse] = wait_for(lambda: pulses_of(worker.pid), timeout=15, message="the pulse")
        first = float(connection.hget(KEYS.worker("small"), "heartbeat"))
        wait_for(lambda: float(connection.hget(KEYS.worker("small"), "heartbeat")) > first,
                 timeout=5, message="a beat of the pulse")  # it has loaded all it will load
        memory = pulse.memory_full_info()
        worker_memory = psutil.Process(worker.pid).memory_full_info()
        maps = open(f"/proc/{pulse.pid}/maps").read()
    finally:
        worker.kill()
    print(f"\npulse: RSS {memory.rss / 2**20:.1f} MB, USS {memory.uss / 2**20:.1f} MB "
          f"(its worker: RSS {worker_memory.rss / 2**20:.1f} MB, "
          f"USS {worker_memory.uss / 2**20:.1f} MB)")
    assert memory.uss < 8 * 2**20
    assert "_ssl" not in maps and "hiredis" not in maps


def test_import_geventq_starts_no_pulse():
    code = ("import geventq, psutil, os; "
            "print(len(psutil.Process(os.getpid()).children()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr


def test_the_endpoint_never_goes_on_a_command_line():
    """The pulse gets its password through its pipe: not in argv, not in its environment."""
    with RedisServer(args=ALICE) as server:
        url = server.url.replace("redis://", f"redis://alice:{PASSWORD}@")
        worker = WorkerProcess(["--name", "argv", "q"],
                               worker_env(server.url, GEVENTQ_URL=url))
        try:
            wait_for(lambda: pulses_of(worker.pid), timeout=15, message="the pulse")
            [pulse] = pulses_of(worker.pid)
            assert PASSWORD not in " ".join(pulse.cmdline())
            assert PASSWORD not in "".join(f"{k}={v}" for k, v in pulse.environ().items())
            assert Queue("q", connection=redis.Redis.from_url(url)).count == 0
        finally:
            worker.kill()


def test_without_a_pulse_the_worker_beats_from_its_thread(connection, redis_server, caplog):
    """A connection the pulse cannot imitate (here a custom connect function): the worker
    says why, and beats from a native thread as before, with the state it is given."""
    custom = redis.Redis(port=redis_server.port, redis_connect_func=lambda c: c.on_connect())
    beats = []

    def beat(state: str) -> None:
        beats.append(state)
        connection.hset("test:fallback", "state", state)

    liveness = Liveness("fallback", custom, {"state": "idle"}, beat, interval=0.05)
    liveness.start()
    try:
        assert liveness.pulse is None and "custom redis_connect_func" in liveness.why_no_pulse
        wait_for(lambda: len(beats) >= 2, message="two beats from the thread")
        liveness.set_state("suspended")
        wait_for(lambda: connection.hget("test:fallback", "state") == b"suspended",
                 message="the new state in a beat")
    finally:
        liveness.stop()
    assert "beating from a thread of the worker instead" in caplog.text
