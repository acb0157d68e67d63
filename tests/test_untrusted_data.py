"""Tools that read Redis survive data they did not write (issue 12 #15).

A queue name with a space, a worker hash whose pid is ``abc``, a job hash whose
meta is not a pickle, bytes that are not UTF-8, a key of another type: ``geventq
info`` (in-process, through click's CliRunner), ``Queue.all``, ``Worker.all`` /
``find_by_key``, the registries and ``Job.fetch`` show what they can and mark the
rest. The hypothesis test fills the key space with random garbage;
``GEVENTQ_FUZZ_EXAMPLES`` runs it with more examples.
"""

from __future__ import annotations

import os
import time

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geventq import Job, Queue, Worker
from geventq.cli import main
from geventq.exceptions import DeserializationError
from geventq.job_fields import KNOWN_FIELDS
from geventq.keys import REGISTRY_NAMES, Keys
from tests import jobs

KEYS = Keys()
PREFIX = KEYS.prefix.encode()
EXAMPLES = int(os.environ.get("GEVENTQ_FUZZ_EXAMPLES", "30"))


def info(redis_url: str, *args: str) -> str:
    """The output of `geventq info`, which must succeed."""
    result = CliRunner().invoke(main, ["info", "-u", redis_url, *args])
    assert result.exit_code == 0 and result.exception is None, \
        f"{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    return result.output


def test_info_marks_a_queue_name_that_is_not_one(connection, redis_url, queue):
    queue.enqueue(jobs.noop)
    connection.sadd(KEYS.queues, "a b", b"\xff\xfe", "x:y")
    out = info(redis_url)
    assert "<invalid queue name b'a b'>" in out and "<invalid queue name b'\\xff\\xfe'>" in out
    assert "default              queued 1" in out
    assert Queue.all(connection=connection) == [queue]


def test_a_worker_hash_full_of_garbage_is_shown_not_fatal(connection, redis_url):
    connection.sadd(KEYS.workers, "w1", b"\xff", "w2")
    connection.hset(KEYS.worker("w1"), mapping={
        "pid": "abc", "successful": "many", "failed": b"\xff", "working_time": "nan",
        "queues": "default,a b,x", "birth": "yesterday", "heartbeat": "1e400",
        "hostname": b"\xc3\x28", "state": "weird", "pool": "p\x1b[31m"})
    connection.set(KEYS.worker("w2"), "a string, not a hash")
    (worker,) = Worker.all(connection=connection)
    assert (worker.name, worker.pid, worker.birth_date) == ("w1", None, None)
    assert worker.successful_job_count is None and worker.failed_job_count is None
    assert worker.total_working_time is None and worker.last_heartbeat is None
    assert worker.queue_names == ["default", "a b", "x"]
    assert [q.name for q in worker.queues] == ["default", "x"]
    assert worker.hostname == "\ufffd("
    found = Worker.find_by_key(worker.key, connection=connection)
    assert found is not None and found.pid is None
    assert Worker.find_by_key(KEYS.worker("w2"), connection=connection) is None
    out = info(redis_url)
    assert "ok=?  failed=?" in out and "<invalid worker name b'\\xff'>" in out
    assert "\x1b" not in out and "pool p\\x1b[31m" in out


def test_fetch_loads_a_job_hash_with_garbage_fields(connection, queue):
    job = queue.enqueue(jobs.add, 1, 2, meta={"a": 1})
    connection.hset(job.key, mapping={
        "timeout": "soon", "result_ttl": "1e3", "created_at": "yesterday",
        "started_at": "1e400", "meta": b"garbage", "status": "weird", "func": b"\xff\xfe",
        "description": b"\xffx", "retries_left": "x", "exc_history": "{", "worker_name": b"\xff"})
    for fetched in (Job.fetch(job.id, connection=connection), queue.fetch_job(job.id),
                    Job.fetch_many([job.id], connection=connection)[0]):
        assert (fetched.timeout, fetched.result_ttl, fetched.created_at, fetched.started_at) == \
            (None, None, None, None)
        assert fetched.func_name == "\ufffd\ufffd" and fetched.description == "\ufffdx"
        assert fetched.args == (1, 2)  # the fields that can be read still are
        for name in ("meta", "retries_left", "exc_history"):
            with pytest.raises(DeserializationError, match=job.id):
                getattr(fetched, name)
        with pytest.raises(DeserializationError, match=job.id):
            fetched.get_status(refresh=False)


def test_fetch_refuses_data_that_is_not_a_call_when_it_is_used(connection, queue):
    job = queue.enqueue(jobs.add, 1, 2)
    connection.hset(job.key, "data", b"K\x05.")  # a pickled 5
    fetched = Job.fetch(job.id, connection=connection)
    with pytest.raises(DeserializationError, match="not \\[instance, args, kwargs\\]"):
        assert fetched.args
    assert fetched.description == "tests.jobs.add(...)"


def test_ids_that_are_not_text_are_left_out(connection, queue):
    job = queue.enqueue(jobs.noop)
    connection.rpush(queue.key, b"\xff")
    connection.zadd(queue.failed_job_registry.key, {b"\xfe": time.time() + 60, "ok": time.time() + 60})
    connection.sadd(KEYS.worker_jobs("w"), b"\xff", "j1")
    connection.hset(KEYS.worker("w"), "name", "w")
    connection.sadd(KEYS.workers, "w")
    assert queue.job_ids == [job.id]
    assert queue.failed_job_registry.get_job_ids() == ["ok"]
    assert Worker.all(connection=connection)[0].current_job_ids == ["j1"]


