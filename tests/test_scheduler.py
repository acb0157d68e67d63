"""enqueue_at / enqueue_in, the scheduler and its lock, periodic jobs, `geventq info`."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from geventq.cli.info import render_info
from geventq.periodic import PeriodicEnqueuer, parse_periodic
from geventq.scheduler import Scheduler
from tests import jobs_sched
from tests.helpers import wait_for

QUIET = ["--logging-level", "WARNING"]
LOCK = "geventq:scheduler-lock"


def settings_file(tmp_path, text: str) -> str:
    path = tmp_path / "sched_settings.py"
    path.write_text(text)
    return str(path)


def lock_holder(connection) -> str | None:
    value = connection.get(LOCK)
    return value.decode() if value else None


def test_enqueue_at_and_in_park_the_job_in_the_scheduled_registry(queue, connection):
    naive = datetime(2031, 1, 2, 3, 4, 5)  # naive: taken as UTC
    at = queue.enqueue_at(naive, jobs_sched.add, 1, y=2, job_timeout=30)
    assert at.get_status() == "scheduled" and at.kwargs == {"y": 2} and at.timeout == 30
    registry = queue.scheduled_job_registry
    assert registry.get_scheduled_time(at) == naive.replace(tzinfo=timezone.utc)
    before = time.time()
    later = queue.enqueue_in(timedelta(seconds=60), jobs_sched.add, 1, 2)
    assert before + 60 <= registry.get_scheduled_time(later).timestamp() <= time.time() + 60
    assert queue.count == 0 and registry.count == 2
    with pytest.raises(TypeError, match="enqueue_at takes a datetime, got '2031-01-01'"):
        queue.enqueue_at("2031-01-01", jobs_sched.add, 1, 2)
    with pytest.raises(TypeError, match="enqueue_in takes a timedelta or seconds"):
        queue.enqueue_in("soon", jobs_sched.add, 1, 2)
    assert registry.count == 2


def test_scheduled_job_runs_between_2_and_3_5_s_later(queue, connection, start_worker):
    start_worker("--with-scheduler", *QUIET)
    wait_for(lambda: lock_holder(connection), timeout=15, message="the scheduler to start")
    enqueued = time.time()
    job = queue.enqueue_in(timedelta(seconds=2), jobs_sched.record_run, "runs")
    wait_for(lambda: job.get_status() == "finished", timeout=10, message="the scheduled job")
    job.refresh()
    assert 2.0 <= job.started_at.timestamp() - enqueued <= 3.5


def test_two_schedulers_moving_the_same_due_jobs_queue_each_once(queue, connection):
    due = [queue.enqueue_in(-1, jobs_sched.add, i, 0) for i in range(300)]
    # no lock here: both scan and move at the same moment; the script re-checks each id
    schedulers = [Scheduler(connection, queue.keys, f"s{i}") for i in range(2)]
    moved = []

    def drain(scheduler):
        # as the scheduler's loop does: a full batch means "come back at once"
        for _ in range(20):
            moved.append(scheduler.enqueue_due()[0])
            if queue.scheduled_job_registry.count == 0:
                return

    threads = [threading.Thread(target=drain, args=(s,)) for s in schedulers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(moved) == 300
    assert sorted(queue.job_ids) == sorted(j.id for j in due)
    assert queue.scheduled_job_registry.count == 0


def test_two_workers_with_schedulers_enqueue_a_due_job_once(queue, connection, start_worker):
    for _ in range(2):
        start_worker("--with-scheduler", *QUIET)
    wait_for(lambda: lock_holder(connection), timeout=15, message="a scheduler to start")
    jobs = [queue.enqueue_in(1, jobs_sched.record_run, "runs") for _ in range(20)]
    wait_for(lambda: all(j.get_status() == "finished" for j in jobs), timeout=10,
             message="the scheduled jobs")
    runs = [json.loads(r)[0] for r in connection.lrange("runs", 0, -1)]
    assert sorted(runs) == sorted(j.id for j in jobs)


def test_scheduler_lock_moves_to_another_worker_when_its_holder_is_killed(
        tmp_path, queue, connection, start_worker):
    config = settings_file(tmp_path, "SCHEDULER_LOCK_TTL = 2\n")
    workers = [start_worker("-c", config, "--with-scheduler", *QUIET) for _ in range(2)]
    holder = wait_for(lambda: lock_holder(connection), timeout=15, message="a scheduler")
    by_pid = {str(w.pid): w for w in workers}
    killed = by_pid[holder.split(".")[-2]]
    assert 0 < connection.pttl(LOCK) <= 2000
    killed.kill()  # SIGKILL: no chance to release the lock
    died = time.monotonic()
    new_holder = wait_for(lambda: (lock_holder(connection) or holder) != holder and
                          lock_holder(connection), timeout=10, message="another scheduler")
    assert time.monotonic() - died <= 2 + 1.5  # expiry + one look by the other candidate
    assert new_holder.split(".")[-2] != str(killed.pid)
    job = queue.enqueue_in(0, jobs_sched.add, 2, 3)
    wait_for(lambda: job.get_status() == "finished", timeout=5, message="scheduling to resume")


def test_lock_is_held_by_one_scheduler_and_released_for_the_next(connection, queue):
    first, second = (Scheduler(connection, queue.keys, name, lock_ttl=5) for name in "ab")
    assert first.hold_lock() and not second.hold_lock()
    assert first.hold_lock()  # renewing
    first.release()
    assert lock_holder(connection) is None and second.hold_lock()
    with pytest.raises(ValueError, match="SCHEDULER_LOCK_TTL must be seconds from 0.3 to 2147483647, got 0"):
        Scheduler(connection, queue.keys, "c", lock_ttl=0)


def test_periodic_job_every_second_runs_once_per_occurrence_with_two_schedulers(
        tmp_path, connection, start_worker):
    config = settings_file(tmp_path, (
        'PERIODIC = [(1, "tests.jobs_sched.record_occurrence", ["periodic"], {}, '
        '{"name": "tick"})]\n'))
    for _ in range(2):
        start_worker("-c", config, "--with-scheduler", *QUIET)
    wait_for(lambda: lock_holder(connection), timeout=15, message="a scheduler")
    started = time.monotonic()
    wait_for(lambda: connection.llen("periodic") >= 3, timeout=8, message="three runs")
    assert time.monotonic() - started < 5.0
    runs = [json.loads(r) for r in connection.lrange("periodic", 0, -1)]
    occurrences = [float(r[0]) for r in runs]
    assert len(set(occurrences)) == len(occurrences), occurrences
    assert [b - a for a, b in zip(occurrences, occurrences[1:])] == [1.0] * (len(runs) - 1)
    assert all(0 <= ran - occ < 1.5 for occ, (_, ran, _) in zip(occurrences, runs))


def test_periodic_catches_up_one_missed_run_and_enqueues_each_occurrence_once(queue, connection):
    entries = parse_periodic([(10, "tests.jobs_sched.add", [1, 2], {}, {"name": "ten"})],
                             connection, queue.keys)
    pools = [PeriodicEnqueuer(entries, connection, queue.keys) for _ in range(2)]
    assert pools[0].enqueue_due(1000.5) == 1010.0  # first sight: nothing for the past
    assert queue.count == 0
    for pool in pools:  # down for 5 occurrences; both pools wake at once
        pool.enqueue_due(1055.0)
    assert queue.count == 1
    [job] = queue.jobs
    assert job.extra["occurrence"] == "1050.0" and job.args == (1, 2)
    for pool in pools:
        pool.enqueue_due(1059.9)
    assert queue.count == 1
    pools[1].enqueue_due(1060.0)
    assert queue.count == 2


@pytest.mark.parametrize("entry, message", [
    (("61 * * * *", "pkg.f"), "entry 0 .*not a valid cron expression"),
    ((0, "pkg.f"), "entry 0 .*interval in seconds > 0 \\(at most 2147483647\\), got 0"),
    (("* * * * *",), "entry 0 .*an entry is \\(schedule, func"),
    ((5, "pkg.f", [], {}, {"depends_on": "x"}), "entry 0 .*unknown option\\(s\\) depends_on"),
    ((5, "pkg.f", [], {}, {"job_timeout": "abc"}), "entry 0 .*job_timeout must be"),
    ({"schedule": 5, "func": "pkg.f", "colour": 1}, "entry 0 .*unknown key\\(s\\) colour"),
    ((5, lambda: None), "entry 0 .*lambda"),
])
def test_bad_periodic_entries_are_named(connection, queue, entry, message):
    with pytest.raises(ValueError, match=message):
        parse_periodic([entry], connection, queue.keys)
    assert connection.keys("*") == []


def test_duplicate_periodic_names_and_bad_config_stop_the_worker(tmp_path, connection, queue,
                                                                start_worker):
    with pytest.raises(ValueError, match="entry 1 .*another entry has the name 'pkg.f 5s'"):
        parse_periodic([(5, "pkg.f"), (5, "pkg.f", [1])], connection, queue.keys)
    config = settings_file(tmp_path, 'PERIODIC = [("every day", "pkg.f")]\n')
    worker = start_worker("-c", config, "--with-scheduler")
    assert worker.wait(20) == 3
    output = worker.output()
    assert "PERIODIC entry 0 ('every day', 'pkg.f')" in output and "Traceback" not in output


def test_info_shows_the_scheduler_scheduled_and_periodic_jobs(queue, connection):
    queue.enqueue_at(datetime(2031, 1, 2, 3, 4, 5), jobs_sched.add, 1, 2)
    scheduler = Scheduler(connection, queue.keys, "host.1.abc",
                          periodic=[("*/5 * * * *", "tests.jobs_sched.add", [1, 2])])
    scheduler.hold_lock()
    scheduler.periodic.enqueue_due()
    text = render_info(connection, queue.keys, [])
    assert "scheduled 1" in text
    assert "scheduler: active on host.1.abc" in text
    assert "2031-01-02 03:04:05 UTC  default" in text and "tests.jobs_sched.add" in text
    assert "1 periodic job(s):" in text and "cron */5 * * * *" in text and "next 20" in text
