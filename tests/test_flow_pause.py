"""Paused queues (API section 8): q.pause()/unpause()/is_paused, the claim skips them,
`geventq pause`/`unpause`, `geventq info` shows them."""

from __future__ import annotations

import json
import signal
import time

from click.testing import CliRunner

from geventq import Queue, SimpleWorker, Worker, lifecycle
from geventq.cli import main
from geventq.keys import Keys
from tests import jobs
from tests.helpers import wait_for

QUIET = ["--logging-level", "WARNING"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def _evalsha_calls(connection) -> int:
    return connection.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def test_pause_is_stored_and_the_claim_skips_the_paused_queue(connection):
    keys = Keys()
    a, b = Queue("a", connection=connection), Queue("b", connection=connection)
    a.pause()
    assert a.is_paused and not b.is_paused
    # another Queue object (another process) sees the pause: it lives in Redis
    assert Queue("a", connection=connection).is_paused
    job_a, job_b = a.enqueue(jobs.noop), b.enqueue(jobs.noop)
    claimed = lifecycle.claim(connection, keys, ["a", "b"], "w1", 10)
    assert claimed == [("b", job_b.id)]
    assert a.job_ids == [job_a.id] and job_a.get_status() == "queued"
    # no wake token is left for the paused queue: idle workers do not wake for it
    assert connection.llen(keys.wake("a")) == 0
    a.unpause()
    assert not a.is_paused
    assert connection.llen(keys.wake("a")) == 1  # idle workers are woken at once
    assert lifecycle.claim(connection, keys, ["a", "b"], "w1", 10) == [("a", job_a.id)]


def test_paused_queue_gives_nothing_to_peek_or_burst(connection):
    q = Queue("a", connection=connection)
    job = q.enqueue(jobs.add, 1, 2)
    q.pause()
    worker = SimpleWorker(["a"], connection=connection)
    assert worker.work(burst=True) is False  # nothing to do: exits, does not spin
    assert job.get_status() == "queued"
    result = lifecycle.claim_and_start(connection, Keys(), ["a"], "w1", 5, peek=5)
    assert result.claimed == [] and result.peeked == []


def test_worker_process_leaves_a_paused_queue_alone_until_unpaused(connection, start_worker):
    a, b = Queue("a", connection=connection), Queue("b", connection=connection)
    a.pause()
    held = a.enqueue(jobs.add, 2, 2)
    worker = start_worker("a", "b", *QUIET)
    wait_for(lambda: Worker.count(connection=connection) == 1)
    assert b.enqueue(jobs.add, 1, 1).wait(timeout=10) == 2  # other queues run
    wait_for(lambda: any(c.get("cmd") == "blpop" for c in connection.client_list()),
             message="the idle worker to block on its wake tokens")
    # idle beside a paused queue that holds a job: no claim loop (about one claim a second)
    before, started = _evalsha_calls(connection), time.monotonic()
    wait_for(lambda: time.monotonic() - started >= 1.0, interval=0.1)
    assert _evalsha_calls(connection) - before <= 4
    assert held.get_status() == "queued"
    started = time.monotonic()
    a.unpause()
    assert held.wait(timeout=5) == 4
    assert time.monotonic() - started < 0.5, "unpausing wakes the idle worker"
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def test_pause_outlives_a_worker_restart(connection):
    # the pause is in Redis, not in a worker: two workers one after the other (in this
    # process; the claim that skips a paused queue is the same script in every worker)
    q = Queue("a", connection=connection)
    q.pause()
    job = q.enqueue(jobs.noop)
    for name in ("before-restart", "after-restart"):
        SimpleWorker(["a"], connection=connection, name=name).work(burst=True)
    assert job.get_status() == "queued" and q.is_paused


def test_cli_pause_unpause_and_info(connection, redis_url):
    q = Queue("mail", connection=connection)
    q.enqueue(jobs.noop)
    code, out = run("pause", "mail", "reports", "-u", redis_url)
    assert code == 0 and "queue mail paused" in out and "queue reports paused" in out
    assert q.is_paused and Queue("reports", connection=connection).is_paused
    code, out = run("info", "-u", redis_url)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:3]}
    assert lines["mail"].endswith("PAUSED") and lines["reports"].endswith("PAUSED")
    code, out = run("info", "--json", "-u", redis_url)
    assert {q["name"]: q["paused"] for q in json.loads(out)["queues"]} == {
        "mail": True, "reports": True}
    code, out = run("unpause", "mail", "-u", redis_url)
    assert code == 0 and "queue mail unpaused" in out
    assert not q.is_paused
    code, out = run("info", "-u", redis_url)
    assert "PAUSED" not in next(line for line in out.splitlines() if line.split()[0] == "mail")


def test_cli_pause_of_a_bad_queue_name_writes_nothing(connection, redis_url):
    code, out = run("pause", "good", "bad name", "-u", redis_url)
    assert code == 1 and "bad name" in out and "Traceback" not in out
    assert connection.exists(Keys().paused) == 0  # not even the good one
    code, out = run("pause", "-u", redis_url)
    assert code != 0
