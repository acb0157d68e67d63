"""Jobs that report progress (tests/test_progress.py)."""

from __future__ import annotations

import redis

from geventq import get_current_job


def steps(percents, gate_key=None, redis_url=None, fail=False):
    """Report each percent; with ``gate_key``, wait for a token on it before each step
    (so the test decides when the next progress comes)."""
    job = get_current_job()
    gate = redis.Redis.from_url(redis_url) if gate_key else None
    for percent in percents:
        if gate is not None:
            if gate.blpop([gate_key], timeout=30) is None:
                raise TimeoutError("no gate token within 30 s")
        job.set_progress(percent, f"step {percent}")
    if fail:
        raise RuntimeError("failed on purpose")
    return len(percents)


def flaky(counter_key, redis_url):
    """Fails on its first try, reporting progress first; succeeds on the second."""
    job = get_current_job()
    conn = redis.Redis.from_url(redis_url)
    tries = conn.incr(counter_key)
    job.set_progress(50 * tries, f"try {tries}")
    if tries == 1:
        raise RuntimeError("first try fails")
    return tries
