"""Workers, the scheduler, retries, dependencies and the dashboard on a real Redis Cluster.

Real ``geventq worker --cluster`` processes where timing and processes matter; the
dashboard through Flask's test client with a cluster connection. Every test gets the
session's cluster (tests/conftest.py) healthy and empty. The "several hosts" test
(two pools, one SIGKILLed whole) is in tests/test_cluster_hosts.py.
"""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from geventq import Dependency, Job, Queue, Retry, Worker
from geventq.cli import main
from tests import jobs, jobs_cluster, jobs_sched
from tests.dashboard_support import make_failed
from tests.helpers import wait_for
from tests.test_cluster import QUIET, keys_by_node, prefixes_on_two_shards
from tests.test_recovery import write_config

# the margin a scheduled job may run late: the scheduler's poll plus a busy 2-core machine
LATE = 1.5


def started_after(job: Job, moment: float) -> float:
    job.refresh()
    return job.started_at.timestamp() - moment


@pytest.mark.timeout(60)
def test_scheduler_retries_and_dependencies_with_a_worker_process(redis_cluster, cluster_connection,
                                                                  start_worker):
    q = Queue("default", connection=cluster_connection)
    runs, tries = q.keys.prefix + "test:runs", q.keys.prefix + "test:tries"  # the job's own slot
    worker = start_worker("--cluster", "--with-scheduler", "--name", "sched", "-n", "5", *QUIET,
                          env_extra={"REDIS_URL": redis_cluster.url})
    wait_for(lambda: q.connection.get(q.keys.scheduler_lock), timeout=20,
             message="the worker's scheduler to take its lock")
    now = datetime.now(timezone.utc)
    enqueued = now.timestamp()
    in_2s = q.enqueue_in(timedelta(seconds=2), jobs_sched.record_run, runs)
    at_3s = q.enqueue_at(now + timedelta(seconds=3), jobs_sched.record_run, runs)
    retried = q.enqueue(jobs_sched.fail_and_record, tries, retry=Retry(max=2, interval=[1, 2]))
    parent = q.enqueue(jobs_sched.add, 1, 2)
    child = q.enqueue(jobs_sched.add, 3, 4, depends_on=parent)
    # waits for a job of the chain and for the scheduled one: released only after both ran
    last = q.enqueue(jobs_sched.add, 5, 6, depends_on=Dependency(jobs=[child, in_2s]))
    bad = q.enqueue(jobs_sched.fail, "parent fails")
    blocked = q.enqueue(jobs_sched.add, 0, 0, depends_on=bad)
    tolerant = q.enqueue(jobs_sched.add, 7, 8, depends_on=Dependency(jobs=[bad], allow_failure=True))
    wait_for(lambda: retried.get_status() == "scheduled", timeout=10, message="first retry scheduled")
    assert retried.id in q.scheduled_job_registry and retried.id not in q.failed_job_registry

    wait_for(lambda: {j.get_status() for j in (in_2s, at_3s, last, tolerant)} == {"finished"},
             timeout=20, message="the scheduled jobs and the dependents to finish")
    wait_for(lambda: retried.get_status() == "failed", timeout=15, message="the retried job's end")
    assert 2.0 <= started_after(in_2s, enqueued) <= 2.0 + LATE
    assert 3.0 <= started_after(at_3s, enqueued) <= 3.0 + LATE
    starts = [float(t) for t in q.connection.lrange(tries, 0, -1)]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 3 and 1.0 <= gaps[0] < 1.0 + LATE and 2.0 <= gaps[1] < 2.0 + LATE, gaps
    retried.refresh()
    assert len(retried.exc_history) == 3 and retried.id in q.failed_job_registry
    assert [child.return_value(), last.return_value(), tolerant.return_value()] == [7, 11, 15]
    in_2s.refresh()
    assert started_after(last, in_2s.ended_at.timestamp()) >= 0
    assert blocked.get_status() == "deferred" and blocked.id in q.deferred_job_registry
    # the job of the scheduler lock, the retries and the dependents: all on one shard
    assert set(keys_by_node(redis_cluster)) == {redis_cluster.primary_of(q.keys.prefix).port}
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0
    assert "Traceback" not in worker.output()


