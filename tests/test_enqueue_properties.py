"""Property-based tests (hypothesis) of enqueueing: whatever a caller passes, each call
either refuses it with nothing written, or makes a job a worker ends in exactly one place.

Generated: the API (``enqueue``, ``enqueue_call``, ``enqueue_many``, ``enqueue_in``),
the serializer (pickle, JSON), every job option (numbers of every kind and range, text,
garbage), ids, args, kwargs and meta (unicode, lone surrogates, control characters,
huge and negative numbers, NaN and infinities, bytes, nested and unpicklable values).

The property, against the test's private redis-server, for every call:

- it raises ``ValueError`` / ``TypeError`` (or the documented ``DuplicateJobError`` /
  ``NoSuchJobError``) and the key space is exactly as before; or
- it returns jobs, and a SimpleWorker run in-process (burst) ends each of them in
  exactly one registry, finished or failed, with its hash saying the same, and the
  worker logs no error. A job may only be gone when one of its TTLs was a few seconds
  (its key may expire during the check) or its ``result_ttl`` was 0.

CI runs few examples (profile ``ci``); ``make fuzz`` runs many (profile ``fuzz``).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from geventq import Queue, Retry, SimpleWorker
from geventq.exceptions import DuplicateJobError, NoSuchJobError
from geventq.keys import REGISTRY_NAMES, Keys
from geventq.queue import JOB_OPTIONS
from geventq.scheduler import Scheduler
from geventq.utils import MAX_SECONDS
from tests.test_values import snapshot

KEYS = Keys()
REFUSALS = (ValueError, TypeError, DuplicateJobError, NoSuchJobError)
SHORT_TTL = 10  # a job with a TTL under this may expire while it is checked
FUNCS = ["tests.jobs.echo", "tests.jobs.fail"]  # fail(message): the message is generated

# -- values ---------------------------------------------------------------------------------

# text of every kind: any code point including lone surrogates, and control characters
text = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(codec=None, blacklist_categories=()), max_size=12),
    st.text(st.sampled_from("\x00\n\r\t\x1b\x7f\x85\u2028\u202e\ufeff\udcff:, ab"), max_size=8),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-2**200, max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True), text, st.binary(max_size=12),
)


class Unpicklable:
    """Holds a lock: neither pickle nor JSON can store it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def _deep(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
) | st.sampled_from([Unpicklable(), _deep(5000), {1: "int key"}, {(1, 2): "tuple key"}])

# what a caller may pass as a number: every range, every type
numbers = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 59, 600, 3600, MAX_SECONDS, MAX_SECONDS + 1, 10**17, -2]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([5.0, 60.0, 1.5, -1.0]),
    st.sampled_from(["30", "-1", "5m", "1h", "1d", "1.5h", "99999999d", "", "soon"]), text,
)
# numbers every option takes: most calls with these get through to a worker
good_numbers = st.one_of(
    st.none(), st.integers(min_value=SHORT_TTL, max_value=MAX_SECONDS),
    st.sampled_from([-1, 60.0, "600", MAX_SECONDS]),
)
ids = st.one_of(st.none(), text, st.sampled_from(["a-good-id", "ünïcødé", "x\ny", "a:b"]),
                st.integers(), st.binary(max_size=6))
good_ids = st.one_of(st.none(), st.text(st.characters(blacklist_categories=("C", "Z"),
                                                      blacklist_characters=":,"),
                                        min_size=1, max_size=12))


@st.composite
def options(draw, parent_id: str, valid: bool) -> dict:
    """A subset of the job options of enqueue, each with a generated value (``valid``:
    from values the options take; else from anything)."""
    number, job_id = (good_numbers, good_ids) if valid else (numbers, ids)
    chosen: dict = {}
    for name in ("job_timeout", "result_ttl", "ttl", "failure_ttl"):
        if draw(st.booleans()):
            chosen[name] = draw(number)
    if draw(st.booleans()):
        chosen["job_id"] = draw(job_id)
    if draw(st.integers(0, 3)) == 0:
        chosen["at_front"] = draw(st.one_of(st.booleans(), st.none(), st.integers()))
    if draw(st.integers(0, 3)) == 0:
        chosen["description"] = draw(text if valid else st.one_of(text, st.integers()))
    if draw(st.booleans()):
        chosen["meta"] = draw(st.dictionaries(text, values, max_size=3) if valid else
                              st.one_of(st.dictionaries(text, values, max_size=3), values))
    if draw(st.integers(0, 3)) == 0:
        chosen["depends_on"] = draw(st.one_of(st.just(parent_id), job_id,
                                              st.lists(st.one_of(st.just(parent_id), job_id),
                                                       max_size=2)))
    if draw(st.integers(0, 5)) == 0:
        chosen["retry"] = draw(st.just(Retry(max=1)) if valid else
                               st.one_of(st.just(Retry(max=1)), numbers))
    return chosen



