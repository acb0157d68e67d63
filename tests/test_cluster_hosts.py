"""Several hosts, simulated: two ``geventq pool`` processes with different names on one cluster.

Both pools serve the same prefix and queue, as two machines would. They share the
jobs, ``Worker.all`` and ``geventq info --cluster`` see both, and when one whole pool
dies at once (its launcher and every worker SIGKILLed, as when a host loses power)
the other pool's workers recover its jobs: every job ends, none is lost; only jobs
that were in flight on the dead pool may run twice (at-least-once), and those are
counted apart. Figures are printed (-s).
"""

from __future__ import annotations

import os
import signal
import sys
import time

import psutil
import pytest
from click.testing import CliRunner

from geventq import Job, Queue, Worker
from geventq.cli import main
from tests import jobs_cluster
from tests.conftest import worker_env
from tests.helpers import wait_for
from tests.test_pool_integration import PoolProcess
from tests.test_recovery import write_config

HOSTS = ("host-a", "host-b")


@pytest.fixture
def start_cluster_pool(tmp_path, redis_cluster):
    """start_cluster_pool(name) -> a real `geventq pool --pool-name name` of 2 workers x 10."""
    config = write_config(tmp_path, "settings_hosts.py", REDIS_CLUSTER=True,
                          REDIS_URL=redis_cluster.url, HEARTBEAT_INTERVAL=0.5, CONCURRENCY=10,
                          LOGGING_LEVEL="WARNING")
    pools: list[PoolProcess] = []

    def start(name: str) -> PoolProcess:
        argv = [sys.executable, "-m", "geventq", "pool", "-c", config, "-N", "2",
                "--pool-name", name, "default"]
        pool = PoolProcess(argv, worker_env(redis_cluster.url), str(tmp_path / f"{name}.log"))
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        pool.cleanup()


def kill_whole_pool(pool: PoolProcess) -> float:
    """SIGKILL the launcher and every process under it, leaving none a chance to clean up.

    Workers run in process groups of their own and get a warm SIGTERM when their
    launcher dies; a host that loses power gives them nothing. The launcher is
    stopped first so that it cannot start a replacement while its workers die.
    Returns the moment (``time.monotonic()``) the last one was killed.
    """
    launcher = psutil.Process(pool.proc.pid)
    launcher.suspend()
    procs = launcher.children(recursive=True)
    for group in {os.getpgid(p.pid) for p in procs if p.is_running()} - {os.getpgid(0)}:
        os.killpg(group, signal.SIGKILL)
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    os.killpg(pool.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    assert pool.proc.wait(10) == -signal.SIGKILL
    return killed


def info(redis_cluster) -> str:
    result = CliRunner().invoke(main, ["info", "--cluster", "-u", redis_cluster.urls[-1]])
    assert result.exit_code == 0, result.output
    return result.output


def pools_of(workers) -> dict[str, int]:
    counts: dict[str, int] = {}
    for worker in workers:
        counts[worker.pool] = counts.get(worker.pool, 0) + 1
    return counts


@pytest.mark.timeout(120)
def test_two_pools_share_the_jobs_and_one_killed_whole_loses_none(
        redis_cluster, cluster_connection, start_cluster_pool):
    total = 400  # enough that the survivor still has jobs of its own when the dead are found
    queue = Queue("default", connection=cluster_connection)
    keys = queue.keys
    pools = {name: start_cluster_pool(name) for name in HOSTS}
    wait_for(lambda: pools_of(Worker.all(connection=cluster_connection)) == {n: 2 for n in HOSTS},
             timeout=40, message="two workers in each pool")
    shown = info(redis_cluster)
    assert "4 worker(s)" in shown
    assert all(f"pool {name}: 2 worker(s)" in shown for name in HOSTS), shown
    ids = [j.id for j in queue.enqueue_many(
        [Queue.prepare_data(jobs_cluster.record, (0.2,)) for _ in range(total)])]

    victim, survivor = HOSTS
    victims = [w.name for w in Worker.all(connection=cluster_connection) if w.pool == victim]

    def victim_busy() -> bool:
        return queue.finished_job_registry.count >= 100 and all(
            queue.connection.scard(keys.worker_jobs(name)) > 0 for name in victims)

    wait_for(victim_busy, timeout=40, message=f"{victim}'s workers running jobs")
    killed = kill_whole_pool(pools[victim])
    # what the dead pool held: claimed, running, or run but not yet recorded as ended
    in_flight = set().union(*(
        {m.decode() for m in queue.connection.smembers(keys.worker_jobs(name))} for name in victims))
    assert in_flight

    def recovered() -> bool:  # the dead workers are gone and their jobs are back in play
        return not any(queue.connection.exists(keys.worker(n), keys.worker_jobs(n)) for n in victims)

    wait_for(recovered, timeout=30, message=f"{victim}'s workers to be found dead and recovered")
    requeued = time.monotonic() - killed
    wait_for(lambda: all(s == "finished" for s in (j.get_status() for j in Job.fetch_many(
        sorted(in_flight), connection=cluster_connection))), timeout=30,
             message=f"the jobs {victim} held to finish on {survivor}")
    rerun = time.monotonic() - killed
    wait_for(lambda: queue.finished_job_registry.count == total, timeout=60,
             message=f"all {total} jobs finished")
    done = time.monotonic() - killed

    runs = dict(zip(ids, jobs_cluster.executions(queue.connection, keys.prefix, ids)))
    doubles = {job_id for job_id, n in runs.items() if n > 1}
    ran_by = pools_of_jobs(cluster_connection, ids)
    print(f"\nSeveral hosts: {victim} SIGKILLed whole (launcher + 2 workers) holding "
          f"{len(in_flight)} jobs; found dead and its jobs requeued {requeued:.2f} s after "
          f"(heartbeat 0.5 s, TTL 2 s), all of them done {rerun:.2f} s after; all {total} done "
          f"{done:.1f} s after; ended by pool {ran_by}; run twice {len(doubles)} (all among "
          f"the {len(in_flight)} in flight)")
    assert all(n >= 1 for n in runs.values())  # none lost
    assert all(n <= 2 for n in runs.values()) and doubles <= in_flight  # at-least-once, only there
    assert queue.failed_job_registry.count == 0
    assert queue.count == 0 and queue.started_job_registry.count == 0
    assert ran_by.get(victim, 0) > 0 and ran_by.get(survivor, 0) > 0  # the jobs were shared
    assert pools_of(Worker.all(connection=cluster_connection)) == {survivor: 2}, \
        [(w.name, w.record) for w in Worker.all(connection=cluster_connection)]
    shown = info(redis_cluster)
    assert f"pool {survivor}: 2 worker(s)" in shown and victim not in shown
    assert f"finished {total}" in shown
    pools[survivor].killpg(signal.SIGTERM)
    assert pools[survivor].wait(30) == 0
    assert "Traceback" not in pools[survivor].output()


def pools_of_jobs(connection, ids: list[str]) -> dict[str, int]:
    """Pool name -> how many of these jobs a worker of that pool ended (pool.slot.generation)."""
    counts: dict[str, int] = {}
    for job in Job.fetch_many(ids, connection=connection):
        pool = (job.worker_name or "?").split(".")[0]
        counts[pool] = counts.get(pool, 0) + 1
    return counts