def test_info_survives_keys_of_another_type_and_a_broken_schedule(connection, redis_url, queue):
    queue.enqueue(jobs.noop)
    connection.sadd(KEYS.queues, "other")
    connection.hset(KEYS.registry("started", "other"), "not", "a sorted set")
    connection.hset(KEYS.periodic_entries(), mapping={"bad json": "{", "no fields": "{}",
                                                     "list": "[1]"})
    connection.hset(KEYS.periodic(), "no fields", "abc")
    connection.set(KEYS.scheduler_lock, b"\xff\x1b")
    connection.zadd(KEYS.registry("scheduled", "default"), {b"\xff": 1, "far": float("inf")})
    out = info(redis_url)
    assert "default              queued 1" in out
    (other,) = [line for line in out.splitlines() if line.startswith("  other ")]
    assert "<cannot read: " in other and "WRONGTYPE" in other
    assert "bad json: <invalid entry '{'>" in out and "no fields: <invalid entry '{}'>" in out
    assert "scheduler: active on \ufffd\\x1b" in out and "?  default      far" in out

    connection.delete(KEYS.queues)
    connection.set(KEYS.queues, "a string")
    assert f"<cannot read {KEYS.queues}: WRONGTYPE" in info(redis_url)


# -- the key space filled with garbage ------------------------------------------
garbage = st.binary(max_size=10)
names = st.one_of(st.binary(min_size=1, max_size=8), st.text(min_size=1, max_size=8).map(str.encode),
                  st.sampled_from([b"default", b"a b", b"x:y", b"\xff", b"\x1b[2J"]))
values = st.one_of(garbage, names, st.integers().map(lambda i: str(i).encode()),
                   st.floats().map(lambda f: repr(f).encode()))
worker_fields = st.dictionaries(
    st.one_of(st.sampled_from([b"pid", b"successful", b"failed", b"working_time", b"queues",
                               b"birth", b"heartbeat", b"state", b"hostname", b"pool",
                               b"hub_blocked"]), garbage), values, min_size=1, max_size=8)
job_fields = st.dictionaries(
    st.one_of(st.sampled_from(sorted(f.encode() for f in KNOWN_FIELDS | {
        "retries_left", "exc_history"})), garbage), values, min_size=1, max_size=10)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(queue_names=st.lists(names, max_size=4),
       workers=st.dictionaries(names, worker_fields, max_size=3),
       job_hashes=st.dictionaries(names, job_fields, max_size=4),
       kind=st.sampled_from(REGISTRY_NAMES),
       entries=st.dictionaries(garbage, values, max_size=2))
def test_reading_tools_survive_any_garbage(connection, redis_url, queue_names, workers,
                                           job_hashes, kind, entries):
    connection.flushdb()
    real = Queue("default", connection=connection).enqueue(jobs.add, 1, 2)
    if queue_names:
        connection.sadd(KEYS.queues, *queue_names)
    for name, fields in workers.items():
        connection.sadd(KEYS.workers, name)
        connection.hset(PREFIX + b"worker:" + name, mapping=fields)
        connection.sadd(PREFIX + b"worker:" + name + b":jobs", *job_hashes or [b"x"])
    for job_id, fields in job_hashes.items():
        connection.hset(PREFIX + b"job:" + job_id, mapping=fields)
        connection.rpush(PREFIX + b"queue:default", job_id)
        connection.zadd(PREFIX + kind.encode() + b":default", {job_id: time.time() + 60})
    if entries:
        connection.hset(KEYS.periodic_entries(), mapping=entries)
        connection.hset(KEYS.periodic(), mapping=entries)

    info(redis_url)
    ids = {real.id}
    for queue in Queue.all(connection=connection):
        assert queue.count >= 0
        ids.update(queue.job_ids)
        for registry_kind in REGISTRY_NAMES:
            registry = getattr(queue, f"{registry_kind}_job_registry")
            assert registry.count >= 0
            ids.update(registry.get_job_ids())
    for worker in Worker.all(connection=connection):
        read_all(worker, "successful_job_count", "failed_job_count", "total_working_time",
                 "last_heartbeat", "current_job_ids", "pool", "birth_date", "pid")
        assert worker.get_state() in ("idle", "busy", "suspended")
        assert Worker.find_by_key(worker.key, connection=connection).name == worker.name
    for job in Job.fetch_many(sorted(ids), connection=connection):
        if job is None:
            continue
        read_all(job, "timeout", "result_ttl", "failure_ttl", "ttl", "origin", "exc_info",
                 "created_at", "enqueued_at", "started_at", "ended_at", "dependency_ids",
                 "description", "worker_name", "func_name")
        # documented: a field that cannot be read raises DeserializationError when used
        read_all(job, "meta", "args", "kwargs", "retries_left", "exc_history", "result",
                 may_raise=DeserializationError)
        try:
            job.get_status(refresh=False)
        except DeserializationError:
            pass


def read_all(obj, *names: str, may_raise: type[Exception] | None = None) -> None:
    """Read each attribute; only ``may_raise`` may come out of it."""
    for name in names:
        try:
            getattr(obj, name)
        except Exception as exc:
            if may_raise is None or not isinstance(exc, may_raise):
                raise