@pytest.mark.timeout(60)
def test_two_prefixes_served_by_two_worker_processes(redis_cluster, cluster_connection, start_worker):
    prefixes = prefixes_on_two_shards(redis_cluster)
    names = {prefixes[0]: "emails-worker", prefixes[1]: "reports-worker"}
    procs = [start_worker("--cluster", "--prefix", prefix, "--name", name, "-n", "5", *QUIET,
                          env_extra={"REDIS_URL": redis_cluster.url})
             for prefix, name in names.items()]
    queues = {p: Queue("default", connection=cluster_connection, prefix=p) for p in prefixes}
    enqueued = {p: [q.enqueue(jobs_cluster.where, p) for _ in range(20)] for p, q in queues.items()}
    for prefix, queue in queues.items():
        wait_for(lambda queue=queue: queue.finished_job_registry.count == 20, timeout=30,
                 message=f"the jobs of {prefix} to finish")
    for prefix, done in enqueued.items():
        port = redis_cluster.primary_of(prefix).port
        # each job ran on its own prefix's worker, and its connection was its prefix's shard
        done = Job.fetch_many([j.id for j in done], connection=cluster_connection, prefix=prefix)
        assert {(j.worker_name, tuple(j.return_value())) for j in done} == \
            {(names[prefix], (prefix, port))}
        assert [w.name for w in Worker.all(connection=cluster_connection, prefix=prefix)] == [names[prefix]]
        result = CliRunner().invoke(main, ["info", "--cluster", "--prefix", prefix, "-u",
                                           redis_cluster.urls[-1]])
        assert result.exit_code == 0, result.output
        other = names[prefixes[1] if prefix == prefixes[0] else prefixes[0]]
        assert "1 worker(s)" in result.output and "finished 20" in result.output
        assert names[prefix] in result.output and other not in result.output
    for proc in procs:
        proc.signal(signal.SIGTERM)
    for proc in procs:
        assert proc.wait(20) == 0
    assert all(Worker.count(connection=cluster_connection, prefix=p) == 0 for p in prefixes)


def test_dashboard_api_on_a_cluster_lists_queues_and_requeues(redis_cluster, cluster_connection,
                                                              monkeypatch):
    pytest.importorskip("flask", reason="the dashboard needs Flask (the test extra installs it)")
    from geventq.dashboard import create_app

    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    monkeypatch.delenv("GEVENTQ_PREFIX", raising=False)
    failed = make_failed(cluster_connection, 3)
    Queue("other", connection=cluster_connection).enqueue(jobs.noop)
    client = create_app(cluster_connection).test_client()  # the default prefix: {geventq}:
    listed = {q["name"]: q for q in client.get("/api/queues").get_json()}
    assert (listed["default"]["failed"], listed["other"]["queued"]) == (3, 1)
    assert client.get(f"/api/jobs/{failed[0]}").get_json()["status"] == "failed"
    reply = client.post("/api/queues/default/failed/requeue", json={"ids": failed[:2]})
    assert reply.status_code == 200 and reply.get_json() == {"requeued": 2}
    assert [Job.fetch(i, connection=cluster_connection).get_status() for i in failed] == \
        ["queued", "queued", "failed"]
    assert Queue("default", connection=cluster_connection).job_ids == failed[:2]
    # a dashboard per prefix: another prefix's shard, its own queues
    _, second = prefixes_on_two_shards(redis_cluster)
    Queue("reports", connection=cluster_connection, prefix=second).enqueue(jobs.noop)
    other = create_app(cluster_connection, prefix=second).test_client()
    assert [q["name"] for q in other.get("/api/queues").get_json()] == ["reports"]
    with pytest.raises(ValueError, match=r"no hash tag.*'\{myapp\}:'"):
        create_app(cluster_connection, prefix="myapp:")


# -- liveness: the pulse process on a cluster ------------------------------------------------

def test_a_cluster_worker_beats_through_its_pulse_on_its_slots_primary(
        redis_cluster, cluster_connection, start_worker, tmp_path):
    q = Queue("default", connection=cluster_connection)
    config = write_config(tmp_path, REDIS_CLUSTER=True, REDIS_URL=redis_cluster.urls[-1],
                          HEARTBEAT_INTERVAL=0.5)  # a worker TTL of 2 s
    worker = start_worker("-c", config, "--name", "beating", "default")
    key = q.keys.worker("beating")
    wait_for(lambda: q.connection.hget(key, "heartbeat"), timeout=20, message="the worker")
    first = float(q.connection.hget(key, "heartbeat"))
    # beats well past the TTL: the key never lapses, and is refreshed by the pulse
    wait_for(lambda: float(q.connection.hget(key, "heartbeat") or 0) > first + 3, timeout=8,
             message="beats for more than the worker TTL")
    assert q.connection.ttl(key) > 0 and Worker.count(connection=cluster_connection) == 1
    worker.kill()
    out = worker.output()
    assert "heartbeat failed" not in out and "beating from a thread" not in out, out


def test_the_pulse_follows_moved_to_the_slots_primary(redis_cluster, cluster_connection):
    from geventq.connection import pulse_endpoint, resolve_connection
    from geventq.pulse import Pulse

    client = resolve_connection(cluster_connection)
    keys = Queue("default", connection=cluster_connection).keys
    endpoint = pulse_endpoint(client)
    primary = list(client.connection_pool.route.primary())
    assert endpoint["cluster"][0] == primary and "address" not in endpoint
    # the slot moved since the worker started: the nodes it knows first redirect it
    endpoint["cluster"] = [a for a in endpoint["cluster"] if a != primary] + [primary]
    pulse = Pulse({"key": keys.worker("p"), "workers": keys.workers, "name": "p",
                   "interval": 1.0, "ttl": 3, "endpoint": endpoint})
    try:
        assert pulse.beat() == 1.0 and pulse.failures == 0
        assert pulse.endpoint["cluster"][0] == primary
        assert client.ttl(keys.worker("p")) == 3 and client.sismember(keys.workers, "p")
    finally:
        if pulse.link is not None:
            pulse.link.close()
