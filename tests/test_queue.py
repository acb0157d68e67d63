"""Queue and Job against the real redis-server (no worker)."""

from __future__ import annotations

import pytest

from geventq import Dependency, Job, Queue
from geventq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from geventq.job import JobStatus
from tests import jobs


def keys_of(connection):
    return sorted(k.decode() for k in connection.keys("*"))


def test_enqueue_stores_function_args_and_options(queue):
    job = queue.enqueue(jobs.add, 1, y=2, job_timeout="3m", result_ttl=86400, ttl=60,
                        failure_ttl=3600, description="adding", meta={"a": 1})
    fetched = Job.fetch(job.id, connection=queue.connection)
    assert fetched.func_name == "tests.jobs.add"
    assert fetched.args == (1,)
    assert fetched.kwargs == {"y": 2}
    assert (fetched.timeout, fetched.result_ttl, fetched.ttl, fetched.failure_ttl) == (
        180, 86400, 60, 3600)
    assert fetched.description == "adding"
    assert fetched.meta == {"a": 1}
    assert fetched.origin == "default"
    assert fetched.get_status() == JobStatus.QUEUED
    assert fetched.created_at is not None and fetched.enqueued_at is not None
    assert fetched.created_at.tzinfo is not None
    assert fetched.result is None


def test_option_keywords_are_not_passed_to_the_function(queue):
    job = queue.enqueue(jobs.echo, 1, timeout=30, at_front=True, other=5)
    assert job.kwargs == {"other": 5}
    assert job.timeout == 30


def test_args_kwargs_bypass_passes_timeout_to_the_function(queue):
    job = queue.enqueue(jobs.echo, args=(1,), kwargs={"timeout": 9}, job_timeout=20)
    assert job.args == (1,) and job.kwargs == {"timeout": 9} and job.timeout == 20


def test_bypass_rejects_unknown_option_and_writes_nothing(queue, connection):
    with pytest.raises(TypeError, match="unknown job option.*colour"):
        queue.enqueue(jobs.echo, args=(1,), colour="red")
    assert keys_of(connection) == []


def test_enqueue_call(queue):
    job = queue.enqueue_call(func=jobs.add, args=(1, 2), timeout=30)
    assert job.args == (1, 2) and job.timeout == 30


def test_enqueue_by_dotted_path_needs_no_import(queue):
    job = queue.enqueue("my_package.my_module.my_func", 3, 4)
    assert Job.fetch(job.id, connection=queue.connection).func_name == \
        "my_package.my_module.my_func"


def test_builtin_method_and_callable_instance(queue):
    assert queue.enqueue(len, [1]).func_name == "builtins.len"
    method_job = queue.enqueue(jobs.Counter(10).plus, 5)
    fetched = Job.fetch(method_job.id, connection=queue.connection)
    assert fetched.func_name == "plus" and fetched.instance.start == 10
    assert fetched.perform() == 15
    call_job = Job.fetch(queue.enqueue(jobs.Counter(3), 4).id, connection=queue.connection)
    assert call_job.perform() == 12


@pytest.mark.parametrize("value,seconds", [(2, 2), ("2", 2), ("5s", 5), ("3m", 180),
                                          ("1h", 3600), ("1d", 86400), (-1, -1)])
def test_timeout_units(queue, value, seconds):
    assert queue.enqueue(jobs.noop, job_timeout=value).timeout == seconds


@pytest.mark.parametrize("value", ["abc", "5x", "", 0, -5, "1.5h", 2.5, "1.5", True])
def test_malformed_timeout_raises_and_writes_nothing(queue, connection, value):
    with pytest.raises(ValueError) as err:
        queue.enqueue(jobs.noop, job_timeout=value)
    assert repr(value) in str(err.value)
    assert keys_of(connection) == []


@pytest.mark.parametrize("option,value", [("result_ttl", "x"), ("result_ttl", -3),
                                          ("ttl", 0), ("failure_ttl", "forever")])
def test_malformed_ttls_raise_and_write_nothing(queue, connection, option, value):
    with pytest.raises(ValueError, match=option):
        queue.enqueue(jobs.noop, **{option: value})
    assert keys_of(connection) == []


def test_queue_default_timeout(connection):
    high = Queue("high", connection=connection, default_timeout=8)
    assert high.enqueue(jobs.noop).timeout == 8
    assert high.enqueue(jobs.noop, timeout=3600).timeout == 3600
    assert Queue(connection=connection).enqueue(jobs.noop).timeout == 180


