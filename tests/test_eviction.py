"""Redis must not evict geventq's keys: workers check ``maxmemory-policy`` when they start.

The policy is set on the test's private Redis (CONFIG SET) and put back after
each test; real ``geventq worker``, ``geventq pool`` and ``geventq info`` runs.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from geventq import Queue
from geventq.defaults import EXIT_BOOT_ERROR
from geventq.eviction import eviction_warning
from geventq.keys import Keys
from tests.conftest import ROOT, worker_env
from tests.test_pool_integration import start_pool  # noqa: F401  (a fixture)
from tests.test_recovery import write_config

KEYS = Keys()


@pytest.fixture
def policy(connection):
    """policy('volatile-ttl') sets Redis' maxmemory-policy until the end of the test."""
    yield lambda name: connection.config_set("maxmemory-policy", name)
    connection.config_set("maxmemory-policy", "noeviction")


def geventq(*args: str, redis_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geventq", *args], env=worker_env(redis_url),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["volatile-ttl", "allkeys-lru"])
def test_a_worker_refuses_a_redis_that_may_evict(policy, connection, redis_url, name):
    policy(name)
    job = Queue(connection=connection).enqueue("tests.jobs.add", 1, 2)
    done = geventq("worker", "--burst", redis_url=redis_url)
    assert done.returncode == EXIT_BOOT_ERROR
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"geventq worker: Redis maxmemory-policy is {name}: ")
    assert "set maxmemory-policy noeviction" in lines[0] and "--allow-eviction" in lines[0]
    assert ("jobs are lost" if name.startswith("allkeys") else "run twice") in lines[0]
    assert not connection.smembers(KEYS.workers)  # refused before registering
    assert job.get_status() == "queued"


def test_allow_eviction_runs_with_a_warning(policy, connection, redis_url, tmp_path):
    policy("volatile-lru")
    job = Queue(connection=connection).enqueue("tests.jobs.add", 1, 2)
    config = write_config(tmp_path, ALLOW_EVICTION=True, WORKER_CLASS="geventq.SimpleWorker")
    done = geventq("worker", "--burst", "-c", config, redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    assert job.result == 3
    assert "WARNING geventq.worker: Redis maxmemory-policy is volatile-lru" in done.stderr
    assert "ALLOW_EVICTION is set: running anyway" in done.stderr
    again = geventq("worker", "--burst", "--allow-eviction", redis_url=redis_url)
    assert again.returncode == 0 and "running anyway" in again.stderr


def test_info_shows_a_warning_line(policy, redis_url):
    quiet = geventq("info", redis_url=redis_url)
    assert quiet.returncode == 0 and "WARNING" not in quiet.stdout
    policy("allkeys-random")
    loud = geventq("info", redis_url=redis_url)
    assert loud.returncode == 0, loud.stderr
    assert loud.stdout.strip().splitlines()[-1].startswith(
        "WARNING: Redis maxmemory-policy is allkeys-random")


def test_a_policy_that_cannot_be_read_is_a_warning(connection, redis_url):
    """An ACL user without INFO (as on some managed services): warn, and run."""
    connection.acl_setuser("noinfo", enabled=True, passwords=["+noinfo-pw"], keys=["*"],
                           channels=["*"], commands=["+@all", "-info"])
    try:
        job = Queue(connection=connection).enqueue("tests.jobs.add", 2, 2)
        url = redis_url.replace("redis://", "redis://noinfo:noinfo-pw@")
        done = geventq("worker", "--burst", "-u", url, redis_url=redis_url)
        assert done.returncode == 0, done.stderr
        assert job.result == 4
        assert "cannot read Redis' maxmemory-policy (INFO memory was refused)" in done.stderr
    finally:
        connection.acl_deluser("noinfo")


def test_the_pool_refuses_with_the_workers_line(policy, start_pool):  # noqa: F811
    policy("volatile-ttl")
    pool = start_pool("-N", "2")
    assert pool.wait(30) == EXIT_BOOT_ERROR
    last = pool.output().strip().splitlines()[-1]
    assert "exiting with code 3" in last and "could not start" in last
    assert "Redis maxmemory-policy is volatile-ttl" in last


def test_warnings_name_the_danger():
    assert eviction_warning("noeviction") is None
    assert "worker heartbeats" in eviction_warning("volatile-lfu")
    assert "jobs are lost" in eviction_warning("allkeys-lfu")
    assert "cannot read" in eviction_warning(None)
