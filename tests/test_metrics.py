"""Prometheus metrics (API section 10): counted by real workers, read back from Redis only,
checked by parsing the text with prometheus_client.parser."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from geventq import Queue, Retry, SimpleWorker
from geventq.defaults import EXIT_BOOT_ERROR
from geventq.metrics.exposition import make_registry
from tests.conftest import ROOT, WorkerProcess, worker_env
from tests.helpers import wait_for


def _samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted label pairs): value} of a metrics text."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _scrape(connection, keys) -> dict[tuple, float]:
    registry, _ = make_registry(connection, keys)
    return _samples(generate_latest(registry).decode())


def _key(name: str, **labels: str) -> tuple:
    return name, tuple(sorted(labels.items()))


def _jobs(samples, queue, function, outcome) -> float:
    labels = (("function", function), ("outcome", outcome), ("queue", queue))
    return samples.get(("geventq_jobs_total", labels), 0.0)


def test_counts_and_durations_match_what_ran(connection):
    q = Queue("m", connection=connection)
    for i in range(3):
        q.enqueue("tests.jobs.add", i, 1)
    q.enqueue("tests.jobs.fail")
    q.enqueue("tests.jobs.fail", retry=Retry(max=1))  # fails, is retried once, then fails
    q.enqueue("tests.jobs.sleep", 5, job_timeout=1)
    SimpleWorker([q], connection=connection).work(burst=True)

    s = _scrape(connection, q.keys)
    assert _jobs(s, "m", "tests.jobs.add", "finished") == 3
    assert _jobs(s, "m", "tests.jobs.fail", "failed") == 2
    assert _jobs(s, "m", "tests.jobs.fail", "retried") == 1
    assert _jobs(s, "m", "tests.jobs.sleep", "timed_out") == 1
    add = {"function": "tests.jobs.add", "queue": "m"}
    assert s[_key("geventq_job_duration_seconds_count", **add)] == 3
    assert s[_key("geventq_job_duration_seconds_bucket", le="+Inf", **add)] == 3
    assert 0 <= s[_key("geventq_job_duration_seconds_sum", **add)] < 1
    slept = {"function": "tests.jobs.sleep", "queue": "m"}
    assert s[_key("geventq_job_duration_seconds_bucket", le="0.5", **slept)] == 0
    assert s[_key("geventq_job_duration_seconds_bucket", le="2.5", **slept)] == 1
    assert s[("geventq_queue_jobs", (("queue", "m"), ("state", "failed")))] == 3  # timed out too
    assert s[("geventq_queue_jobs", (("queue", "m"), ("state", "queued")))] == 0
    assert s[("geventq_queue_oldest_job_age_seconds", (("queue", "m"),))] == 0
    assert s[("geventq_queue_paused", (("queue", "m"),))] == 0
    assert s[("geventq_hub_blocked_total", ())] == 0
    assert s[("geventq_recovered_jobs_total", ())] == 0
    assert s[("geventq_workers", (("state", "busy"),))] == 0


def test_functions_past_the_cap_are_counted_as_other(connection, monkeypatch):
    monkeypatch.setenv("GEVENTQ_METRICS_MAX_FUNCTIONS", "1")
    q = Queue("cap", connection=connection)
    q.enqueue("tests.jobs.add", 1, 2)
    q.enqueue("tests.jobs.noop")
    q.enqueue("tests.jobs.echo", 1)
    q.enqueue("tests.jobs.add", 2, 2)
    SimpleWorker([q], connection=connection).work(burst=True)
    s = _scrape(connection, q.keys)
    assert _jobs(s, "cap", "tests.jobs.add", "finished") == 2
    assert _jobs(s, "cap", "other", "finished") == 2
    assert not any(labels and ("function", "tests.jobs.noop") in labels for _, labels in s)


def test_metrics_off_counts_nothing(connection, monkeypatch):
    monkeypatch.setenv("GEVENTQ_METRICS", "0")
    q = Queue("off", connection=connection)
    q.enqueue("tests.jobs.noop")
    SimpleWorker([q], connection=connection).work(burst=True)
    assert connection.exists(q.keys.metrics_jobs, q.keys.metrics_durations) == 0


def test_garbage_in_the_metric_keys_is_skipped(connection):
    keys = Queue(connection=connection).keys
    connection.hset(keys.metrics_jobs, mapping={"not json": 1, '["a","b"]': 2,
                                                '["q","f","finished"]': "many",
                                                '["q","f","failed"]': 4})
    connection.set(keys.metrics_durations, "a string")
    s = _scrape(connection, keys)
    assert _jobs(s, "q", "f", "failed") == 4
    assert _jobs(s, "q", "f", "finished") == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.timeout(90)
def test_the_exporter_serves_what_real_workers_counted_across_restarts(connection, redis_url):
    q = Queue("served", connection=connection)
    env = worker_env(redis_url)
    for round_ in range(2):  # a second worker process: the counters only grow
        for i in range(5):
            q.enqueue("tests.jobs.add", i, round_)
        q.enqueue("tests.jobs.fail")
        worker = WorkerProcess(["--burst", "served"], env)
        try:
            assert worker.wait(60) == 0, worker.output()
        finally:
            worker.kill()
    port = _free_port()
    exporter = WorkerProcess(["--bind", f"127.0.0.1:{port}"], env, command="metrics")
    try:
        exporter.wait_for_output(f"serving http://127.0.0.1:{port}/metrics")
        status, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        s = _samples(text)
        assert _jobs(s, "served", "tests.jobs.add", "finished") == 10
        assert _jobs(s, "served", "tests.jobs.fail", "failed") == 2
        assert s[("geventq_queue_jobs", (("queue", "served"), ("state", "failed")))] == 2
        assert _get(f"http://127.0.0.1:{port}/")[0] == 404
    finally:
        exporter.kill()


def test_the_exporter_refuses_a_bad_bind_in_one_line(redis_url):
    exporter = WorkerProcess(["--bind", "nowhere"], worker_env(redis_url), command="metrics")
    out = exporter.output(30)
    assert exporter.proc.returncode == 1
    assert out.strip().splitlines() == [
        "geventq metrics: --bind takes HOST:PORT (e.g. 127.0.0.1:9181), got 'nowhere'"]


def test_a_recovered_worker_counts_its_jobs(connection):
    from geventq import lifecycle

    q = Queue("rec", connection=connection)
    job = q.enqueue("tests.jobs.noop")
    lifecycle.claim_and_start(connection, q.keys, ["rec"], "dead-worker", 1)
    lifecycle.recover_worker(connection, q.keys, "dead-worker")
    wait_for(lambda: job.get_status() == "queued", timeout=5)
    assert _scrape(connection, q.keys)[("geventq_recovered_jobs_total", ())] == 1


@pytest.mark.timeout(90)
def test_a_pool_with_metrics_bind_serves_the_metrics_and_stops_it(tmp_path, redis_url):
    from tests.test_pool_integration import PoolProcess

    port = _free_port()
    conf = tmp_path / "pool.py"
    conf.write_text(f"METRICS_BIND = '127.0.0.1:{port}'\n")
    env = worker_env(redis_url)
    argv = [sys.executable, "-m", "geventq", "pool", "-c", str(conf), "-u", redis_url,
            "-N", "2", "--pool-name", "metricspool", "pm"]
    pool = PoolProcess(argv, env, str(tmp_path / "pool.log"))
    try:
        def two_idle_workers() -> bool:
            try:
                status, text = _get(f"http://127.0.0.1:{port}/metrics")
            except OSError:  # not listening yet
                return False
            return status == 200 and _samples(text)[_key("geventq_workers", state="idle")] == 2

        wait_for(two_idle_workers, timeout=40, message="the pool's exporter to show 2 workers")
        pool.killpg(signal.SIGTERM)
        assert pool.wait(30) == 0, pool.output()
        with pytest.raises(OSError):
            _get(f"http://127.0.0.1:{port}/metrics")
    finally:
        pool.cleanup()


def test_a_pool_refuses_a_malformed_metrics_bind(tmp_path, redis_url):
    conf = tmp_path / "pool.py"
    conf.write_text("METRICS_BIND = 9191\n")
    out = subprocess.run([sys.executable, "-m", "geventq", "pool", "-c", str(conf), "-u",
                          redis_url, "pm"], env=worker_env(redis_url), cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == EXIT_BOOT_ERROR
    assert out.stderr.strip() == ("geventq pool: METRICS_BIND must be HOST:PORT "
                                  "(e.g. 127.0.0.1:9191), got 9191")


@pytest.mark.timeout(60)
def test_hub_blocked_total_outlives_the_worker_that_counted_it(connection, redis_url, tmp_path):
    settings = tmp_path / "guard.py"
    settings.write_text("MAX_BLOCKING_TIME = 0.3\n")
    q = Queue("hog", connection=connection)
    hog = q.enqueue("tests.jobs_cpu.spin", 1.0)
    worker = WorkerProcess(["-c", str(settings), "--burst", "hog"], worker_env(redis_url))
    try:
        assert worker.wait(40) == 0, worker.output()
    finally:
        worker.kill()
    assert hog.get_status() == "finished"
    s = _scrape(connection, q.keys)
    assert s[("geventq_hub_blocked_total", ())] >= 1
    assert s[_key("geventq_workers", state="idle")] == 0  # that worker is gone; its count stays


@pytest.mark.timeout(120)
def test_metrics_info_json_and_events_on_a_redis_cluster(redis_cluster, cluster_connection):
    import json

    q = Queue("cl", connection=cluster_connection)
    job = q.enqueue("tests.jobs_progress.steps", [25, 75])
    for i in range(3):
        q.enqueue("tests.jobs.add", i, 1)
    env = worker_env(redis_cluster.url)
    worker = WorkerProcess(["--cluster", "--burst", "cl"], env)
    try:
        assert worker.wait(60) == 0, worker.output()
    finally:
        worker.kill()
    assert [e["event"] for e in job.events(timeout=5)] == ["progress", "finished"]
    port = _free_port()
    exporter = WorkerProcess(["--cluster", "-u", redis_cluster.urls[-1], "--bind",
                              f"127.0.0.1:{port}"], env, command="metrics")
    try:
        exporter.wait_for_output(f"serving http://127.0.0.1:{port}/metrics", timeout=30)
        s = _samples(_get(f"http://127.0.0.1:{port}/metrics")[1])
        assert _jobs(s, "cl", "tests.jobs.add", "finished") == 3
        assert _jobs(s, "cl", "tests.jobs_progress.steps", "finished") == 1
    finally:
        exporter.kill()
    out = subprocess.run([sys.executable, "-m", "geventq", "info", "--json", "--cluster", "-u",
                          redis_cluster.urls[1]], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["prefix"] == "{geventq}:" and info["queues"][0]["finished"] == 4


def test_an_outcome_no_end_script_writes_is_counted_through_outcome_call(connection):
    from geventq import scripts
    from geventq.metrics.counting import outcome_call

    keys = Queue(connection=connection).keys
    call = outcome_call(keys, "lim", "app.f", "rate_limited", 3)
    scripts.call(connection, "metrics_count", *call)
    assert _jobs(_scrape(connection, keys), "lim", "app.f", "rate_limited") == 3
    with pytest.raises(ValueError, match="outcome must be one of finished, failed"):
        outcome_call(keys, "lim", "app.f", "vanished")


@pytest.mark.timeout(60)
def test_a_scrape_while_redis_is_down_answers_503_and_the_exporter_lives_on(redis_url):
    port = _free_port()
    env = worker_env(redis_url)
    exporter = WorkerProcess(["-u", "redis://127.0.0.1:1/0", "--bind", f"127.0.0.1:{port}"],
                             env, command="metrics")
    try:
        exporter.wait_for_output(f"serving http://127.0.0.1:{port}/metrics")
        for _ in range(2):
            status, body = _get(f"http://127.0.0.1:{port}/metrics")
            assert status == 503 and body == "cannot read Redis: ConnectionError\n"
        exporter.signal(signal.SIGTERM)
        assert exporter.wait(10) == 0
        assert "Traceback" not in exporter.output()
    finally:
        exporter.kill()
