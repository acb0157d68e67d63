"""Redis faults: restarts, killed connections, Redis down at start, a Sentinel failover.

Each test starts its own redis-server(s) with geventq.testing.RedisServer and
real `geventq worker` processes pointed at them. Figures are printed (-s).
"""

from __future__ import annotations

import time

import pytest
import redis

from geventq import Queue
from geventq.connection import clone_connection, connection_from_settings, describe_connection
from geventq.control import send_stop_job_command
from geventq.exceptions import InvalidJobOperation
from geventq.keys import Keys
from geventq.testing import RedisServer, free_port
from tests import jobs_reliability as jobs
from tests.helpers import quietly, wait_for
from tests.test_recovery import write_config

KEYS = Keys()


def outcome(queue: Queue, ids: list[str], connection) -> tuple[int, int, int]:
    """(finished, failed, double executions) of these jobs."""
    counts = jobs.executions(connection, ids)
    return (queue.finished_job_registry.count, queue.failed_job_registry.count,
            sum(n - 1 for n in counts if n > 1))


@pytest.mark.timeout(60)
def test_redis_restart_in_the_middle_of_the_jobs(start_worker, tmp_path):
    with RedisServer(persistent=True, args=["--appendonly", "yes"]) as server:
        connection = redis.Redis(port=server.port)
        queue = Queue("default", connection=connection)
        ids = [j.id for j in queue.enqueue_many(
            [Queue.prepare_data(jobs.record, (0.01,)) for _ in range(1000)])]
        config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, CONCURRENCY=20,
                              LOGGING_LEVEL="WARNING")
        workers = [start_worker("-c", config, "default", env_extra={"REDIS_URL": server.url})
                   for _ in range(2)]
        wait_for(lambda: queue.finished_job_registry.count >= 250, timeout=20,
                 message="a quarter of the jobs done")
        server.stop()  # SIGTERM: Redis writes its append-only file and exits
        stopped = time.monotonic()
        time.sleep(3)  # the outage itself (longer than redis-py's own retries and the TTL)
        server.start()
        back = time.monotonic()
        before = queue.finished_job_registry.count
        wait_for(quietly(lambda: queue.finished_job_registry.count > before), timeout=20,
                 message="jobs finishing again")
        resumed = time.monotonic() - back
        wait_for(quietly(lambda: queue.finished_job_registry.count == 1000), timeout=30,
                 message="all 1000 jobs finished")
        finished, failed, duplicates = outcome(queue, ids, connection)
        print(f"\nRedis restart: down {back - stopped:.1f} s; jobs finishing again "
              f"{resumed:.2f} s after it came back; all 1000 done "
              f"{time.monotonic() - back:.1f} s after; double executions {duplicates}")
        assert (finished, failed) == (1000, 0)
        assert queue.count == 0 and queue.started_job_registry.count == 0
        for worker in workers:
            assert worker.proc.poll() is None  # carried on
        connection.close()


def test_client_kill_during_work(connection, queue, start_worker, tmp_path):
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, CONCURRENCY=20,
                          LOGGING_LEVEL="WARNING")
    ids = [j.id for j in queue.enqueue_many(
        [Queue.prepare_data(jobs.record, (0.03,)) for _ in range(600)])]
    workers = [start_worker("-c", config, "default") for _ in range(2)]
    long_job = Queue("long", connection=connection).enqueue(jobs.record, 60)
    workers.append(start_worker("-c", config, "long"))
    wait_for(lambda: queue.finished_job_registry.count >= 100, timeout=20,
             message="jobs running")
    for _ in range(4):
        before = queue.finished_job_registry.count
        killed = connection.client_kill_filter(_type="normal")
        killed += connection.client_kill_filter(_type="pubsub")  # the stop listeners too
        at = time.monotonic()
        wait_for(quietly(lambda before=before: queue.finished_job_registry.count
                         >= min(600, before + 20)), timeout=10,
                 message="jobs finishing after CLIENT KILL")
        print(f"\nCLIENT KILL: {killed} connections killed; jobs finishing again after "
              f"{time.monotonic() - at:.2f} s")
    wait_for(lambda: queue.finished_job_registry.count == 600, timeout=20,
             message="all 600 jobs finished")
    finished, failed, duplicates = outcome(queue, ids, connection)
    assert (finished, failed) == (600, 0)
    print(f"CLIENT KILL: 600 jobs done, double executions {duplicates}")
    # the stop listener resubscribed: `geventq stop` still reaches the running job
    wait_for(lambda: long_job.get_status() == "started", message="the long job running")

    def stopped():  # a stop published while the listener reconnects is lost: send again
        try:
            send_stop_job_command(connection, long_job.id)
        except InvalidJobOperation:  # it stopped meanwhile
            pass
        return long_job.get_status() == "stopped"

    wait_for(stopped, timeout=10, interval=0.5, message="the long job stopped on request")
    for worker in workers:
        assert worker.proc.poll() is None


