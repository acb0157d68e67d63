"""A Redis Cluster failover in the middle of a run: the primary of the prefix's slot is killed.

Real ``geventq worker --cluster`` processes drain the queue while the primary that
holds ``{geventq}``'s slot is SIGKILLed; its replica is promoted by the cluster
itself. Every job must still end, none lost. Figures are printed (-s).
"""

from __future__ import annotations

import signal
import time

import pytest

from geventq import Queue, Worker
from tests import jobs_cluster
from tests.helpers import quietly, wait_for
from tests.test_recovery import write_config


@pytest.mark.timeout(90)
def test_primary_of_the_prefix_killed_mid_run(redis_cluster, cluster_connection, start_worker,
                                               tmp_path):
    total = 600
    queue = Queue("default", connection=cluster_connection)
    ids = [j.id for j in queue.enqueue_many(
        [Queue.prepare_data(jobs_cluster.record, (0.02,)) for _ in range(total)])]
    # the replica has every job before the kill (a failover loses unreplicated writes:
    # docs/reliability.md, case 3)
    assert queue.connection.execute_command("WAIT", 1, 5000) == 1
    config = write_config(tmp_path, REDIS_CLUSTER=True, REDIS_URL=redis_cluster.url,
                          HEARTBEAT_INTERVAL=1, CONCURRENCY=10, LOGGING_LEVEL="WARNING")
    workers = [start_worker("-c", config, "default") for _ in range(2)]
    wait_for(lambda: queue.finished_job_registry.count >= 150, timeout=30,
             message="jobs running on the first primary")
    before = queue.finished_job_registry.count
    old = redis_cluster.kill_primary_of(queue.key)
    killed = time.monotonic()
    new = redis_cluster.wait_for_promotion(queue.key, old, timeout=30)
    promoted = time.monotonic() - killed
    wait_for(quietly(lambda: queue.finished_job_registry.count > before), timeout=30,
             message="jobs finishing on the promoted replica")
    resumed = time.monotonic() - killed
    wait_for(quietly(lambda: queue.finished_job_registry.count == total), timeout=40,
             message=f"all {total} jobs finished")
    runs = jobs_cluster.executions(queue.connection, queue.keys.prefix, ids)
    print(f"\nCluster failover: replica {new.port} promoted {promoted:.2f} s after primary "
          f"{old.port} was killed; jobs finishing again {resumed:.2f} s after the kill; all "
          f"{total} done {time.monotonic() - killed:.1f} s after; double executions "
          f"{sum(n - 1 for n in runs if n > 1)}")
    assert all(n >= 1 for n in runs)  # none lost
    assert queue.failed_job_registry.count == 0
    assert queue.count == 0 and queue.started_job_registry.count == 0
    assert queue.connection.connection_pool.route.primary()[1] == new.port
    # the workers' pulses followed the slot to the new primary: their keys are beaten there
    promoted_at = time.time() - (time.monotonic() - killed - promoted)

    def beaten_since_promotion() -> bool:
        names = [w.name for w in Worker.all(connection=cluster_connection)]
        beats = [queue.connection.hget(queue.keys.worker(name), "heartbeat") for name in names]
        return len(names) == 2 and all(b and float(b) > promoted_at for b in beats)

    wait_for(quietly(beaten_since_promotion), timeout=10, message="heartbeats on the new primary")
    for worker in workers:
        assert worker.proc.poll() is None  # carried on
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(20) == 0
        assert "Traceback" not in worker.output()
