"""Values near Redis' limits: a job whose result the server would refuse fails alone.

The harness's server gets ``proto-max-bulk-len 1mb`` (the smallest Redis accepts) for
the test, and its own value back afterwards. Real ``geventq worker --burst`` processes.
"""

from __future__ import annotations

import re

import pytest

from geventq import Queue
from geventq.redis_limits import DEFAULT_MAX_BULK_LEN, max_bulk_len, parse_limit, too_large

LIMIT = 1024 * 1024


@pytest.fixture
def small_bulk_len(connection):
    """The harness server with proto-max-bulk-len at its minimum, 1 MB, for one test."""
    before = connection.config_get("proto-max-bulk-len")["proto-max-bulk-len"]
    connection.config_set("proto-max-bulk-len", LIMIT)
    yield LIMIT
    connection.config_set("proto-max-bulk-len", before)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["gevent", "fork"])
def test_a_result_past_proto_max_bulk_len_fails_its_job_and_the_worker_goes_on(
        connection, small_bulk_len, start_worker, mode):
    queue = Queue("default", connection=connection)
    too_big = queue.enqueue("tests.jobs_chaos.big_result", LIMIT + 1)
    at_limit = queue.enqueue("tests.jobs_chaos.big_result", LIMIT - 64)
    small = queue.enqueue("tests.jobs.echo", "small")
    long_failure = queue.enqueue("tests.jobs_chaos.fail_big", LIMIT + 10)
    worker = start_worker("--burst", "--mode", mode, "default")
    assert worker.wait(30) == 0, worker.output()  # without the check: retries forever
    output = worker.output()
    for job in (too_big, at_limit, small, long_failure):
        job.refresh()
    assert too_big.get_status() == "failed"
    assert re.search(rf"could not store the result of job {too_big.id} .*: 10485\d\d bytes, more "
                     rf"than the Redis server's proto-max-bulk-len of {LIMIT} bytes", too_big.exc_info)
    assert "could not store the result" in output
    assert at_limit.get_status() == "finished" and len(at_limit.return_value()) == LIMIT - 64
    assert small.get_status() == "finished" and small.return_value() == [["small"], {}]
    # a failure's text that does not fit is cut, its start and end kept
    assert long_failure.get_status() == "failed"
    text = long_failure.exc_info
    assert "start-of-message" in text and "end-of-message" in text and "characters cut" in text
    assert len(text.encode()) <= LIMIT
    assert set(queue.failed_job_registry.get_job_ids()) == {too_big.id, long_failure.id}
    assert queue.started_job_registry.count == 0


def test_the_limit_is_read_once_per_connection(connection, small_bulk_len):
    assert max_bulk_len(connection) == LIMIT
    connection.config_set("proto-max-bulk-len", 2 * LIMIT)
    assert max_bulk_len(connection) == LIMIT  # cached for this client object
    assert too_large(connection, b"x" * (LIMIT + 1)) == LIMIT
    assert too_large(connection, "é" * (LIMIT // 2 + 1)) == LIMIT  # counted in UTF-8 bytes
    assert too_large(connection, "x" * LIMIT) is None
    assert too_large(connection, 10**100) is None


@pytest.mark.parametrize("reply, limit", [
    ({"proto-max-bulk-len": "1048576"}, 1048576),
    ({b"proto-max-bulk-len": b"2097152"}, 2097152),
    ({"a:1": {"proto-max-bulk-len": "3000000"}, "b:2": {"proto-max-bulk-len": "2000000"}}, 2000000),
    ({}, DEFAULT_MAX_BULK_LEN),
    ({"proto-max-bulk-len": "lots"}, DEFAULT_MAX_BULK_LEN),
    ({"proto-max-bulk-len": "-5"}, DEFAULT_MAX_BULK_LEN),
    (None, DEFAULT_MAX_BULK_LEN),
])
def test_an_odd_config_reply_gives_the_default(reply, limit):
    assert parse_limit(reply) == limit
