"""Each job-state rule is written once; each transition leaves Redis consistent."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from geventq import Queue, Retry
from geventq.exceptions import DuplicateJobError
from geventq.inline import runner_name
from geventq.status import LIVE_STATUSES, TERMINAL_STATUSES, JobStatus
from tests import jobs

LUA = resources.files("geventq").joinpath("lua")


def lua_text(name: str) -> str:
    return LUA.joinpath(name).read_text()


def test_live_statuses_in_lua_equal_the_python_constant():
    match = re.search(r"local LIVE_STATUSES = \{([^}]*)\}", lua_text("_live.lua"))
    assert match, "_live.lua must define LIVE_STATUSES"
    names = set(re.findall(r"(\w+)\s*=\s*true", match.group(1)))
    assert names == LIVE_STATUSES
    assert LIVE_STATUSES | TERMINAL_STATUSES == {s.value for s in JobStatus}
    assert not LIVE_STATUSES & TERMINAL_STATUSES


@pytest.mark.parametrize("script", sorted(p.name for p in LUA.iterdir() if p.name.endswith(".lua")))
def test_no_script_spells_the_live_statuses_out(script):
    text = lua_text(script)
    # three or more status comparisons joined in one condition is the set written again
    for line in text.splitlines():
        assert len(re.findall(r"status [~=]= '(queued|started|deferred|scheduled)'", line)) < 3, line


@pytest.mark.timeout(10)
@pytest.mark.parametrize("how", ["single", "bulk"])
def test_a_live_id_cannot_be_reused_whatever_live_status(queue, connection, how):
    for status in sorted(LIVE_STATUSES):
        job = queue.enqueue(jobs.noop, job_id=f"taken-{status}-{how}")
        connection.hset(job.key, "status", status)
        with pytest.raises(DuplicateJobError):
            if how == "single":
                queue.enqueue(jobs.noop, job_id=job.id)
            else:
                queue.enqueue_many([Queue.prepare_data(jobs.noop, job_id=job.id)])


TRIES: dict[str, int] = {}


def fails_twice(name: str) -> str:
    TRIES[name] = TRIES.get(name, 0) + 1
    if TRIES[name] <= 2:
        raise RuntimeError(f"try {TRIES[name]}")
    return "third time"


@pytest.mark.timeout(10)
def test_inline_job_honours_retry(connection):
    q = Queue("inline", connection=connection, is_async=False)
    job = q.enqueue(fails_twice, "retry-inline", retry=Retry(max=3, interval=60))
    assert job.get_status() == "finished" and job.return_value() == "third time"
    assert len(job.exc_history) == 2 and "try 2" in job.exc_history[1]
    assert connection.hget(job.key, "retries_left") == b"1"
    assert job.id in q.finished_job_registry and job.id not in q.started_job_registry
    assert q.job_ids == [] and job.id not in q.scheduled_job_registry
    assert not connection.exists(q.keys.worker_jobs(runner_name()))


@pytest.mark.timeout(10)
def test_inline_job_out_of_retries_fails(connection):
    q = Queue("inline", connection=connection, is_async=False)
    job = q.enqueue(fails_twice, "retry-out", retry=Retry(max=1))
    assert job.get_status() == "failed" and len(job.exc_history) == 2
    assert job.id in q.failed_job_registry and job.id not in q.started_job_registry


@pytest.mark.timeout(10)
def test_inline_job_end_notifies_waiters(connection):
    q = Queue("inline", connection=connection, is_async=False)
    connection.set(q.keys.waiters("waited"), 2)  # two Job.wait() callers registered
    q.enqueue(jobs.add, 1, 2, job_id="waited")
    assert connection.lrange(q.keys.done("waited"), 0, -1) == [b"1", b"1"]
    assert not connection.exists(q.keys.waiters("waited"))


@pytest.mark.timeout(10)
def test_inline_job_cannot_take_a_live_id(connection):
    q = Queue("inline", connection=connection, is_async=False)
    live = Queue("inline", connection=connection).enqueue(jobs.add, 1, 2, job_id="busy")
    with pytest.raises(DuplicateJobError):
        q.enqueue(jobs.add, 3, 4, job_id="busy")
    assert live.get_status() == "queued"


@pytest.mark.timeout(10)
def test_lost_claims_sorts_and_drops_stale_ids_in_one_script(queue, connection):
    from geventq.worker.recovery import lost_claims

    keys, in_flight = queue.keys, queue.keys.worker_jobs("w-lost")
    claimed = queue.enqueue(jobs.add, 1, 2)
    ended = queue.enqueue(jobs.add, 1, 2)
    connection.hset(ended.key, "status", "finished")
    connection.set(keys.job("not-a-hash"), "x")
    connection.sadd(in_flight, claimed.id, ended.id, "gone", "not-a-hash", "held")
    lost = lost_claims(connection, keys, "w-lost", held={"held"})
    assert lost == [(queue.name, claimed.id)]
    assert connection.smembers(in_flight) == {claimed.id.encode(), b"held"}


def test_forgetting_a_worker_is_written_once():
    import pathlib

    import geventq

    root = pathlib.Path(geventq.__file__).parent
    spelled = [str(p.relative_to(root)) for p in root.rglob("*.py")
               if re.search(r"srem\((self\.)?(worker\.)?keys\.workers", p.read_text())]
    assert spelled == ["lifecycle/recover.py"]


def test_enqueue_path_uses_public_names_only():
    import pathlib

    import geventq

    root = pathlib.Path(geventq.__file__).parent
    for name in ("enqueueing.py", "periodic.py", "inline.py", "execution.py", "cli/info.py"):
        text = (root / name).read_text()
        assert not re.search(r"queue\._\w+\(|\._build_job|worker\._loaded", text), name
        assert 'getattr(job, "' not in text, name


# -- each transition leaves Redis consistent ---------------------------------------------
# Where a job of each status is listed (and nowhere else): the invariant every script keeps.
HOME = {"queued": "queue", "started": "started", "finished": "finished", "failed": "failed",
        "stopped": "failed", "deferred": "deferred", "scheduled": "scheduled",
        "canceled": "canceled"}
KINDS = ("started", "finished", "failed", "deferred", "scheduled", "canceled")


def assert_consistent(connection, queue, workers=("w1",)):
    """Every job of ``queue`` is listed exactly where its status says, and held by a
    worker exactly when it is started."""
    keys = queue.keys
    ids = {i.decode() for i in connection.lrange(queue.key, 0, -1)}
    for kind in KINDS:
        ids |= {i.decode() for i in connection.zrange(keys.registry(kind, queue.name), 0, -1)}
    held = set()
    for w in workers:
        held |= {i.decode() for i in connection.smembers(keys.worker_jobs(w))}
    for job_id in ids | held:
        raw = connection.hget(keys.job(job_id), "status")
        assert raw is not None, f"{job_id} is listed but its hash is gone"
        status = raw.decode()
        places = {kind for kind in KINDS
                  if connection.zscore(keys.registry(kind, queue.name), job_id) is not None}
        if connection.lpos(queue.key, job_id) is not None:
            places.add("queue")
        assert places == {HOME[status]}, f"{job_id} is {status} but listed in {places}"
        assert (job_id in held) == (status == "started"), f"{job_id} {status}, held: {job_id in held}"


def claim_start(queue, n=10, worker="w1"):
    from geventq import lifecycle

    claimed = lifecycle.claim(queue.connection, queue.keys, [queue.name], worker, n)
    return lifecycle.start(queue.connection, queue.keys, worker, claimed)


@pytest.mark.timeout(20)
def test_every_transition_leaves_redis_consistent(queue, connection):
    from datetime import timedelta

    from geventq import lifecycle
    from geventq.endings import Ending

    parent = queue.enqueue(jobs.add, 1, 2)
    child = queue.enqueue(jobs.add, 3, 4, depends_on=parent)
    later = queue.enqueue_in(timedelta(hours=1), jobs.add, 5, 6)
    retried = queue.enqueue(jobs.add, 7, 8, retry=Retry(max=1))
    plain = [queue.enqueue(jobs.add, i, i) for i in range(3)]
    assert_consistent(connection, queue)  # enqueue: queued, deferred, scheduled
    started = {j.id: j for j in claim_start(queue)}
    assert set(started) == {parent.id, retried.id, *(j.id for j in plain)}
    assert_consistent(connection, queue)  # claim + start
    lifecycle.end_jobs(connection, queue.keys, "w1", [
        Ending(started[parent.id], "finished", b"r"),
        Ending(started[plain[0].id], "finished", b"r"),
        Ending(started[plain[1].id], "failed", "Traceback: boom"),
        Ending(started[retried.id], "failed", "Traceback: try 1"),
    ])
    assert_consistent(connection, queue)  # end (batch, with dependents, retry)
    assert child.get_status() == "queued" and retried.get_status() == "queued"
    later.cancel()
    assert_consistent(connection, queue)  # cancel
    again = {j.id: j for j in claim_start(queue)}
    assert set(again) == {child.id, retried.id}
    assert lifecycle.requeue_started(connection, queue.keys, "w1", child.id, queue.name,
                                     "test") == "queued"
    assert_consistent(connection, queue)  # requeue a started job
    connection.sadd(queue.keys.workers, "w1")  # w1 dies: its heartbeat key is absent
    outcomes = lifecycle.recover_dead_workers(connection, queue.keys)
    assert outcomes == {plain[2].id: "queued", retried.id: "queued"}
    assert_consistent(connection, queue)  # recover
    assert not connection.sismember(queue.keys.workers, "w1")


@pytest.mark.timeout(10)
def test_inline_run_leaves_redis_consistent(connection):
    q = Queue("inline", connection=connection, is_async=False)
    q.enqueue(jobs.add, 1, 2)
    q.enqueue(fails_twice, "consistent", retry=Retry(max=1))
    assert_consistent(connection, q, workers=(runner_name(),))


@pytest.mark.timeout(10)
def test_fail_started_is_one_script_that_wakes_waiters_and_survives_a_bad_key(queue, connection):
    from geventq import lifecycle

    good, bad = queue.enqueue(jobs.add, 1, 2), queue.enqueue(jobs.add, 3, 4)
    claim_start(queue)
    for job in (good, bad):
        connection.set(queue.keys.waiters(job.id), 1)
    connection.delete(bad.key)
    connection.set(bad.key, "not a hash")  # HSET fails on it; the other writes still act
    for job in (good, bad):
        lifecycle.fail_started(connection, queue.keys, "w1", job.id, queue.name, "why \u00e9")
        assert connection.lrange(queue.keys.done(job.id), 0, -1) == [b"1"]
        assert job.id in queue.failed_job_registry and job.id not in queue.started_job_registry
    assert not connection.exists(queue.keys.worker_jobs("w1"))
    good.refresh()
    assert good.get_status() == "failed" and good.exc_info == "why \\xe9"
