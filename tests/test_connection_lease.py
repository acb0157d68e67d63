"""The connection a client's calls keep out of its pool (scripts.send): it must behave as
the pool does when the server closes it, when threads share a client, and over a fork."""

from __future__ import annotations

import os
import threading

import pytest
import redis

from geventq import Queue
from tests.jobs import noop

pytestmark = pytest.mark.timeout(60)


def test_a_connection_the_server_closed_is_replaced_before_the_next_call(connection, redis_url):
    client = redis.Redis.from_url(redis_url)
    queue = Queue("lease", connection=client)
    queue.enqueue(noop)  # the lease now holds a connection
    admin = redis.Redis.from_url(redis_url)
    killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    job = queue.enqueue(noop)  # no ConnectionError: reconnected before sending
    assert job.get_status() == "queued"
    assert len(queue) == 2
    client.close()
    admin.close()


def test_threads_sharing_a_client_each_get_their_jobs_written(connection, redis_url):
    client = redis.Redis.from_url(redis_url)
    queue = Queue("lease-threads", connection=client)
    errors: list[BaseException] = []
    per_thread = 200

    def enqueue_many() -> None:
        try:
            for _ in range(per_thread):
                queue.enqueue(noop)
        except BaseException as exc:  # reported below: a thread's error is the test's
            errors.append(exc)

    threads = [threading.Thread(target=enqueue_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(queue) == 8 * per_thread
    client.close()


def test_a_bounded_pool_is_never_leased_so_its_cap_holds(connection, redis_url):
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=1, timeout=5)
    client = redis.Redis(connection_pool=pool)
    queue = Queue("lease-bounded", connection=client)
    queue.enqueue(noop)
    # with its only connection leased for good, this pool would time out here
    assert client.ping()
    threads = [threading.Thread(target=lambda: queue.enqueue(noop)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(queue) == 5
    client.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_a_forked_child_uses_its_own_connection_and_the_parent_keeps_its(connection, redis_url):
    client = redis.Redis.from_url(redis_url)
    queue = Queue("lease-fork", connection=client)
    queue.enqueue(noop)
    pid = os.fork()
    if pid == 0:  # child: a fresh lease, never the parent's socket
        code = 1
        try:
            queue.enqueue(noop)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    queue.enqueue(noop)  # the parent's connection was not disturbed by the child
    assert len(queue) == 3
    client.close()
