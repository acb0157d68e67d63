"""geventq on a real local Redis Cluster (3 primaries, 3 replicas; tests/conftest.py).

The cluster is started once per session, only when a test here asks for it; each
test gets it healthy and empty (``cluster_connection``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta

import pytest
import redis
from click.testing import CliRunner
from redis.cluster import RedisCluster

from geventq import Dependency, Job, Queue, SimpleWorker, Worker
from geventq.cli import main
from geventq.connection import (
    clone_connection,
    connection_from_settings,
    describe_connection,
    get_connection,
    resolve_connection,
)
from geventq.exceptions import JobFailed, NoSuchJobError
from geventq.registry import ScheduledJobRegistry
from geventq.testing import free_port
from tests import jobs
from tests.conftest import ROOT, worker_env
from tests.helpers import wait_for
from tests.test_recovery import write_config

QUIET = ("--logging-level", "WARNING")


def keys_by_node(redis_cluster) -> dict[int, int]:
    """Port -> number of keys, for every primary that holds any."""
    counts = {}
    for node in redis_cluster.running():
        client = redis_cluster.client(node)
        try:
            if client.execute_command("ROLE")[0] in (b"master", "master") and client.dbsize():
                counts[node.port] = client.dbsize()
        finally:
            client.close()
    return counts


def prefixes_on_two_shards(redis_cluster) -> tuple[str, str]:
    """Two tagged prefixes whose slots live on different primaries."""
    first = "{emails}:"
    home = redis_cluster.primary_of(first).port
    for name in ("reports", "thumbnails", "billing", "search", "exports", "sms"):
        candidate = "{" + name + "}:"
        if redis_cluster.primary_of(candidate).port != home:
            return first, candidate
    raise AssertionError("no two candidate prefixes on different shards")


# -- without a cluster: the prefix rule and the harness's refusals ----------------------

@pytest.mark.parametrize("prefix, tag", [
    ("{geventq}:", "geventq"), ("app{emails}:", "emails"), ("{a}{b}:", "a"), ("{a:b}:x:", "a:b"),
    ("geventq:", None), ("{}:", None), ("{}{a}:", None), ("a{b:", None), ("a}b{:", None)])
def test_hash_tag_is_the_one_redis_hashes_by(prefix, tag):
    from redis.crc import key_slot

    from geventq.keys import hash_tag

    assert hash_tag(prefix) == tag
    if tag is not None:  # every key under the prefix has the tag's slot, whatever follows
        for suffix in ("queue:default", "job:x}{y", "}{z}"):
            assert key_slot((prefix + suffix).encode()) == key_slot(tag.encode())


def test_resolve_keys_in_cluster_mode(monkeypatch):
    from geventq.keys import Keys, resolve_keys

    monkeypatch.delenv("GEVENTQ_PREFIX", raising=False)
    assert resolve_keys(cluster=True).prefix == "{geventq}:"
    assert resolve_keys().prefix == "geventq:"
    assert resolve_keys(prefix="{x}:", cluster=True).prefix == "{x}:"
    with pytest.raises(ValueError, match=r"'\{geventq\}:'"):
        resolve_keys(Keys("geventq:"), cluster=True)


def _fake(tmp_path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


def test_the_harness_says_in_one_line_why_it_cannot_start_a_cluster(tmp_path):
    from geventq.testing import ClusterUnavailable, LocalRedisCluster, find_redis_server

    cases = [
        (dict(cli=str(tmp_path / "missing")), "cannot run"),
        (dict(cli=_fake(tmp_path, "old-cli", "echo redis-cli 4.0.9")), "needs Redis 5 or later"),
        (dict(cli=_fake(tmp_path, "cli", "echo redis-cli 7.0.15"),
              binary=_fake(tmp_path, "server", "exit 1")), "cannot run as a cluster node"),
    ]
    for kwargs, needle in cases:
        kwargs.setdefault("binary", find_redis_server())
        with pytest.raises(ClusterUnavailable, match=needle) as info:
            LocalRedisCluster(**kwargs).start()
        assert "\n" not in str(info.value)


def test_cluster_tests_fail_with_one_line_when_the_cluster_cannot_start(tmp_path):
    old_cli = _fake(tmp_path, "redis-cli", "echo redis-cli 4.0.9")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rE",
         "tests/test_cluster.py::test_default_prefix_on_a_cluster_is_tagged"],
        cwd=ROOT, env=dict(worker_env("redis://127.0.0.1:1"), GEVENTQ_REDIS_CLI=old_cli),
        capture_output=True, text=True, timeout=50)
    assert proc.returncode != 0 and "skipped" not in proc.stdout
    assert "1 error" in proc.stdout
    assert "cannot start a local Redis Cluster: " in proc.stdout and "needs Redis 5 or later" in proc.stdout


# -- connecting -----------------------------------------------------------------------

def test_get_connection_with_cluster_returns_a_redis_cluster(redis_cluster, cluster_connection):
    conn = get_connection(redis_cluster.urls[-1], cluster=True)  # any node seeds it
    assert isinstance(conn, RedisCluster)
    assert len(conn.get_primaries()) == 3
    described = describe_connection(conn)
    assert described.startswith("cluster nodes 127.0.0.1:")
    conn.close()


def test_settings_and_resolve_connection(redis_cluster, cluster_connection):
    conn = connection_from_settings({"REDIS_URL": redis_cluster.url, "REDIS_CLUSTER": True})
    assert isinstance(conn, RedisCluster)
    port = int(redis_cluster.url.rsplit(":", 1)[1])
    conn = connection_from_settings({"REDIS_HOST": "127.0.0.1", "REDIS_PORT": port,
                                     "REDIS_CLUSTER": True})
    assert isinstance(conn, RedisCluster)
    client = resolve_connection(conn)  # the client of {geventq}:'s slot
    assert isinstance(client, redis.Redis)
    assert client.ping() and client is resolve_connection(conn)  # one per cluster and slot
    assert client.connection_pool.route.primary()[1] == redis_cluster.primary_of("{geventq}:").port
    assert "cluster slot" in describe_connection(client)
    clone = clone_connection(client)  # for the heartbeat and sweep threads: its own pools
    assert clone is not client and clone.connection_pool is not client.connection_pool
    assert clone.set("{geventq}:probe", 1) and client.get("{geventq}:probe") == b"1"
    with pytest.raises(ValueError, match="decode_responses"):
        resolve_connection(RedisCluster.from_url(redis_cluster.url, decode_responses=True))


def test_bad_cluster_settings_are_refused_clearly():
    from geventq.exceptions import ConfigError

    with pytest.raises(ConfigError, match="REDIS_CLUSTER and REDIS_SENTINELS"):
        connection_from_settings({"REDIS_CLUSTER": True, "REDIS_SENTINELS": [("h", 1)],
                                  "REDIS_SENTINEL_MASTER": "m"})
    with pytest.raises(ConfigError, match="REDIS_CLUSTER must be True or False"):
        connection_from_settings({"REDIS_CLUSTER": "maybe"})
    with pytest.raises(ValueError, match="not a unix socket"):
        get_connection("unix:///tmp/redis.sock", cluster=True)


def test_unreachable_cluster_is_a_connection_error_without_the_password():
    url = f"redis://bob:Hush-9-secret@127.0.0.1:{free_port()}"
    with pytest.raises(redis.ConnectionError) as info:
        get_connection(url, cluster=True)
    assert "cannot reach the Redis Cluster" in str(info.value)
    assert "Hush-9-secret" not in str(info.value)


def test_worker_with_no_wait_and_no_cluster_exits_3_with_one_line(start_worker):
    url = f"redis://bob:Hush-9-secret@127.0.0.1:{free_port()}"
    worker = start_worker("--cluster", "--no-wait", env_extra={"REDIS_URL": url})
    assert worker.wait(20) == 3
    lines = worker.output().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geventq worker: cannot reach the Redis Cluster at "
                                                    "redis://bob:***@127.0.0.1:")
    assert "Hush-9-secret" not in lines[0]


# -- prefixes ---------------------------------------------------------------------------

def test_default_prefix_on_a_cluster_is_tagged(cluster_connection):
    q = Queue("default", connection=cluster_connection)
    assert q.keys.prefix == "{geventq}:"


def test_untagged_prefix_is_refused_with_a_tagged_one_named(cluster_connection, monkeypatch, tmp_path):
    for bad in ("geventq:", "myapp:", "{}:", "a{b:"):
        with pytest.raises(ValueError, match=r"no hash tag.*'\{"):
            Queue("default", connection=cluster_connection, prefix=bad)
    with pytest.raises(ValueError, match=r"'\{myapp\}:'"):
        Worker(["default"], connection=cluster_connection, prefix="myapp:")
    monkeypatch.setenv("GEVENTQ_PREFIX", "myapp:")
    with pytest.raises(ValueError, match="no hash tag"):
        Job.fetch("x", connection=cluster_connection)
    monkeypatch.delenv("GEVENTQ_PREFIX")
    url = cluster_connection.get_nodes()[0]
    result = CliRunner().invoke(main, ["info", "--cluster", "--prefix", "myapp:", "-u",
                                       f"redis://{url.host}:{url.port}"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "geventq info: key prefix 'myapp:' has no hash tag: in Redis Cluster mode every key of a "
        "prefix must share one hash slot; use a prefix such as '{myapp}:' (the text in braces is "
        "the hash tag)"]
    config = write_config(tmp_path, REDIS_CLUSTER=True, PREFIX="myapp:",
                          REDIS_URL=f"redis://{url.host}:{url.port}")
    result = CliRunner().invoke(main, ["info", "-c", config])
    assert result.exit_code == 1 and "'{myapp}:'" in result.output
    assert cluster_connection.dbsize() == 0  # nothing was written anywhere


def test_two_prefixes_land_on_different_shards(redis_cluster, cluster_connection):
    first, second = prefixes_on_two_shards(redis_cluster)
    emails = Queue("default", connection=cluster_connection, prefix=first)
    reports = Queue("default", connection=cluster_connection, prefix=second)
    e_jobs = [emails.enqueue(jobs.add, i, 1) for i in range(5)]
    r_jobs = [reports.enqueue(jobs.add, i, 2) for i in range(3)]
    SimpleWorker([emails], connection=cluster_connection).work(burst=True)
    assert emails.finished_job_registry.count == 5 and len(reports) == 3  # a worker serves one prefix
    SimpleWorker(["default"], connection=cluster_connection, prefix=second).work(burst=True)
    assert [j.return_value() for j in e_jobs + r_jobs] == [1, 2, 3, 4, 5, 2, 3, 4]
    nodes = keys_by_node(redis_cluster)
    assert set(nodes) == {redis_cluster.primary_of(first).port, redis_cluster.primary_of(second).port}


def test_dependency_across_prefixes_is_refused(cluster_connection):
    a = Queue("default", connection=cluster_connection, prefix="{a}:")
    b = Queue("default", connection=cluster_connection, prefix="{b}:")
    parent = a.enqueue(jobs.noop)
    with pytest.raises(ValueError, match="can depend only on jobs of its own prefix"):
        b.enqueue(jobs.noop, depends_on=parent)
    with pytest.raises(NoSuchJobError):  # an id is looked up under the queue's own prefix
        b.enqueue(jobs.noop, depends_on=parent.id)
    assert len(b) == 0 and b.deferred_job_registry.count == 0


# -- jobs and queues ------------------------------------------------------------------------

def test_enqueue_single_bulk_dependencies_and_scheduled(redis_cluster, cluster_connection):
    q = Queue("default", connection=cluster_connection)
    single = q.enqueue(jobs.add, 1, 2)
    bulk = q.enqueue_many([Queue.prepare_data(jobs.add, (i, i)) for i in range(50)])
    child = q.enqueue(jobs.add, 3, 4, depends_on=Dependency(jobs=[single, bulk[0]]))
    later = q.enqueue_in(timedelta(hours=1), jobs.noop)
    assert len(q) == 51 and q.job_ids[0] == single.id
    assert child.get_status() == "deferred" and child.id in q.deferred_job_registry
    assert later.get_status() == "scheduled" and later.id in ScheduledJobRegistry(queue=q)
    # every key of the prefix is on one node: the primary of {geventq}'s slot
    assert set(keys_by_node(redis_cluster)) == {redis_cluster.primary_of("{geventq}:").port}
    SimpleWorker([q], connection=cluster_connection).work(burst=True)
    assert child.get_status() == "finished" and child.return_value() == 7
    assert q.finished_job_registry.count == 52 and len(q) == 0  # the scheduled one waits


def test_job_fetch_wait_cancel_requeue_delete(cluster_connection):
    q = Queue("default", connection=cluster_connection)
    job = q.enqueue(jobs.add, 2, 3)
    failing = q.enqueue(jobs.fail, "nope")
    canceled = q.enqueue(jobs.noop)
    fetched = Job.fetch(job.id, connection=cluster_connection)
    assert fetched.func_name == "tests.jobs.add" and fetched.args == (2, 3)
    assert [j.id for j in Job.fetch_many([job.id, failing.id], connection=cluster_connection)] == \
        [job.id, failing.id]
    canceled.cancel()
    assert canceled.get_status() == "canceled" and canceled.id in q.canceled_job_registry
    SimpleWorker([q], connection=cluster_connection).work(burst=True)
    assert fetched.wait(timeout=5) == 5
    with pytest.raises(JobFailed, match="nope"):
        failing.wait(timeout=5)
    assert failing.id in q.failed_job_registry
    q.failed_job_registry.requeue(failing.id)
    assert failing.get_status() == "queued" and q.job_ids == [failing.id]
    failing.delete()
    assert len(q) == 0
    with pytest.raises(NoSuchJobError):
        Job.fetch(failing.id, connection=cluster_connection)


GEVENT_WORKER = """
from gevent import monkey; monkey.patch_all()
import sys
from geventq import GeventWorker, Queue
from geventq.connection import get_connection
connection = get_connection(sys.argv[1], cluster=True)
worker = GeventWorker([Queue("default", connection=connection)], connection=connection, concurrency=20)
worker.work(burst=True)
print("done", worker.name)
"""


def test_gevent_worker_drains_a_queue_through_the_library_api(redis_cluster, cluster_connection):
    # a GeventWorker needs a gevent-patched process: this one is made by the library API alone
    q = Queue("default", connection=cluster_connection)
    ids = [j.id for j in q.enqueue_many([Queue.prepare_data(jobs.add, (i, 1)) for i in range(200)])]
    proc = subprocess.run([sys.executable, "-c", GEVENT_WORKER, redis_cluster.urls[1]], cwd=ROOT,
                          env=worker_env(redis_cluster.url), capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("done ")
    assert q.finished_job_registry.count == 200 and len(q) == 0
    assert sorted(j.return_value() for j in Job.fetch_many(ids, connection=cluster_connection)) == \
        list(range(1, 201))
    assert Worker.count(connection=cluster_connection) == 0  # it unregistered


def test_a_slot_client_refuses_keys_of_another_slot(cluster_connection):
    client = resolve_connection(cluster_connection)
    assert client.set("{geventq}:mine", 1)
    # a key of another slot whose primary is elsewhere
    other = next(f"{{k{i}}}" for i in range(100)
                 if cluster_connection.get_node_from_key(f"{{k{i}}}").port !=
                 cluster_connection.get_node_from_key("{geventq}").port)
    with pytest.raises(redis.ResponseError, match="serves only keys of its prefix"):
        client.set(other, 1)
    assert client.get("{geventq}:mine") == b"1"  # the client is still usable


# -- processes and the command line ---------------------------------------------------------

def test_workers_info_and_stop_through_the_command_line(redis_cluster, cluster_connection,
                                                        start_worker):
    q = Queue("default", connection=cluster_connection)
    done = [q.enqueue(jobs.add, i, i) for i in range(20)]
    long_job = q.enqueue(jobs.sleep, 30)
    worker = start_worker("--cluster", "--name", "on-cluster", "-n", "5", *QUIET,
                          env_extra={"REDIS_URL": redis_cluster.url})
    wait_for(lambda: long_job.get_status() == "started", timeout=20, message="the long job running")
    assert all(j.wait(timeout=10) == 2 * i for i, j in enumerate(done))
    url = ["-u", redis_cluster.urls[-1]]
    result = CliRunner().invoke(main, ["info", "--cluster", *url])
    assert result.exit_code == 0, result.output
    assert "finished 20" in result.output and "started 1" in result.output
    assert "on-cluster" in result.output and "1 worker(s)" in result.output
    # pub/sub reaches the worker through its prefix's primary
    result = CliRunner().invoke(main, ["stop", long_job.id, "--cluster", *url])
    assert result.exit_code == 0, result.output
    wait_for(lambda: long_job.get_status() == "stopped", message="the job stopped on request")
    result = CliRunner().invoke(main, ["info", *url])  # without --cluster: one clear line
    assert result.exit_code == 1
    assert "node of a Redis Cluster: add --cluster" in result.output
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert Worker.count(connection=cluster_connection) == 0


def test_worker_without_cluster_option_on_a_cluster_node_exits_3(redis_cluster, start_worker):
    worker = start_worker("--burst", env_extra={"REDIS_URL": redis_cluster.url})
    assert worker.wait(20) == 3
    lines = worker.output().strip().splitlines()
    assert len(lines) == 1 and "node of a Redis Cluster: start the worker with --cluster" in lines[0]


def test_pool_passes_cluster_on_to_its_workers(redis_cluster, cluster_connection):
    q = Queue("default", connection=cluster_connection)
    ids = [j.id for j in q.enqueue_many([Queue.prepare_data(jobs.add, (i, 1)) for i in range(100)])]
    proc = subprocess.run(
        [sys.executable, "-m", "geventq", "pool", "--cluster", "-N", "2", "--burst", "--pool-name",
         "clusterpool", *QUIET, "default"], cwd=ROOT, env=worker_env(redis_cluster.urls[2]),
        capture_output=True, text=True, timeout=50, start_new_session=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert q.finished_job_registry.count == 100
    names = {j.worker_name for j in Job.fetch_many(ids, connection=cluster_connection)}
    assert names and all(name.startswith("clusterpool.") for name in names)
