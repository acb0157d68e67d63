"""Every Lua script's cost is bounded per call, whatever Redis holds (issue 12: #2, #12).

Against the harness's real Redis: 9,000 jobs whose ttl ran out, a queue of 20,000
emptied while jobs keep coming, counters and sets holding what no worker wrote.
Redis's SLOWLOG shows that no single call held it for long (the code before took
seconds, or failed, or never returned).
"""

from __future__ import annotations

import glob
import os
import re
import threading
import time

import pytest

from geventq import Queue, SimpleWorker, lifecycle, scripts
from geventq.keys import Keys
from tests import jobs
from tests.helpers import wait_for

KEYS = Keys()
LUA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "geventq", "lua")
SLOW_MS = 250  # no command may hold Redis this long (generous: the machine is shared)


@pytest.fixture
def slow_commands(connection):
    """Call it to get the commands that held Redis over SLOW_MS since the test began."""
    before = connection.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    connection.config_set("slowlog-log-slower-than", SLOW_MS * 1000)
    connection.slowlog_reset()
    yield lambda: [(e["duration"] // 1000, e["command"][:80]) for e in connection.slowlog_get(128)]
    connection.config_set("slowlog-log-slower-than", before)


def enqueue_plain(queue: Queue, n: int, **options) -> list[str]:
    return [job.id for job in queue.enqueue_many(
        [Queue.prepare_data(jobs.noop, **options) for _ in range(n)])]


def wait_expired(connection, queue: Queue, n: int) -> None:
    """Until n ids of the queue have run out of ttl (ttl=1: about a second)."""
    wait_for(lambda: connection.zcount(KEYS.expiring(queue.name), "-inf", time.time()) >= n,
             timeout=10, message=f"{n} ids of {queue.name} to expire")


# -- #2: ids whose ttl ran out ----------------------------------------------------
@pytest.mark.parametrize("worker_class", ["geventq.GeventWorker", "geventq.SimpleWorker"])
def test_9000_expired_jobs_neither_wedge_nor_stall_a_worker(connection, start_worker,
                                                            slow_commands, worker_class):
    queue, other = Queue("default", connection=connection), Queue("other", connection=connection)
    enqueue_plain(queue, 9000, ttl=1)
    behind = enqueue_plain(queue, 30)  # behind a wall of expired ids
    elsewhere = other.enqueue(jobs.noop).id
    wait_expired(connection, queue, 9000)
    assert len(queue) == 30 and queue.count == 30

    worker = start_worker("--burst", "-w", worker_class, "default", "other")
    assert worker.wait(60) == 0, worker.output()
    for job_id in behind + [elsewhere]:
        assert connection.hget(KEYS.job(job_id), "status") == b"finished", worker.output()
    assert connection.llen(queue.key) == 0 and connection.zcard(KEYS.expiring("default")) == 0
    assert "Traceback" not in worker.output()
    assert slow_commands() == []


def test_a_queue_full_of_expired_ids_does_not_starve_the_others(connection, slow_commands):
    queue, other = Queue("default", connection=connection), Queue("other", connection=connection)
    enqueue_plain(queue, 9000, ttl=1)
    behind = enqueue_plain(queue, 2)
    wait_expired(connection, queue, 9000)
    job = other.enqueue(jobs.noop)
    # the first claim drops what its budget allows from "default", then takes "other"'s job
    assert lifecycle.claim(connection, KEYS, ["default", "other"], "w", 1) == [("other", job.id)]
    assert connection.llen(queue.key) > 2 and queue.count == 2
    # the next ones go on through the expired ids until they reach the live jobs
    claimed = lifecycle.claim(connection, KEYS, ["default", "other"], "w", 5)
    assert claimed == [("default", behind[0]), ("default", behind[1])]
    assert connection.llen(queue.key) == 0 and connection.zcard(KEYS.expiring("default")) == 0
    assert slow_commands() == []


def test_job_ids_drop_scattered_expired_ids_in_bounded_steps(connection, slow_commands):
    queue = Queue("default", connection=connection)
    live = []
    for _ in range(9):  # 9,000 expired ids spread through 27,000 entries
        enqueue_plain(queue, 1000, ttl=1)
        live += enqueue_plain(queue, 2000)
    wait_expired(connection, queue, 9000)
    assert queue.count == 18000
    assert queue.get_job_ids(3990, 20) == live[3990:4010]  # purges only up to the slice
    assert queue.job_ids == live
    assert connection.llen(queue.key) == 18000
    assert connection.zcard(KEYS.expiring("default")) == 0
    assert slow_commands() == []


def test_an_expired_jobs_id_reused_is_claimed_once(connection):
    queue = Queue("default", connection=connection)
    queue.enqueue(jobs.noop, job_id="nightly", ttl=1)
    queue.enqueue_many([Queue.prepare_data(jobs.noop, job_id="hourly", ttl=1)])
    keep = queue.enqueue(jobs.noop)
    wait_expired(connection, queue, 2)
    wait_for(lambda: not connection.exists(KEYS.job("nightly"), KEYS.job("hourly")), timeout=5)
    # the old entries are still in the list (no claim reached them): the new jobs must
    # not be claimed twice through them
    queue.enqueue(jobs.noop, job_id="nightly", ttl=60)
    queue.enqueue_many([Queue.prepare_data(jobs.noop, job_id="hourly", ttl=60)])
    assert connection.lrange(queue.key, 0, -1) == [keep.id.encode(), b"nightly", b"hourly"]
    claimed = lifecycle.claim(connection, KEYS, ["default"], "w", 10)
    assert claimed == [("default", keep.id), ("default", "nightly"), ("default", "hourly")]


# -- #12: empty() on a busy queue ------------------------------------------------
@pytest.mark.timeout(90)
def test_empty_ends_while_jobs_keep_coming(connection, slow_commands):
    queue = Queue("default", connection=connection)
    snapshot = enqueue_plain(queue, 20000)
    added: list[str] = []
    stop = threading.Event()

    def enqueue_200_per_second():
        while not stop.wait(0.005):
            added.append(queue.enqueue(jobs.noop).id)

    enqueuer = threading.Thread(target=enqueue_200_per_second)
    enqueuer.start()
    try:
        wait_for(lambda: len(added) >= 5, message="the enqueuer to run")
        began = time.monotonic()
        removed = queue.empty()
        took = time.monotonic() - began
        so_far = len(added)
        wait_for(lambda: len(added) >= so_far + 3, message="the enqueuer to go on")
    finally:
        stop.set()
        enqueuer.join(10)
    assert took < 30, f"empty() took {took:.1f} s"
    assert 20005 <= removed <= 20000 + len(added)
    assert not any(connection.exists(KEYS.job(i)) for i in snapshot[::97])
    # what came after the snapshot is still queued, each id with its hash
    queued = [i.decode() for i in connection.lrange(queue.key, 0, -1)]
    assert queued and queued == added[len(added) - len(queued):]
    assert all(connection.hget(KEYS.job(i), "status") == b"queued" for i in queued)
    assert not connection.exists(KEYS.emptying("default"))
    assert slow_commands() == []


def test_an_interrupted_empty_is_finished_by_the_next(connection):
    queue = Queue("default", connection=connection)
    first = enqueue_plain(queue, 3)
    # the first step of an empty() whose process then died: the ids are set aside
    scripts.call(connection, "empty", [queue.key, KEYS.expiring("default"), KEYS.wake("default"),
                                       KEYS.emptying("default")], [])
    later = queue.enqueue(jobs.noop)
    assert queue.count == 1
    assert queue.empty() == 4
    assert not any(connection.exists(KEYS.job(i)) for i in first + [later.id])
    assert connection.keys("*") == [b"geventq:queues"]


# -- the audit of the other scripts -------------------------------------------------
@pytest.mark.parametrize("waiters", [b"10000000000", b"not a number", b"-3", b"inf", b"nan"])
def test_a_waiters_counter_no_worker_wrote_does_not_block_or_fail_an_ending(
        connection, slow_commands, waiters):
    queue = Queue("default", connection=connection)
    job = queue.enqueue(jobs.noop)
    connection.set(KEYS.waiters(job.id), waiters)
    SimpleWorker([queue], connection=connection).work(burst=True)
    assert job.get_status() == "finished"
    assert connection.llen(KEYS.done(job.id)) <= 10000
    assert slow_commands() == []


def test_a_failed_parent_releases_9000_dependents_in_one_ending(connection):
    queue = Queue("default", connection=connection)
    parent = queue.enqueue(jobs.fail)
    # dependents whose hashes are gone: each is released (taken off the set) by the ending
    connection.sadd(KEYS.dependents(parent.id), *(f"gone-{i}" for i in range(9000)))
    SimpleWorker([queue], connection=connection).work(burst=True)
    assert parent.get_status() == "failed"
    assert not connection.exists(KEYS.dependents(parent.id))


def unpack_calls(source: str):
    """(line number, argument count) of every unpack(...) in the code (not the comments)
    of a Lua source; a call whose parentheses do not close on its line counts 0."""
    for line_no, line in enumerate(source.splitlines(), 1):
        code = line.split("--")[0]
        for match in re.finditer(r"\bunpack\(", code):
            depth, args = 1, 1
            for c in code[match.end():]:
                depth += {"(": 1, ")": -1}.get(c, 0)
                if depth == 0:
                    break
                args += c == "," and depth == 1
            yield line_no, args if depth == 0 else 0


def test_no_script_unpacks_a_list_it_did_not_bound():
    """unpack() fails past a few thousand values: each call names its range
    (``unpack(t, first, last)``) or says, in a ``-- bounded:`` comment on its line or the
    line above, what bounds the list."""
    problems = []
    for path in sorted(glob.glob(os.path.join(LUA_DIR, "*.lua"))):
        with open(path) as fh:
            source = fh.read()
        lines = source.splitlines()
        for line_no, args in unpack_calls(source):
            justified = any("-- bounded:" in line for line in lines[max(line_no - 2, 0):line_no])
            if args < 3 and not justified:
                problems.append(f"{os.path.basename(path)}:{line_no}: {lines[line_no - 1].strip()}")
    assert not problems, "unbounded unpack():\n" + "\n".join(problems)
