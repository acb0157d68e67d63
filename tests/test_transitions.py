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
    match = re.search(r"local LIVE_STATUSES = \{([^}]*)\}", lua_text("_common.lua"))
    assert match, "_common.lua must define LIVE_STATUSES"
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