def test_result_ttl_unset_means_the_workers_default(queue, connection):
    assert queue.enqueue(jobs.noop).result_ttl is None
    q = Queue("short", connection=connection, default_result_ttl=20)
    assert q.enqueue(jobs.noop).result_ttl == 20


@pytest.mark.parametrize("bad,error", [
    (42, TypeError), ("nodots", ValueError), (lambda: 1, ValueError)])
def test_bad_function_raises_and_writes_nothing(queue, connection, bad, error):
    with pytest.raises(error):
        queue.enqueue(bad)
    assert keys_of(connection) == []


def test_nested_function_is_refused(queue, connection):
    def inner():
        return 1

    with pytest.raises(ValueError, match="inside another function"):
        queue.enqueue(inner)
    assert keys_of(connection) == []


def test_unpicklable_argument_raises_and_writes_nothing(queue, connection):
    import threading

    with pytest.raises(ValueError, match="cannot serialize the arguments of tests.jobs.echo"):
        queue.enqueue(jobs.echo, threading.Lock())
    assert keys_of(connection) == []


def test_missing_dependency_raises_and_writes_nothing(queue, connection):
    with pytest.raises(NoSuchJobError, match="nope"):
        queue.enqueue(jobs.noop, depends_on="nope")
    assert keys_of(connection) == []


def test_json_serializer_round_trip_and_refuses_objects(connection):
    q = Queue("j", connection=connection, serializer="json")
    job = q.enqueue(jobs.echo, 1, "a", k=[1, 2])
    fetched = Job.fetch(job.id, connection=connection, serializer="json")
    assert fetched.args == (1, "a") and fetched.kwargs == {"k": [1, 2]}
    with pytest.raises(ValueError, match="json"):
        q.enqueue(jobs.echo, object())
    assert len(q) == 1


def test_job_id_and_duplicates(queue, connection):
    job = queue.enqueue(jobs.noop, job_id="my_id")
    assert job.id == "my_id" and queue.fetch_job("my_id") == job
    with pytest.raises(DuplicateJobError, match="my_id"):
        queue.enqueue(jobs.noop, job_id="my_id")
    assert queue.job_ids == ["my_id"]


def test_at_front(queue):
    first = queue.enqueue(jobs.noop)
    urgent = queue.enqueue(jobs.noop, at_front=True)
    assert queue.job_ids == [urgent.id, first.id]


def test_introspection(queue, connection):
    ids = [queue.enqueue(jobs.add, i, i).id for i in range(3)]
    assert len(queue) == 3 == queue.count
    assert queue.job_ids == ids
    assert [j.id for j in queue.jobs] == ids
    assert queue.fetch_job("missing") is None
    assert not queue.is_empty()
    assert Queue.all(connection=connection) == [queue]
    assert queue.empty() == 3
    assert queue.is_empty() and keys_of(connection) == ["geventq:queues"]
    queue.enqueue(jobs.noop)
    queue.delete()
    assert Queue.all(connection=connection) == []


def test_ttl_job_disappears_from_queue(queue, connection):
    job = queue.enqueue(jobs.noop, ttl=1)
    keep = queue.enqueue(jobs.noop)
    connection.pexpire(job.key, 1)  # let the ttl run out now rather than wait a second
    from tests.helpers import wait_for

    wait_for(lambda: not connection.exists(job.key), timeout=2)
    connection.zadd(queue.keys.expiring("default"), {job.id: 0})
    assert queue.job_ids == [keep.id]
    with pytest.raises(NoSuchJobError):
        Job.fetch(job.id, connection=connection)


def test_fetch_many_and_missing(queue, connection):
    a, b = queue.enqueue(jobs.noop), queue.enqueue(jobs.noop)
    assert Job.fetch_many([a.id, "x", b.id], connection=connection) == [a, None, b]
    with pytest.raises(NoSuchJobError):
        Job.fetch("x", connection=connection)


def test_depends_on_defers_until_parent_finishes(queue):
    parent = queue.enqueue(jobs.noop)
    child = queue.enqueue(jobs.noop, depends_on=parent)
    many = queue.enqueue(jobs.noop, depends_on=[parent, child.id])
    assert child.get_status() == "deferred" and many.get_status() == "deferred"
    assert set(queue.deferred_job_registry.get_job_ids()) == {child.id, many.id}
    assert queue.job_ids == [parent.id]


def test_dependency_already_finished_enqueues_at_once(connection):
    sync = Queue("default", connection=connection, is_async=False)
    done = sync.enqueue(jobs.add, 1, 1)
    q = Queue("default", connection=connection)
    child = q.enqueue(jobs.noop, depends_on=done)
    assert child.get_status() == "queued" and q.job_ids == [child.id]


