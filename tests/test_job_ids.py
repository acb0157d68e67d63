"""Job ids at the boundary: one rule for every id that enters through the API, and a
fork protocol that no id, not even one a hostile writer put in Redis, can desynchronise."""

from __future__ import annotations

import os
import pickle
import time
from datetime import timedelta

import pytest

from geventq import Dependency, Job, Queue
from geventq.decorators import job as job_decorator
from geventq.keys import Keys
from geventq.names import check_job_id, check_queue_name, job_id_to_look_up
from geventq.worker.forkchild import CALLBACK, JOB, encode_frame, read_frame
from tests import jobs, jobs_cpu

KEYS = Keys()
QUIET = ["--logging-level", "WARNING"]

BAD_IDS = ["x\ny", "tab\there", "nul\x00", "bell\x07", "del\x7f", "c1\x85", "zwj\u200d",
           "rtl\u202e", "line\u2028sep", "surrogate\udcff", "has space", "a:b", "a,b", "",
           "nbsp\u00a0"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_the_id_rule_refuses_control_characters_separators_and_key_syntax(bad):
    with pytest.raises(ValueError) as raised:
        check_job_id(bad)
    assert repr(bad) in str(raised.value)


@pytest.mark.parametrize("good", ["a", "report-2024-01-01", "ünïcødé", "日本語", "emoji😀",
                                  "dots.and_underscores", "x" * 1000])
def test_the_id_rule_accepts_printable_text(good):
    assert check_job_id(good) == good


def test_queue_names_follow_the_same_printable_rule(connection):
    for bad in ("a b", "a:b", "new\nline", "nul\x00", "", "cr\r"):
        with pytest.raises(ValueError, match="queue name"):
            Queue(bad, connection=connection)
    assert check_queue_name("high-priority") == "high-priority"


def double(x):
    return 2 * x


def _snapshot(connection) -> dict:
    return {key: connection.type(key) for key in connection.keys("*")}


def _every_entry_point(connection, bad: str):
    """Each way an id enters through the API, as a callable that enqueues with ``bad``."""
    q = Queue("default", connection=connection)
    parent = q.enqueue(jobs.add, 1, 2, job_id="parent")
    decorated = job_decorator("default", connection=connection)(double)
    return parent, {
        "enqueue job_id": lambda: q.enqueue(jobs.add, 1, 2, job_id=bad),
        "enqueue_call job_id": lambda: q.enqueue_call(jobs.add, (1, 2), job_id=bad),
        "enqueue depends_on id": lambda: q.enqueue(jobs.add, 1, 2, depends_on=[parent, bad]),
        "Dependency id": lambda: q.enqueue(jobs.add, 1, 2,
                                           depends_on=Dependency(jobs=[bad], allow_failure=True)),
        "enqueue_many job_id": lambda: q.enqueue_many([
            Queue.prepare_data(jobs.add, (1, 1), job_id="first-of-many"),
            Queue.prepare_data(jobs.add, (2, 2), job_id=bad)]),
        "enqueue_many depends_on": lambda: q.enqueue_many([
            Queue.prepare_data(jobs.add, (1, 1)),
            Queue.prepare_data(jobs.add, (2, 2), depends_on=bad)]),
        "@job delay job_id": lambda: decorated.delay(1, job_id=bad),
        "enqueue_at job_id": lambda: q.enqueue_at(parent.created_at + timedelta(hours=1),
                                                  jobs.add, 1, 2, job_id=bad),
        "enqueue_in job_id": lambda: q.enqueue_in(timedelta(minutes=5), jobs.add, 1, 2,
                                                  job_id=bad),
    }


@pytest.mark.parametrize("bad", ["x\ny", "nul\x00", "bell\x07", "a:b", "a,b", "surrogate\udcff"])
def test_every_way_an_id_enters_refuses_a_bad_one_and_writes_nothing(connection, bad):
    parent, entry_points = _every_entry_point(connection, bad)
    before = _snapshot(connection)
    for where, enqueue in entry_points.items():
        with pytest.raises(ValueError) as raised:
            enqueue()
        assert repr(bad) in str(raised.value), where
        assert _snapshot(connection) == before, f"{where} wrote to Redis"
    assert connection.lrange(KEYS.queue("default"), 0, -1) == [parent.id.encode()]


def test_fetch_refuses_ids_that_would_build_another_key_and_reads_any_stored_id(connection):
    q = Queue("default", connection=connection)
    stored = q.enqueue(jobs.add, 1, 2)
    # bytes are decoded (what redis-py returns without decode_responses)
    assert Job.fetch(stored.id.encode(), connection=connection).id == stored.id
    assert Job.fetch_many([stored.id.encode()], connection=connection)[0].id == stored.id
    for bad in ("", None, 42, ["a"]):
        with pytest.raises(ValueError, match="job id must be a non-empty string"):
            Job.fetch(bad, connection=connection)
        with pytest.raises(ValueError, match="job id must be a non-empty string"):
            Job.fetch_many([stored.id, bad], connection=connection)
    with pytest.raises(ValueError, match="list of job ids"):
        Job.fetch_many(stored.id, connection=connection)
    # an id some other writer stored, newline and all, can still be read back
    connection.hset(KEYS.job("raw\nid"), mapping={"status": "queued", "func": "tests.jobs.add",
                                                 "origin": "default"})
    assert Job.fetch("raw\nid", connection=connection).func_name == "tests.jobs.add"
    assert job_id_to_look_up(b"\xff\xfe") == "\udcff\udcfe"


def test_frames_carry_any_id_whole(tmp_path):
    read_end, write_end = os.pipe()
    ids = ["x\ny", "", "\n\n\n", "a" * 100_000, "surrogate\udcff", "last"]
    body = b"".join(encode_frame(JOB, i.encode("utf-8", "surrogateescape")) for i in ids)
    pid = os.fork()
    if pid == 0:  # a writer that would overflow the pipe if nobody read
        os.close(read_end)
        view = memoryview(body + encode_frame(CALLBACK, b"5"))
        while view:
            view = view[os.write(write_end, view):]
        os._exit(0)
    os.close(write_end)
    try:
        got = [read_frame(read_end) for _ in range(len(ids) + 1)]
        assert read_frame(read_end) is None  # end of file between frames
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert [(kind, body.decode("utf-8", "surrogateescape")) for kind, body in got[:-1]] == \
        [(JOB, i) for i in ids]
    assert got[-1] == (CALLBACK, b"5")


def _push_raw_job(connection, job_id: str, queue: str, progress: str) -> None:
    """A job written straight into Redis (HSET + RPUSH), bypassing enqueue and its checks."""
    stamp = repr(time.time())
    connection.hset(KEYS.job(job_id), mapping={
        "func": "tests.jobs_cpu.job_details",
        "data": pickle.dumps([None, [progress], {}], protocol=pickle.HIGHEST_PROTOCOL),
        "status": "queued", "origin": queue, "created_at": stamp, "enqueued_at": stamp,
        "timeout": 30, "result_ttl": 500, "failure_ttl": 3600,
    })
    connection.rpush(KEYS.queue(queue), job_id)
    connection.sadd(KEYS.queues, queue)


def test_a_newline_in_a_stored_id_cannot_shift_results_between_fork_jobs(connection,
                                                                         start_worker):
    cpu = Queue("cpu", connection=connection)
    first = cpu.enqueue(jobs_cpu.job_details, "first")
    hostile = "poison\nfirst"  # one id, two lines: the old protocol read it as two jobs
    _push_raw_job(connection, hostile, "cpu", "hostile")
    after = [cpu.enqueue(jobs_cpu.job_details, f"after-{n}") for n in range(3)]
    worker = start_worker("--burst", "--fork-queue", "cpu", "--fork-concurrency", "1", "cpu",
                          *QUIET)
    assert worker.wait(30) == 0, worker.output()
    # the hostile job is ended on its own: it ran as itself, with its own id
    poisoned = Job.fetch(hostile, connection=connection)
    assert poisoned.get_status() == "finished", poisoned.exc_info
    assert poisoned.result["id"] == hostile and poisoned.meta == {"progress": "hostile"}
    # and every other job kept its own result, from one and the same child
    for job, progress in [(first, "first")] + [(a, f"after-{n}") for n, a in enumerate(after)]:
        job.refresh()
        assert job.get_status() == "finished", job.exc_info
        assert job.result["id"] == job.id and job.meta == {"progress": progress}
    assert len({j.result["pid"] for j in [first, *after]}) == 1
    assert cpu.started_job_registry.count == 0
