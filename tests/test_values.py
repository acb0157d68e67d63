"""Numbers at the boundary: every TTL, timeout, interval and time is bounded and
type-checked where it enters, and no enqueue script can stop half-way.

Against the test's private redis-server: a refused value leaves the key space
exactly as it was, and the job id it named stays usable.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, tzinfo

import pytest

from geventq import Callback, Queue, Retry, SimpleWorker
from geventq import scripts as lua
from geventq.decorators import job as job_decorator
from geventq.keys import Keys
from geventq.utils import MAX_SECONDS
from tests import jobs, jobs_sched

KEYS = Keys()
NAN, INF = float("nan"), float("inf")
HUGE = 10**17  # the value: 'value is not an integer' inside a script, after writes

BAD_NUMBERS = {
    "result_ttl": [HUGE, MAX_SECONDS + 1, -2, 1.5, NAN, INF, -INF, True, "abc", "1.5", [5]],
    "ttl": [HUGE, MAX_SECONDS + 1, 0, -2, 1.5, NAN, INF, False, "soon", {}],
    "failure_ttl": [HUGE, MAX_SECONDS + 1, 0, -2, 0.5, NAN, INF, True, "x"],
    "job_timeout": [HUGE, MAX_SECONDS + 1, 0, -2, 2.5, NAN, INF, True, "1.5h", "99999999d", ""],
}
CASES = [(option, value) for option, values in BAD_NUMBERS.items() for value in values]


def snapshot(connection) -> dict:
    """Every key with its type and content: what 'nothing written' compares."""
    state = {}
    for key in connection.keys("*"):
        kind = connection.type(key).decode()
        if kind == "hash":
            state[key] = connection.hgetall(key)
        elif kind == "list":
            state[key] = connection.lrange(key, 0, -1)
        elif kind == "zset":
            state[key] = connection.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            state[key] = connection.smembers(key)
        else:
            state[key] = connection.get(key)
    return state


@pytest.fixture
def seeded(connection, queue):
    """A queue holding one job already, so 'nothing written' is checked against data."""
    queue.enqueue(jobs.add, 1, 2, job_id="already-there", ttl=60)
    return queue


@pytest.mark.parametrize("option, value", CASES, ids=[f"{o}={v!r}" for o, v in CASES])
def test_enqueue_refuses_an_out_of_range_number_and_writes_nothing(connection, seeded,
                                                                   option, value):
    before = snapshot(connection)
    attempts = {
        "enqueue": lambda: seeded.enqueue(jobs.add, 1, 2, job_id="wanted", **{option: value}),
        "enqueue_call": lambda: seeded.enqueue_call(jobs.add, (1, 2), job_id="wanted",
                                                    **{option: value}),
        "enqueue_many": lambda: seeded.enqueue_many([
            Queue.prepare_data(jobs.add, (0, 0), job_id="fine"),
            Queue.prepare_data(jobs.add, (1, 2), job_id="wanted", **{option: value})]),
        "enqueue_in": lambda: seeded.enqueue_in(timedelta(hours=1), jobs.add, 1, 2,
                                                job_id="wanted", **{option: value}),
        "with depends_on": lambda: seeded.enqueue(jobs.add, 1, 2, job_id="wanted",
                                                  depends_on="already-there", **{option: value}),
        "@job": lambda: job_decorator(seeded, **{option: value})(jobs.echo).delay(1),
    }
    for where, attempt in attempts.items():
        with pytest.raises(ValueError) as raised:
            attempt()
        assert option in str(raised.value) and repr(value) in str(raised.value), where
        assert snapshot(connection) == before, f"{where} wrote something"
    # the id it named was never taken
    assert seeded.enqueue(jobs.add, 1, 2, job_id="wanted").get_status() == "queued"


@pytest.mark.timeout(60, method="thread")  # SimpleWorker in-process uses SIGALRM
def test_the_largest_accepted_values_are_taken_by_redis_and_the_job_runs(connection, queue):
    """2**31 - 1 s everywhere: Redis takes them as EXPIRE and scores, the worker ends the job."""
    top = queue.enqueue(jobs.add, 2, 3, result_ttl=MAX_SECONDS, ttl=MAX_SECONDS,
                        failure_ttl=MAX_SECONDS, job_timeout=MAX_SECONDS,
                        retry=Retry(max=2, interval=MAX_SECONDS),
                        on_success=Callback(jobs_sched.on_success_record, timeout=MAX_SECONDS))
    assert connection.ttl(top.key) > MAX_SECONDS - 60
    [many] = queue.enqueue_many([Queue.prepare_data(jobs.add, (1, 1), ttl=MAX_SECONDS,
                                                    result_ttl=MAX_SECONDS)])
    later = queue.enqueue_in(MAX_SECONDS, jobs.add, 1, 1, ttl=MAX_SECONDS)
    assert later.get_status() == "scheduled"
    SimpleWorker([queue], connection=connection).work(burst=True)
    for job in (top, many):
        assert job.get_status() == "finished" and job.result in (5, 2)
        assert connection.ttl(job.key) > MAX_SECONDS - 60
    assert queue.finished_job_registry.count == 2


def test_whole_floats_and_numeric_strings_are_taken_as_seconds(queue):
    job = queue.enqueue(jobs.add, 1, 2, result_ttl=60.0, ttl="30", failure_ttl=7200.0,
                        job_timeout=90.0)
    assert (job.result_ttl, job.ttl, job.failure_ttl, job.timeout) == (60, 30, 7200, 90)
    job.refresh()
    assert (job.result_ttl, job.ttl, job.failure_ttl, job.timeout) == (60, 30, 7200, 90)


@pytest.mark.parametrize("make, message", [
    (lambda c: Queue("q", connection=c, default_timeout=HUGE), "default_timeout"),
    (lambda c: Queue("q", connection=c, default_timeout=NAN), "default_timeout"),
    (lambda c: Queue("q", connection=c, default_result_ttl=1.5), "default_result_ttl"),
    (lambda c: Queue("q", connection=c, default_result_ttl=HUGE), "default_result_ttl"),
    (lambda c: Retry(max=HUGE), "Retry\\(max"),
    (lambda c: Retry(max=2, interval=INF), "Retry\\(interval"),
    (lambda c: Retry(max=2, interval=[1, NAN]), "Retry\\(interval"),
    (lambda c: Retry(max=2, interval=HUGE), "Retry\\(interval"),
    (lambda c: Retry(max=2, interval=1, backoff=True, max_interval=INF), "max_interval"),
    (lambda c: Callback(jobs_sched.on_success_record, timeout=HUGE), "Callback timeout"),
    (lambda c: Callback(jobs_sched.on_success_record, timeout=NAN), "Callback timeout"),
    (lambda c: Callback("tests.jobs.bad\udcff"), "lone surrogate"),
])
def test_queue_retry_and_callback_numbers_are_bounded_too(connection, make, message):
    with pytest.raises(ValueError, match=message):
        make(connection)
    assert connection.keys("*") == []


@pytest.mark.parametrize("delay", [HUGE, NAN, INF, -INF, timedelta(days=10**6), MAX_SECONDS + 1])
def test_enqueue_in_refuses_delays_out_of_range(connection, queue, delay):
    with pytest.raises(ValueError, match="enqueue_in takes a finite delay"):
        queue.enqueue_in(delay, jobs.add, 1, 2)
    assert connection.keys("*") == []


@pytest.mark.parametrize("delay", ["soon", None, True, [1]])
def test_enqueue_in_refuses_delays_of_another_type(connection, queue, delay):
    with pytest.raises(TypeError, match="enqueue_in takes a timedelta or seconds"):
        queue.enqueue_in(delay, jobs.add, 1, 2)
    assert connection.keys("*") == []


def test_enqueue_at_takes_any_datetime_and_a_negative_delay_is_due_at_once(queue):
    far = queue.enqueue_at(datetime(9999, 12, 31, 23, 59), jobs.add, 1, 2)
    past = queue.enqueue_at(datetime(1, 1, 1), jobs.add, 1, 2)
    now_ish = queue.enqueue_in(-30, jobs.add, 1, 2)
    registry = queue.scheduled_job_registry
    assert registry.get_scheduled_time(far).year == 9999
    assert registry.get_scheduled_time(past).year == 1
    assert registry.get_scheduled_time(now_ish).timestamp() <= time.time()
    bad = datetime(2030, 1, 1, tzinfo=BrokenZone())
    with pytest.raises(ValueError, match="enqueue_at cannot place"):
        queue.enqueue_at(bad, jobs.add, 1, 2)
    assert registry.count == 3


class BrokenZone(tzinfo):
    """A time zone whose offset Python refuses (two days)."""

    def utcoffset(self, dt):
        return timedelta(days=2)


# -- the scripts themselves check their arguments before their first write ------------------

def _enqueue_args(ttl="-1", now="1700000000.5", n_deps="0", scheduled_at="", fields=None):
    keys = [KEYS.job("j"), KEYS.queue("q"), KEYS.queues, KEYS.wake("q"),
            KEYS.registry("deferred", "q"), KEYS.pending("j"), KEYS.expiring("q"),
            KEYS.registry("scheduled", "q")]
    args = ["j", "q", now, "0", ttl, n_deps, "0", scheduled_at,
            *(fields if fields is not None else ["origin", "q", "func", "tests.jobs.add"])]
    return keys, args


@pytest.mark.parametrize("bad, what", [
    ({"ttl": "1e17"}, "ttl"), ({"ttl": "1.5"}, "ttl"), ({"ttl": "abc"}, "ttl"),
    ({"ttl": "0"}, "ttl"), ({"ttl": "nan"}, "ttl"), ({"now": "inf"}, "now"),
    ({"now": "soon"}, "now"), ({"n_deps": "1"}, "number of dependencies"),
    ({"n_deps": "-1"}, "number of dependencies"), ({"scheduled_at": "nan"}, "scheduled_at"),
    ({"fields": []}, "number of hash field arguments"),
    ({"fields": ["origin"]}, "number of hash field arguments"),
])
def test_enqueue_lua_refuses_a_bad_argument_before_writing(connection, bad, what):
    keys, args = _enqueue_args(**bad)
    reply = lua.call(connection, "enqueue", keys, args)
    assert reply[0] == b"invalid" and reply[1].decode() == what
    assert connection.keys("*") == []


def _batch_args(ttl="", now="1700000000.5", shared=("func", "tests.jobs.add"), jobs_=1,
                own_count="0"):
    keys = [KEYS.queue("q"), KEYS.queues, KEYS.wake("q"), KEYS.expiring("q"), KEYS.scratch]
    args = ["q", now, ttl, "", "", str(len(shared)), *shared]
    for n in range(jobs_):
        keys.append(KEYS.job(f"b{n}"))
        args += [f"b{n}", b"data", own_count]
    return keys, args


@pytest.mark.parametrize("bad, what", [
    ({"ttl": "1e17"}, "ttl"), ({"ttl": "2.5"}, "ttl"), ({"ttl": "-1"}, "ttl"),
    ({"now": "nan"}, "now"), ({"shared": ("func",)}, "number of shared field arguments"),
    ({"own_count": "2"}, "number of own field arguments"),
    ({"own_count": "x"}, "number of own field arguments"),
    ({"jobs_": 1001}, "number of jobs"),
])
def test_enqueue_batch_lua_refuses_a_bad_argument_before_writing(connection, bad, what):
    keys, args = _batch_args(**bad)
    reply = lua.call(connection, "enqueue_batch", keys, args)
    assert reply[0] == b"invalid" and reply[1].decode() == what
    assert connection.keys("*") == []


@pytest.mark.parametrize("position, value, what", [
    (2, "nan", "occurrence"), (4, "x", "now"), (6, "1e17", "ttl"), (6, "1.5", "ttl"),
    (6, "0", "ttl"),
])
def test_periodic_lua_refuses_a_bad_argument_before_writing(connection, position, value, what):
    keys = [KEYS.periodic(), KEYS.job("p"), KEYS.queue("q"), KEYS.wake("q"), KEYS.queues,
            KEYS.expiring("q")]
    args = ["entry", "", "1700000000.0", "q", "1700000000.5", "0", "-1", "p",
            "func", "tests.jobs.add"]
    args[position] = value
    reply = lua.call(connection, "periodic", keys, args)
    assert reply[0] == b"invalid" and reply[1].decode() == what
    assert connection.keys("*") == []


def test_schedule_due_ignores_a_stored_ttl_it_cannot_use_and_queues_every_due_job(connection,
                                                                                   queue):
    """A scheduled job's hash is untrusted: a garbage ttl written into it by someone else
    neither aborts the script half-way nor stops the other due jobs."""
    jobs_ = [queue.enqueue_in(-1, jobs.add, n, n, ttl=100) for n in range(4)]
    for job, garbage in zip(jobs_, ["1.5", "1e17", "soon"]):
        connection.hset(job.key, "ttl", garbage)
    k = queue.keys
    ids = [job.id for job in jobs_]
    moved = lua.call(connection, "schedule_due", [
        k.registry("scheduled", "default"), k.queue("default"), k.wake("default"), k.queues,
        k.expiring("default"), *(k.job(i) for i in ids)], ["default", repr(time.time()), *ids])
    assert moved == 4
    assert queue.job_ids == ids and all(j.get_status() == "queued" for j in jobs_)
    assert [connection.ttl(j.key) for j in jobs_[:3]] == [-1, -1, -1]  # no expiry applied
    assert 0 < connection.ttl(jobs_[3].key) <= 100
    assert connection.zrange(k.expiring("default"), 0, -1) == [ids[3].encode()]
    with pytest.raises(Exception, match="now must be a finite number"):
        lua.call(connection, "schedule_due", [k.registry("scheduled", "default"),
                                              k.queue("default"), k.wake("default"), k.queues,
                                              k.expiring("default")], ["default", "nan"])
