"""Limits and RateLimited with real `geventq worker` processes: two workers on one key,
a freed slot used at once, no head-of-line blocking, rate windows, RateLimited."""

from __future__ import annotations

import signal
import time

import pytest

from geventq import Limit, Queue, Retry, Worker
from geventq.keys import Keys
from tests import jobs_flow
from tests.helpers import wait_for

QUIET = ["--logging-level", "WARNING"]
KEYS = Keys()


def floats(connection, key):
    return [float(v) for v in connection.lrange(key, 0, -1)]


def done(connection, tag):
    return connection.llen(f"flow:done:{tag}")


def test_two_workers_share_one_key_limit(connection, start_worker):
    q = Queue("q", connection=connection)
    limit = Limit("api", concurrency=2)
    batch = [q.enqueue(jobs_flow.held, "api", 0.2, limit=limit) for _ in range(12)]
    workers = [start_worker("q", "-n", "20", *QUIET) for _ in range(2)]
    wait_for(lambda: done(connection, "api") == 12, timeout=20, message="12 jobs done")
    assert int(connection.get("flow:max:api")) == 2  # two at once across both, never more
    assert all(job.get_status() == "finished" for job in batch)
    assert connection.zcard(KEYS.limit_slots("api")) == 0
    assert connection.llen(KEYS.limit_parked("api")) == 0
    # both workers took part
    names = {job.refresh() or job.worker_name for job in batch}
    assert len(names) == 2, names
    for worker in workers:
        worker.signal(signal.SIGTERM)
        assert worker.wait(20) == 0


def test_a_freed_slot_is_used_within_a_tenth_of_a_second(connection, start_worker):
    q = Queue("q", connection=connection)
    limit = Limit("one", concurrency=1)
    for _ in range(5):
        q.enqueue(jobs_flow.held, "one", 0.3, limit=limit)
    worker = start_worker("q", "-n", "50", *QUIET)
    wait_for(lambda: done(connection, "one") == 5, timeout=20, message="5 jobs done")
    starts = floats(connection, "flow:starts:one")
    gaps = [b - a - 0.3 for a, b in zip(starts, starts[1:])]
    assert int(connection.get("flow:max:one")) == 1
    assert max(gaps) < 0.1, f"a freed slot waited {max(gaps):.3f} s"
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_a_busy_key_does_not_stall_the_other_keys(connection, start_worker):
    q = Queue("q", connection=connection)
    for _ in range(30):
        q.enqueue(jobs_flow.held, "slow", 1.0, limit=Limit("slow", concurrency=1))
    quick = [q.enqueue(jobs_flow.held, "quick", 0.01, limit=Limit("quick", concurrency=5))
             for _ in range(10)]
    started = time.monotonic()
    worker = start_worker("q", "-n", "50", *QUIET)
    for job in quick:
        job.wait(timeout=10)
    assert time.monotonic() - started < 5  # not after the 30 s of the slow key's jobs
    assert int(connection.get("flow:max:slow")) == 1
    worker.kill()


def test_rate_limit_spreads_the_starts(connection, start_worker):
    q = Queue("q", connection=connection)
    limit = Limit("rated", rate=4, per=0.5)
    batch = [q.enqueue(jobs_flow.held, "rated", 0.0, limit=limit) for _ in range(12)]
    worker = start_worker("--burst", "q", "-n", "50", *QUIET)
    assert worker.wait(30) == 0  # burst mode waits for the jobs the rate holds back
    for job in batch:
        job.refresh()
    assert all(job.get_status() == "finished" for job in batch)
    # when each started, by the worker's clock; the window counts claims, and a start may
    # follow its claim by a round trip: never more than 4 starts within any 0.45 s
    starts = sorted(job.started_at.timestamp() for job in batch)
    for i in range(len(starts) - 4):
        assert starts[i + 4] - starts[i] >= 0.45, starts
    # and not much slower than the rate allows: 12 jobs at 4 per 0.5 s take ~1 s
    assert starts[-1] - starts[0] < 1.6


def test_rate_limited_job_comes_back_later_and_holds_its_key(connection, start_worker):
    q = Queue("q", connection=connection)
    limit = Limit("site", concurrency=5)
    throttled = q.enqueue(jobs_flow.throttled_once, "t", 1.0, limit=limit, retry=Retry(max=2))
    worker = start_worker("q", "--with-scheduler", *QUIET)
    wait_for(lambda: throttled.get_status() == "scheduled", timeout=10,
             message="the throttled job to be scheduled again")
    held_at = time.time()
    behind = q.enqueue(jobs_flow.held, "behind", 0.0, limit=limit)
    assert throttled.wait(timeout=15) == "ok"
    behind.wait(timeout=15)
    runs = floats(connection, "flow:runs:t")
    assert len(runs) == 2 and runs[1] - runs[0] >= 0.95
    # no other job of the key started while it was held
    assert floats(connection, "flow:starts:behind")[0] >= held_at + 0.8
    throttled.refresh()
    assert throttled.retries_left == 2  # no retry spent
    assert throttled.exc_info is None
    assert q.failed_job_registry.count == 0
    wait_for(lambda: Worker.all(connection=connection)[0].successful_job_count == 2)
    assert Worker.all(connection=connection)[0].failed_job_count == 0
    outcomes = {k.decode(): int(v) for k, v in connection.hgetall(KEYS.metrics_jobs).items()}
    assert outcomes.get('["q","tests.jobs_flow.throttled_once","rate_limited"]') == 1
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


@pytest.mark.parametrize("retry_after", [-1, float("nan"), "soon"])
def test_rate_limited_with_a_bad_retry_after_is_refused(retry_after):
    from geventq import RateLimited

    with pytest.raises(ValueError, match="retry_after"):
        RateLimited(retry_after=retry_after)


def test_simple_worker_turns_rate_limited_into_scheduled(connection, redis_url, monkeypatch):
    from geventq import SimpleWorker

    monkeypatch.setenv("REDIS_URL", redis_url)
    q = Queue("q", connection=connection)
    job = q.enqueue(jobs_flow.throttled_once, "simple", 30, limit=Limit("s", concurrency=1))
    worker = SimpleWorker(["q"], connection=connection)
    assert worker.work(burst=True) is True
    assert job.get_status() == "scheduled" and job.id in q.scheduled_job_registry
    assert connection.hget(KEYS.limits, "s\thold") is not None
    assert connection.zcard(KEYS.limit_slots("s")) == 0
    assert q.failed_job_registry.count == 0 and worker.failed_job_count == 0
