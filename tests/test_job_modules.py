"""JOB_MODULES: a hostile writer to Redis cannot make a worker run what is not listed.

The hostile writer writes job hashes by hand (HSET, RPUSH), as anyone with
access to Redis can. Real ``geventq worker`` processes (GeventWorker with a
greenlet lane and a fork lane, SimpleWorker) run them; each refused job must
fail with ``JobNotAllowed`` and leave no trace of having run.
"""

from __future__ import annotations

import fractions
import functools
import json
import pickle
import subprocess
import sys
import time

import pytest

from geventq import Queue, SimpleWorker
from geventq.allowlist import JobModules
from geventq.exceptions import JobNotAllowed
from geventq.execution import load_call
from geventq.job import Job
from geventq.keys import Keys
from tests import secjobs
from tests.conftest import ROOT, worker_env
from tests.test_recovery import write_config

KEYS = Keys()
ALLOW = JobModules(["tests.secjobs"])


def write_job(connection, queue: str, job_id: str, func: str, args=(), kwargs=None,
              instance=None, data: bytes | None = None, **fields) -> None:
    """What a hostile writer does: a job hash and a queue entry, by hand."""
    if data is None:
        data = json.dumps([instance, list(args), kwargs or {}]).encode()
    stamp = repr(time.time())
    connection.hset(KEYS.job(job_id), mapping={
        "func": func, "data": data, "origin": queue, "status": "queued", "created_at": stamp,
        "enqueued_at": stamp, "timeout": 30, **fields})
    connection.sadd(KEYS.queues, queue)
    connection.rpush(KEYS.queue(queue), job_id)


def hostile_jobs(marker: str) -> dict[str, dict]:
    """Job id -> the job a hostile writer stores; none may run (``marker`` stays absent)."""
    shell = f"echo ran >> {marker}"
    return {
        "exec": dict(func="builtins.exec", args=[f"open({marker!r}, 'a').write('exec')"]),
        "system": dict(func="os.system", args=[shell]),
        "through-import": dict(func="tests.secjobs.os.system", args=[shell]),
        "imported-function": dict(func="tests.secjobs.imported_function"),
        "foreign-job": dict(func="tests.secjobs.foreign_job", args=[1, 2]),
        "sibling-prefix": dict(func="tests.secjobs_evil.run"),
        # would replace tests.secjobs.allowed by None in the worker
        "dunder": dict(func="tests.secjobs.allowed.__globals__.update",
                       kwargs={"allowed": None}),
        "type-method": dict(func="tests.secjobs.Greeter.mro"),
        "foreign-init": dict(func="tests.secjobs.Spawner", args=[["sh", "-c", shell]]),
        "instance-method": dict(func="format", instance="{0.__class__}", args=["x"]),
        "instance-dunder": dict(func="__init_subclass__", instance="x"),
        "module": dict(func="tests.secjobs"),
    }


ALLOWED = {  # job id -> (job, expected result)
    "allowed": (dict(func="tests.secjobs.allowed", args=[21]), 42),
    "below": (dict(func="tests.secjobs.sub.deep", args=[1]), 2),
    "classmethod": (dict(func="tests.secjobs.Greeter.make", args=["hi"]), "hi"),
    "listed-callback": (dict(func="tests.secjobs.allowed", args=[1],
                             success_callback="tests.secjobs.on_success"), 2),
    "hostile-success-callback": (dict(func="tests.secjobs.allowed", args=[2],
                                      success_callback="tests.secjobs_evil.callback"), 4),
}
HOSTILE_FAILURE_CALLBACK = dict(func="tests.secjobs.fails", failure_callback="os.system")
SIBLING_FAILURE_CALLBACK = dict(func="tests.secjobs.fails",
                                failure_callback="tests.secjobs_evil.callback")


def write_all(connection, queue: str, marker: str) -> None:
    for job_id, job in hostile_jobs(marker).items():
        write_job(connection, queue, f"{queue}-{job_id}", **job)
    write_job(connection, queue, f"{queue}-failure-callback", **HOSTILE_FAILURE_CALLBACK)
    write_job(connection, queue, f"{queue}-sibling-failure-callback", **SIBLING_FAILURE_CALLBACK)
    for job_id, (job, _) in ALLOWED.items():
        write_job(connection, queue, f"{queue}-{job_id}", **job)