def test_failed_dependency_with_allow_failure(connection):
    sync = Queue("default", connection=connection, is_async=False)
    failed = sync.enqueue(jobs.fail)
    q = Queue("default", connection=connection)
    strict = q.enqueue(jobs.noop, depends_on=failed)
    lenient = q.enqueue(jobs.noop, depends_on=Dependency(jobs=[failed], allow_failure=True))
    assert strict.get_status() == "deferred" and lenient.get_status() == "queued"


def test_cancel_requeue_delete(queue, connection):
    job = queue.enqueue(jobs.noop)
    job.cancel()
    assert job.get_status() == "canceled" and job.id in queue.canceled_job_registry
    assert queue.job_ids == []
    job.requeue()
    assert job.get_status() == "queued" and queue.job_ids == [job.id]
    job.delete()
    assert queue.job_ids == [] and not connection.exists(job.key)


def test_a_job_whose_hash_names_no_queue(queue, connection):
    """cancel and requeue refuse it (cancel used to file it under a queue named 'None',
    requeue to fail with redis-py's DataError); delete still deletes it."""
    job = queue.enqueue(jobs.noop)
    connection.hdel(job.key, "origin")
    with pytest.raises(InvalidJobOperation, match="names no queue"):
        Job.fetch(job.id, connection=connection).cancel()
    assert job.get_status() == "queued" and not connection.exists("geventq:canceled:None")
    connection.hset(job.key, "status", "failed")
    with pytest.raises(InvalidJobOperation, match="names no queue"):
        Job.fetch(job.id, connection=connection).requeue()
    assert job.get_status() == "failed"
    Job.fetch(job.id, connection=connection).delete()
    assert not connection.exists(job.key)


def test_is_async_false_runs_inline(connection):
    q = Queue("low", connection=connection, is_async=False)
    job = q.enqueue(jobs.add, 13, 8)
    assert job.result == 21 and job.get_status() == "finished"
    assert job.id in q.finished_job_registry
    failed = q.enqueue(jobs.fail, "bad")
    assert failed.is_failed and "ValueError: bad" in failed.exc_info
    assert failed.id in q.failed_job_registry


def test_malformed_retry_raises_and_writes_nothing(queue, connection):
    with pytest.raises(ValueError, match="retry= takes a Retry"):
        queue.enqueue(jobs.noop, retry=3)
    assert keys_of(connection) == []


def test_enqueue_many(queue, connection):
    datas = [Queue.prepare_data(jobs.add, (i, i), job_id=f"j{i}") for i in range(1200)]
    created = queue.enqueue_many(datas)
    assert len(created) == 1200 and len(queue) == 1200
    assert queue.job_ids[:2] == ["j0", "j1"]


def test_enqueue_many_bad_item_writes_nothing(queue, connection):
    datas = [Queue.prepare_data(jobs.add, (1, 2)), Queue.prepare_data(jobs.add, (1, 2),
                                                                      timeout="zz")]
    with pytest.raises(ValueError, match="zz"):
        queue.enqueue_many(datas)
    datas = [Queue.prepare_data(jobs.add, (1, 2)),
             Queue.prepare_data(jobs.add, (1, 2), depends_on="ghost")]
    with pytest.raises(NoSuchJobError, match="ghost"):
        queue.enqueue_many(datas)
    assert keys_of(connection) == []


def test_decorator_delay(connection):
    from geventq.decorators import job

    @job("low", connection=connection, timeout=5)
    def local_add(x, y):
        return x + y

    assert local_add(3, 4) == 7
    decorated = job(Queue("low", connection=connection), result_ttl=10)(jobs.add)
    queued = decorated.delay(3, 4)
    assert queued.args == (3, 4) and queued.result_ttl == 10
    assert Queue("low", connection=connection).job_ids == [queued.id]
    with pytest.raises(TypeError, match="colour"):
        job("low", connection=connection, colour=1)


def test_custom_prefix_with_hash_tag(connection):
    q = Queue("default", connection=connection, prefix="{gq}:")
    job = q.enqueue(jobs.noop)
    assert all(k.startswith("{gq}:") for k in keys_of(connection))
    assert Job.fetch(job.id, connection=connection, prefix="{gq}:").origin == "default"


def test_decoded_connection_is_refused():
    import redis

    with pytest.raises(ValueError, match="decode_responses"):
        Queue(connection=redis.Redis(decode_responses=True))
