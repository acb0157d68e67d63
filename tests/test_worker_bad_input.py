"""Bad input in the worker: each broken job fails with a clear reason; the worker carries on.

One burst worker (a real `geventq worker` process) gets a queue holding every
kind of broken job, then a good one; each worker class is run once.
"""

from __future__ import annotations

import pytest

from geventq import Queue
from geventq.job import Job
from geventq.keys import Keys
from tests import jobs_reliability as jobs

KEYS = Keys()


def broken_jobs(connection, queue: Queue) -> dict[str, str]:
    """Enqueue one job per kind of bad input; {case: job id}."""
    cases = {
        "no module": queue.enqueue("tests.no_such_module.func"),
        "no function": queue.enqueue("tests.jobs_reliability.no_such_function"),
        "class gone": queue.enqueue(jobs.use_payload, jobs.Payload(3)),
        "corrupt data": queue.enqueue(jobs.add, 1, 2),
        "corrupt meta": queue.enqueue(jobs.add, 1, 2, meta={"a": 1}),
        "corrupt timeout": queue.enqueue(jobs.add, 1, 2),
        "no func field": queue.enqueue(jobs.add, 1, 2),
        "no data field": queue.enqueue(jobs.add, 1, 2),
        "no origin field": queue.enqueue(jobs.add, 2, 2),
        "hash expired": queue.enqueue(jobs.add, 1, 2),
        "unpicklable result": queue.enqueue(jobs.unpicklable),
    }
    ids = {case: job.id for case, job in cases.items()}
    key = KEYS.job
    data = connection.hget(key(ids["class gone"]), "data")
    assert b"tests.jobs_reliability" in data
    # the class's module renamed (same length, so the pickle stays well-formed): gone
    connection.hset(key(ids["class gone"]), "data",
                    data.replace(b"tests.jobs_reliability", b"tests.gone_reliability"))
    connection.hset(key(ids["corrupt data"]), "data", b"\x80\x05not a pickle at all")
    connection.hset(key(ids["corrupt meta"]), "meta", b"garbage")
    connection.hset(key(ids["corrupt timeout"]), "timeout", "soon")
    connection.hdel(key(ids["no func field"]), "func")
    connection.hdel(key(ids["no data field"]), "data")
    connection.hdel(key(ids["no origin field"]), "origin")
    connection.delete(key(ids["hash expired"]))
    # an id in the queue whose hash holds nothing but a status
    connection.hset(key("bare"), "status", "queued")
    connection.rpush(KEYS.queue("default"), "bare")
    ids["bare hash"] = "bare"
    ids["good"] = queue.enqueue(jobs.add, 20, 22).id  # the worker must still get here
    return ids


EXPECTED = {  # case: text the failure's exc_info must contain
    "no module": "cannot import the function 'tests.no_such_module.func'",
    "no function": "cannot import the function 'tests.jobs_reliability.no_such_function'",
    "class gone": "No module named 'tests.gone_reliability'",
    "corrupt data": "cannot deserialize the arguments of job",
    "corrupt meta": "cannot deserialize the meta of job",
    "corrupt timeout": "cannot be loaded: ValueError",
    "no func field": "its hash has no 'func' field",
    "no data field": "its hash has no 'data' field",
    "bare hash": "its hash has no 'func', 'data' fields",
    "unpicklable result": "cannot be serialized with pickle",
}


@pytest.mark.parametrize("worker_class", ["geventq.GeventWorker", "geventq.SimpleWorker"])
def test_broken_jobs_fail_with_a_reason_and_the_worker_carries_on(connection, queue,
                                                                  start_worker, worker_class):
    ids = broken_jobs(connection, queue)
    worker = start_worker("--burst", "-w", worker_class, "default")
    assert worker.wait(30) == 0
    output = worker.output()
    assert "Traceback" not in output, output

    failed = set(queue.failed_job_registry.get_job_ids())
    for case, text in EXPECTED.items():
        job_id = ids[case]
        assert job_id in failed, f"{case}: not in the failed registry\n{output}"
        status, exc_info = connection.hmget(KEYS.job(job_id), "status", "exc_info")
        assert status == b"failed", case
        assert text in exc_info.decode(), f"{case}: {exc_info.decode()}"
    assert "cannot deserialize the arguments" in connection.hget(
        KEYS.job(ids["class gone"]), "exc_info").decode()

    # the job whose hash lost its origin still ends in the queue it was claimed from
    assert ids["no origin field"] in queue.finished_job_registry
    assert Job.fetch(ids["no origin field"], connection=connection).result == 4
    # the id whose hash expired is skipped, logged, and left nowhere
    assert f"job {ids['hash expired']} taken from queue default no longer exists" in output
    assert ids["hash expired"] not in queue.started_job_registry
    assert ids["hash expired"] not in failed
    assert queue.fetch_job(ids["good"]).result == 42
    assert queue.count == 0 and queue.started_job_registry.count == 0