def test_worker_waits_for_redis_at_start(start_worker):
    port = free_port()
    url = f"redis://bob:Hush-9-secret@127.0.0.1:{port}/0"
    worker = start_worker("--burst", env_extra={"REDIS_URL": url})
    worker.wait_for_output("retry 1 in", timeout=15)
    with RedisServer(port=port, args=["--user", "bob", "on", ">Hush-9-secret", "~*", "&*", "+@all"]) as server:
        Queue("default", connection=redis.Redis.from_url(url)).enqueue(jobs.add, 1, 2)
        assert worker.wait(30) == 0
        output = worker.output()
        assert redis.Redis(port=server.port, username="bob", password="Hush-9-secret").zcard(
            KEYS.registry("finished", "default")) == 1
    attempts = [line for line in output.splitlines() if "cannot reach Redis" in line]
    assert attempts and "retry 1 in" in attempts[0]
    assert len(attempts) == max(int(line.split("retry ")[1].split()[0]) for line in attempts)
    assert "Traceback" not in output and "Hush-9-secret" not in output


def test_no_wait_fails_at_once_with_one_line(start_worker):
    port = free_port()
    worker = start_worker("--no-wait", env_extra={
        "REDIS_URL": f"redis://bob:Hush-9-secret@127.0.0.1:{port}/0"})
    assert worker.wait(20) == 3
    lines = worker.output().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"geventq worker: cannot reach Redis at bob@127.0.0.1:{port}/0")
    assert "Hush-9-secret" not in lines[0]


@pytest.mark.timeout(60)
def test_sentinel_failover_mid_run(start_worker, tmp_path):
    with RedisServer() as primary, \
            RedisServer(args=["--replicaof", "127.0.0.1", str(primary.port)]) as replica:
        monitor = [f"monitor main 127.0.0.1 {primary.port} 2",
                   "down-after-milliseconds main 400", "failover-timeout main 3000",
                   "parallel-syncs main 1"]
        sentinels = [RedisServer(sentinel=monitor).start() for _ in range(3)]
        try:
            run_failover(primary, replica, sentinels, start_worker, tmp_path)
        finally:
            for sentinel in sentinels:
                sentinel.close()


def run_failover(primary, replica, sentinels, start_worker, tmp_path) -> None:
    probe = redis.Redis(port=sentinels[0].port)

    def topology_known():
        state = probe.sentinel_master("main")
        return state["num-slaves"] >= 1 and state["num-other-sentinels"] >= 2

    wait_for(topology_known, timeout=15, interval=0.1, message="sentinels know each other")
    settings = {"REDIS_SENTINELS": [("127.0.0.1", s.port) for s in sentinels],
                "REDIS_SENTINEL_MASTER": "main"}
    connection = connection_from_settings(settings)
    queue = Queue("default", connection=connection)
    ids = [j.id for j in queue.enqueue_many(
        [Queue.prepare_data(jobs.record, (0.02,)) for _ in range(600)])]
    assert connection.execute_command("WAIT", 1, 5000) == 1  # the replica has them
    config = write_config(tmp_path, HEARTBEAT_INTERVAL=0.5, CONCURRENCY=10,
                          LOGGING_LEVEL="WARNING", **settings)
    workers = [start_worker("-c", config, "default") for _ in range(2)]
    wait_for(lambda: queue.finished_job_registry.count >= 150, timeout=20,
             message="jobs running on the primary")
    primary.stop(kill=True)
    killed = time.monotonic()

    def promoted():
        return probe.sentinel_get_master_addr_by_name("main")[1] == replica.port

    wait_for(promoted, timeout=20, interval=0.05, message="the replica promoted")
    failover = time.monotonic() - killed
    wait_for(quietly(lambda: queue.finished_job_registry.count == 600), timeout=25,
             message="all jobs finished on the promoted replica")
    finished, failed, duplicates = outcome(queue, ids, connection)
    print(f"\nSentinel failover: new primary {failover:.2f} s after the old one was killed; "
          f"all 600 jobs done {time.monotonic() - killed:.1f} s after; "
          f"double executions {duplicates}")
    assert (finished, failed) == (600, 0)
    assert queue.count == 0 and queue.started_job_registry.count == 0
    assert connection.connection_pool.get_master_address()[1] == replica.port
    clone = clone_connection(connection)  # what the heartbeat and sweep threads use
    assert clone.ping() and clone.connection_pool.get_master_address()[1] == replica.port
    assert "master main/0 via sentinels" in describe_connection(clone)
    for worker in workers:
        assert worker.proc.poll() is None
