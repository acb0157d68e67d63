"""Unique jobs (API section 8): one waiting job per identity, race-free, in enqueue.lua."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import redis

from geventq import Queue, lifecycle
from geventq.keys import Keys
from tests import jobs


def test_a_waiting_unique_job_is_returned_instead_of_a_new_one(connection):
    q = Queue("q", connection=connection)
    first = q.enqueue(jobs.add, 1, 2, unique=True)
    again = q.enqueue(jobs.add, 1, 2, unique=True)
    other = q.enqueue(jobs.add, 1, 3, unique=True)
    assert again.id == first.id and other.id != first.id
    assert again.get_status() == "queued" and list(again.args) == [1, 2]
    assert q.job_ids == [first.id, other.id]
    # not unique: enqueued as usual, even beside a unique one
    assert q.enqueue(jobs.add, 1, 2).id != first.id
    # unique_key names the identity, whatever the arguments
    keyed = q.enqueue(jobs.add, 5, 5, unique_key="report:7")
    assert q.enqueue(jobs.add, 6, 6, unique_key="report:7").id == keyed.id


def test_once_started_the_next_enqueue_makes_a_new_job(connection):
    q = Queue("q", connection=connection)
    first = q.enqueue(jobs.noop, unique=True)
    claimed = lifecycle.claim(connection, Keys(), ["q"], "w1", 1)
    lifecycle.start(connection, Keys(), "w1", claimed)
    assert not connection.exists(Keys().unique("q", first.extra["unique"]))  # let go at start
    second = q.enqueue(jobs.noop, unique=True)
    assert second.id != first.id
    # a canceled one no longer counts either
    second.cancel()
    assert q.enqueue(jobs.noop, unique=True).id != second.id


def test_scheduled_and_deferred_jobs_count_as_waiting(connection):
    q = Queue("q", connection=connection)
    later = q.enqueue_in(timedelta(hours=1), jobs.add, 1, 1, unique=True)
    assert q.enqueue_in(timedelta(hours=2), jobs.add, 1, 1, unique=True).id == later.id
    parent = q.enqueue(jobs.noop)
    child = q.enqueue(jobs.add, 2, 2, depends_on=parent, unique=True)
    assert child.get_status() == "deferred"
    assert q.enqueue(jobs.add, 2, 2, unique=True).id == child.id


def test_bulk_enqueue_honours_unique(connection):
    q = Queue("q", connection=connection)
    existing = q.enqueue(jobs.add, 1, 1, unique=True)
    made = q.enqueue_many([Queue.prepare_data(jobs.add, (1, 1), unique=True),
                           Queue.prepare_data(jobs.add, (2, 2), unique=True),
                           Queue.prepare_data(jobs.add, (2, 2), unique=True),
                           Queue.prepare_data(jobs.add, (3, 3))])
    assert made[0].id == existing.id and made[1].id == made[2].id
    assert len(q.job_ids) == 3  # existing, (2, 2), (3, 3)


def test_enqueueing_at_the_same_instant_from_many_clients_makes_one_job(connection):
    port = connection.connection_pool.connection_kwargs["port"]
    barrier = threading.Barrier(16)
    ids: list[str] = []

    def enqueue():
        client = redis.Redis(port=port)
        q = Queue("q", connection=client)
        barrier.wait(timeout=10)
        ids.append(q.enqueue(jobs.add, 4, 4, unique=True).id)
        client.close()

    threads = [threading.Thread(target=enqueue) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(ids) == 16 and len(set(ids)) == 1
    assert Queue("q", connection=connection).count == 1


@pytest.mark.parametrize("options, needle", [
    ({"unique": "yes"}, "unique="),
    ({"unique_key": ""}, "unique_key="),
    ({"unique_key": 42}, "unique_key="),
    ({"unique_key": "x", "unique": False}, "unique=False"),
])
def test_bad_unique_options_write_nothing(connection, options, needle):
    with pytest.raises(ValueError, match=needle):
        Queue("q", connection=connection).enqueue(jobs.noop, **options)
    assert connection.dbsize() == 0