def check_all(connection, queue: str, marker) -> None:
    fetch = functools.partial(Job.fetch, connection=connection, serializer="json")
    for job_id in hostile_jobs(str(marker)):
        job = fetch(f"{queue}-{job_id}")
        assert job.get_status() == "failed", (job_id, job.get_status())
        assert "JobNotAllowed" in job.exc_info, (job_id, job.exc_info)
        assert "tests.secjobs" in job.exc_info.strip().splitlines()[-1]  # names the list
    for job_id, (_, result) in ALLOWED.items():
        job = fetch(f"{queue}-{job_id}")
        assert job.get_status() == "finished", (job_id, job.exc_info)
        assert job.result == result
    for job_id in ("failure-callback", "sibling-failure-callback"):
        job = fetch(f"{queue}-{job_id}")
        assert job.get_status() == "failed" and "this job fails" in job.exc_info
    assert not marker.exists(), marker.read_text()


def ran(connection) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in connection.hgetall(secjobs.RAN).items()}


@pytest.mark.parametrize("kind", ["gevent", "simple"])
def test_a_hostile_writer_runs_nothing_outside_job_modules(connection, tmp_path, redis_url, kind):
    """Raw job hashes naming exec, os.system, attribute paths through the allowed package,
    a sibling package, dunders, built-in methods, foreign constructors and foreign
    callbacks: each fails with JobNotAllowed, on the greenlet lane, the fork lane and a
    SimpleWorker; the listed functions and callbacks run."""
    marker = tmp_path / "ran"
    evil_import = tmp_path / "evil-imported"
    queues = ["green", "forked"] if kind == "gevent" else ["simple"]
    for queue in queues:
        write_all(connection, queue, str(marker))
    if kind == "gevent":
        args = ["--serializer", "json", "--job-module", "tests.secjobs", "--fork-queue", "forked"]
    else:
        args = ["-c", write_config(tmp_path, SERIALIZER="json", JOB_MODULES=["tests.secjobs"],
                                   WORKER_CLASS="geventq.SimpleWorker")]
    done = subprocess.run(
        [sys.executable, "-m", "geventq", "worker", "--burst", *args, *queues],
        env=worker_env(redis_url, SECJOBS_EVIL_MARK=str(evil_import)), cwd=ROOT,
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    for queue in queues:
        try:
            check_all(connection, queue, marker)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe worker's output:\n{done.stderr}") from None
    counts = ran(connection)
    assert counts["on_success"] == len(queues)  # the listed callback ran; the others did not
    assert "evil" not in counts and "evil_callback" not in counts and "on_failure" not in counts
    assert not evil_import.exists()  # the sibling package was never even imported
    assert "on_success callback tests.secjobs_evil.callback" in done.stderr
    assert "on_failure callback os.system" in done.stderr
    assert "JobNotAllowed" in done.stderr and "Traceback" in done.stderr


def test_json_without_job_modules_runs_any_importable_function(connection, tmp_path, redis_url):
    """What docs/security.md says of JSON alone: a writer picks any importable function
    (with JSON arguments); the worker says so when it starts."""
    write_job(connection, "default", "any", "tests.secjobs_evil.run", args=[1])
    done = subprocess.run(
        [sys.executable, "-m", "geventq", "worker", "--burst", "--serializer", "json"],
        env=worker_env(redis_url), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ran(connection) == {"evil": 1}
    assert "decodes jobs as JSON but has no JOB_MODULES" in done.stderr


def test_pickle_runs_a_writers_code_whatever_the_job_modules(connection, tmp_path, redis_url):
    """What docs/security.md says of pickle: decoding a job runs code its writer chose, before
    any allow-list can look at it (here its meta, decoded when the job is loaded)."""
    marker = tmp_path / "pickle-ran"

    class Payload:
        def __reduce__(self):
            # decodes to a dict (a valid meta) after running the writer's code
            return (eval, (f"open({str(marker)!r}, 'a').write('meta') and {{}}",))

    write_job(connection, "default", "pickled", "builtins.exec",
              data=pickle.dumps([None, [], {}]), meta=pickle.dumps(Payload()))
    done = subprocess.run(
        [sys.executable, "-m", "geventq", "worker", "--burst", "--job-module", "tests.secjobs"],
        env=worker_env(redis_url), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "meta"  # the writer's code ran
    job = Job.fetch("pickled", connection=connection)
    assert job.get_status() == "failed" and "JobNotAllowed" in job.exc_info  # exec did not


def test_a_bad_job_module_name_is_one_line_and_exit_3(redis_url):
    done = subprocess.run(
        [sys.executable, "-m", "geventq", "worker", "--burst", "--job-module", "my app.tasks"],
        env=worker_env(redis_url), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "geventq worker: JOB_MODULES: 'my app.tasks' is not a module name like 'myapp.tasks'"]


def test_job_modules_keyword_of_the_worker_classes(connection):
    queue = Queue("kw", connection=connection, serializer="json")
    good = queue.enqueue("tests.secjobs.allowed", 5)
    write_job(connection, "kw", "kw-bad", "tests.secjobs.os.getcwd")
    worker = SimpleWorker(["kw"], connection=connection, serializer="json",
                          job_modules=["tests.secjobs"])
    worker.work(burst=True)
    assert good.get_status() == "finished" and good.result == 10
    bad = Job.fetch("kw-bad", connection=connection, serializer="json")
    assert bad.get_status() == "failed" and "runs code of posix" in bad.exc_info


# -- the check itself, job by job (no worker) ---------------------------------------------
def test_resolution_follows_the_real_module_not_the_path():
    assert ALLOW.resolve("tests.secjobs.allowed") is secjobs.allowed
    assert ALLOW.resolve("tests.secjobs.Greeter.make") == secjobs.Greeter.make
    with pytest.raises(JobNotAllowed, match="runs code of posix"):
        ALLOW.resolve("tests.secjobs.os.system")
    with pytest.raises(JobNotAllowed, match="runs code of tests.jobs"):
        ALLOW.resolve("tests.secjobs.foreign_job")
    with pytest.raises(JobNotAllowed, match="runs code of subprocess"):
        ALLOW.resolve("tests.secjobs.Spawner")
    with pytest.raises(JobNotAllowed, match="not in the job modules"):
        ALLOW.resolve("tests.secjobs_evil.run")
    with pytest.raises(JobNotAllowed, match="not a plain name"):
        ALLOW.resolve("tests.secjobs.Greeter.__init__")
    with pytest.raises(JobNotAllowed, match="on_success callback"):
        ALLOW.resolve("os.system", what="on_success callback")


def test_stored_instances_must_be_of_an_allowed_class(connection):
    """Bound methods and callable objects (stored pickled) are checked like functions."""
    queue = Queue("instances", connection=connection)
    allowed = [queue.enqueue(secjobs.Greeter("hey").greet, "you"),
               queue.enqueue(secjobs.Greeter("hey"), "you")]
    refused = [queue.enqueue(fractions.Fraction(1, 3).limit_denominator, 2),
               queue.enqueue(functools.partial(print, "x"))]
    for job in allowed:
        func, _, _ = load_call(Job.fetch(job.id, connection=connection), ALLOW)
        assert callable(func)
    for job in refused:
        with pytest.raises(JobNotAllowed):
            load_call(Job.fetch(job.id, connection=connection), ALLOW)


def test_a_refused_path_is_refused_before_the_arguments_are_decoded(connection):
    write_job(connection, "undecoded", "undecoded", "os.system", data=b"not json, not pickle")
    job = Job.fetch("undecoded", connection=connection, serializer="json")
    with pytest.raises(JobNotAllowed):
        load_call(job, ALLOW)


def test_job_module_names_are_checked():
    for bad in ([""], ["my app"], ["tests."], [".tests"], [3], []):
        with pytest.raises(ValueError, match="JOB_MODULES"):
            JobModules(bad)
    assert JobModules(["a.b", "a.b", "c"]).modules == ("a.b", "c")
    assert JobModules(["tests"]).allows_module("tests.secjobs.sub")
    assert not JobModules(["tests.secjobs"]).allows_module("tests.secjobs_evil")