@st.composite
def calls(draw) -> dict:
    """One call of the API: which method, which serializer, its jobs and their options."""
    parent_id = "parent-job"
    valid = draw(st.booleans())
    kwargs_keys = text.filter(lambda k: k not in JOB_OPTIONS and k not in ("args", "kwargs"))
    jobs = []
    for _ in range(draw(st.integers(1, 3))):
        job = {
            "func": draw(st.sampled_from(FUNCS)),
            "args": draw(st.lists(values, max_size=3)),
            "kwargs": draw(st.dictionaries(kwargs_keys, values, max_size=2)),
            "options": draw(options(parent_id, valid)),
        }
        jobs.append(job)
    return {
        "method": draw(st.sampled_from(["enqueue", "enqueue_call", "enqueue_many", "enqueue_in"])),
        "serializer": draw(st.sampled_from(["pickle", "json"])),
        "delay": draw(st.one_of(numbers, st.integers(-100, 100).map(
            lambda s: timedelta(seconds=s)))),
        "jobs": jobs,
    }


# -- running one call -----------------------------------------------------------------------

def make_call(queue: Queue, call: dict) -> list:
    """Run the generated call; returns the jobs it made (raises what it raises)."""
    method, jobs = call["method"], call["jobs"]
    if method == "enqueue_many":
        return queue.enqueue_many([Queue.prepare_data(j["func"], j["args"], j["kwargs"],
                                                      **j["options"]) for j in jobs])
    job = jobs[0]
    if method == "enqueue":
        return [queue.enqueue(job["func"], *job["args"], **job["kwargs"], **job["options"])]
    if method == "enqueue_call":
        return [queue.enqueue_call(job["func"], job["args"], job["kwargs"], **job["options"])]
    return [queue.enqueue_in(call["delay"], job["func"], *job["args"], **job["kwargs"],
                             **job["options"])]


class ErrorLog(logging.Handler):
    """Collects every record at ERROR or above that geventq logs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}\n"
                            f"{record.exc_text or ''}")


def where_is(connection, queue: Queue, job_id: str) -> list[str]:
    """Every place the job id is listed: its queue and each registry of its queue."""
    places = []
    if connection.lpos(queue.key, job_id) is not None:
        places.append("queue")
    for kind in REGISTRY_NAMES:
        if connection.zscore(KEYS.registry(kind, queue.name), job_id) is not None:
            places.append(kind)
    return places


def may_be_gone(job) -> bool:
    """A job whose key may be gone by the time it is checked, legitimately."""
    if job.result_ttl == 0:
        return True
    return any(t is not None and 0 < t < SHORT_TTL for t in (job.ttl, job.result_ttl,
                                                               job.failure_ttl))


def run_and_check(connection, queue: Queue, made: list, serializer: str) -> None:
    """The worker ends every job made, each in exactly one registry; no error is logged."""
    # jobs of enqueue_in: the scheduler queues them when due (here: at once)
    latest = max((queue.scheduled_job_registry.get_scheduled_time(j) for j in made
                  if j.id in queue.scheduled_job_registry), default=None)
    if latest is not None:
        scheduler = Scheduler(connection, queue.keys, "hypothesis")
        scheduler.enqueue_due(moment=max(time.time(), latest.timestamp()) + 1)
    errors = ErrorLog()
    logger = logging.getLogger("geventq")
    logger.addHandler(errors)
    try:
        SimpleWorker([queue], connection=connection, serializer=serializer).work(burst=True)
    finally:
        logger.removeHandler(errors)
    assert not errors.records, "the worker logged errors:\n" + "\n".join(errors.records)
    for job in made:
        places = where_is(connection, queue, job.id)
        status = connection.hget(job.key, "status")
        if status is None and not places and may_be_gone(job):
            event("ended: gone by its TTL")
            continue
        assert places in (["finished"], ["failed"]), (job, places, status)
        event(f"ended: {places[0]}")
        assert status.decode() == places[0], (job, places, status)


# -- the property ---------------------------------------------------------------------------

@pytest.mark.timeout(600, method="thread")  # SimpleWorker in-process uses SIGALRM
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(call=calls())
def test_every_enqueue_is_refused_with_nothing_written_or_ends_in_one_registry(connection, call):
    connection.flushdb()  # our private server; one clean database per example
    queue = Queue("fuzz", connection=connection, serializer=call["serializer"])
    queue.enqueue("tests.jobs.echo", "parent", job_id="parent-job")
    before = snapshot(connection)
    try:
        made = make_call(queue, call)
    except REFUSALS as exc:
        event(f"refused: {type(exc).__name__}")
        assert snapshot(connection) == before, "a refused call wrote to Redis"
        return
    made = made + [queue.fetch_job("parent-job")]
    run_and_check(connection, queue, made, call["serializer"])
