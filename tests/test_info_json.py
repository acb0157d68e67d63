"""`geventq info --json`: the schema documented in docs/metrics.md, pinned field by field."""

from __future__ import annotations

import json
import subprocess
import sys

from geventq import Queue, SimpleWorker
from tests.conftest import ROOT, worker_env

TOP = {"schema": int, "prefix": str, "taken_at": float, "suspended": bool, "truncated": bool,
       "queues": list, "workers": list, "pools": list, "jobs": list, "durations": list,
       "totals": dict}
QUEUE = {"name": str, "queued": int, "started": int, "scheduled": int, "deferred": int,
         "failed": int, "finished": int, "canceled": int, "oldest_job_age": float, "paused": bool}
WORKER = {"name": str, "hostname": str, "pid": int, "state": str, "queues": list, "pool": str,
          "mode": str, "slots": int, "busy": int, "free": int, "hub_blocked": int,
          "current_job_ids": list, "successful": int, "failed": int, "working_time": float,
          "birth": float, "last_heartbeat": float, "version": str}
POOL = {"name": str, "workers": int, "busy": int, "free": int, "hub_blocked": int}
JOBS = {"queue": str, "function": str, "outcome": str, "count": int}
DURATIONS = {"queue": str, "function": str, "count": int, "sum_seconds": float}
TOTALS = {"hub_blocked": int, "recovered_jobs": int}


def _check(obj: dict, schema: dict) -> None:
    assert set(obj) == set(schema)
    for name, kind in schema.items():
        value = obj[name]
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        assert ok and not (kind is int and isinstance(value, bool)), (name, value)


def _info(redis_url: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "geventq", "info", "--json", *args],
                         env=worker_env(redis_url), cwd=ROOT, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_info_json_pins_its_schema_and_its_counts(connection, redis_url, register):
    q = Queue("j", connection=connection)
    q.enqueue("tests.jobs.add", 1, 2)
    q.enqueue("tests.jobs.fail")
    SimpleWorker([q], connection=connection).work(burst=True)
    q.enqueue("tests.jobs.noop")
    register(SimpleWorker([q], connection=connection, name="listed"))

    info = _info(redis_url)
    _check(info, TOP)
    assert info["schema"] == 1 and info["prefix"] == "geventq:"
    [queue] = info["queues"]
    _check(queue, QUEUE)
    assert (queue["name"], queue["queued"], queue["finished"], queue["failed"]) == ("j", 1, 1, 1)
    [worker] = info["workers"]
    _check(worker, WORKER)
    assert (worker["name"], worker["state"], worker["queues"]) == ("listed", "idle", ["j"])
    [pool] = info["pools"]
    _check(pool, POOL)
    for entry in info["jobs"]:
        _check(entry, JOBS)
    assert {(e["function"], e["outcome"], e["count"]) for e in info["jobs"]} == {
        ("tests.jobs.add", "finished", 1), ("tests.jobs.fail", "failed", 1)}
    for entry in info["durations"]:
        _check(entry, DURATIONS)
    assert sorted((e["function"], e["count"]) for e in info["durations"]) == [
        ("tests.jobs.add", 1), ("tests.jobs.fail", 1)]
    _check(info["totals"], TOTALS)


def test_info_json_for_some_queues_keeps_only_theirs(connection, redis_url):
    for name in ("a", "b"):
        Queue(name, connection=connection).enqueue("tests.jobs.noop")
    SimpleWorker([Queue("a", connection=connection)], connection=connection).work(burst=True)
    info = _info(redis_url, "b")
    assert [q["name"] for q in info["queues"]] == ["b"]
    assert info["jobs"] == [] and info["durations"] == []
