"""A transient Redis error while a fork child loads its job does not fail the job.

Found by the long chaos run (tests/test_chaos.py, GEVENTQ_CHAOS=long): a CLIENT KILL or a
Redis restart at the moment a fork child loaded its job failed that job with
``job ... could not be loaded in its fork child: ... ConnectionError``. The fault is
injected with a Job class (``--job-class``) whose first load of each job raises the
ConnectionError redis-py raised there; the worker is a real ``geventq worker``.
"""

from __future__ import annotations

import pytest

from tests import jobs_reliability as jobs


@pytest.mark.timeout(60)
def test_a_fork_child_retries_a_transient_error_while_it_loads_its_job(connection, queue,
                                                                      start_worker):
    job = queue.enqueue(jobs.record)
    worker = start_worker("--burst", "--mode", "fork", "--job-class",
                          "tests.jobs_chaos.FlakyFetchJob", "default")
    assert worker.wait(30) == 0, worker.output()
    job.refresh()
    assert connection.sismember("test:flaky-fetch", job.id)  # the injected error happened
    assert job.get_status() == "finished", job.exc_info
    assert jobs.executions(connection, [job.id]) == [1]
