"""The overview's finished/min and failed/min per queue: QueueRates (clock injected) and
the routes that show them (Flask's test client, jobs ended by a real in-process worker)."""

from __future__ import annotations

import re

import pytest

from geventq import Queue, SimpleWorker
from geventq.dashboard import create_app
from geventq.dashboard.config import EXTENSION
from geventq.dashboard.rates import QueueRates, ended_counts

pytest.importorskip("flask", reason="the dashboard needs Flask (the test extra installs it)")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _counts(**queues: tuple[float, float]) -> dict[str, tuple[float, float]]:
    return dict(queues)


def test_a_rate_is_the_growth_between_two_readings_per_minute():
    clock = Clock()
    rates = QueueRates(clock=clock)
    first = rates.update(_counts(a=(100, 10)), ["a"])
    assert first.span is None and first.of("a") == {"finished_per_minute": None,
                                                    "failed_per_minute": None}
    clock.now += 30
    second = rates.update(_counts(a=(130, 12)), ["a", "new"])
    assert second.span == 30
    assert second.of("a") == {"finished_per_minute": 60.0, "failed_per_minute": 4.0}
    # a queue no counter names yet has ended nothing: 0, not unknown
    assert second.of("new") == {"finished_per_minute": 0.0, "failed_per_minute": 0.0}


def test_readings_closer_than_min_span_give_no_rate_and_are_not_all_kept():
    clock = Clock()
    rates = QueueRates(window=60, min_span=1, clock=clock)
    rates.update(_counts(a=(0, 0)), ["a"])
    clock.now += 0.5
    assert rates.update(_counts(a=(5, 0)), ["a"]).span is None
    for _ in range(1000):  # many browsers polling at once: the readings stay bounded
        clock.now += 0.01
        rates.update(_counts(a=(5, 0)), ["a"])
    assert rates.readings_kept <= 62


def test_the_rate_covers_the_last_window_once_watched_that_long():
    clock = Clock()
    rates = QueueRates(window=60, min_span=1, clock=clock)
    for second in range(0, 181, 2):  # 1 job/s for 3 minutes, then 10 jobs/s
        clock.now = 1000 + second
        rates.update(_counts(a=(second, 0)), ["a"])
    for second in range(182, 243, 2):
        clock.now = 1000 + second
        last = rates.update(_counts(a=(180 + (second - 180) * 10, 0)), ["a"])
    assert last.span == 60  # the newest reading at least 60 s old is the base
    # the last minute's rate (10/s), not the average since the dashboard started
    assert last.of("a")["finished_per_minute"] == 600.0


def test_a_counter_that_goes_down_starts_the_readings_again():
    clock = Clock()
    rates = QueueRates(clock=clock)
    rates.update(_counts(a=(500, 50)), ["a"])
    clock.now += 10
    # FLUSHDB, or the counters deleted: never a negative or made-up rate
    assert rates.update({}, ["a"]).span is None
    clock.now += 10
    assert rates.update(_counts(a=(4, 1)), ["a"]).of("a") == {"finished_per_minute": 24.0,
                                                              "failed_per_minute": 6.0}


def test_ended_counts_adds_up_functions_and_counts_timeouts_as_failures():
    jobs = {("a", "f", "finished"): 3, ("a", "g", "finished"): 4, ("a", "f", "failed"): 1,
            ("a", "f", "timed_out"): 2, ("a", "f", "retried"): 7, ("a", "f", "stopped"): 5,
            ("a", "f", "rate_limited"): 6, ("b", "f", "retried"): 1}
    assert ended_counts(jobs) == {"a": (7.0, 3.0)}


def test_bad_window_arguments_are_refused():
    with pytest.raises(ValueError, match="min_span"):
        QueueRates(window=1, min_span=1)


@pytest.fixture
def app_and_clock(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    monkeypatch.delenv("GEVENTQ_METRICS", raising=False)
    app = create_app(connection)
    clock = Clock()
    app.extensions[EXTENSION].rates = QueueRates(clock=clock)
    return app, clock


def test_the_overview_and_its_api_show_rates_of_jobs_a_worker_ended(app_and_clock, connection):
    app, clock = app_and_clock
    client = app.test_client()
    q = Queue("rated", connection=connection)
    for n in range(3):
        q.enqueue("tests.jobs.add", n, n)
    q.enqueue("tests.jobs.fail", "one")
    first = client.get("/api/overview").get_json()
    [queue] = first["queues"]
    assert queue["finished_per_minute"] is None and first["rates_span"] is None

    assert SimpleWorker([q], connection=connection).work(burst=True)
    clock.now += 30
    data = client.get("/api/overview").get_json()
    [queue] = data["queues"]
    assert (queue["finished_per_minute"], queue["failed_per_minute"]) == (6.0, 2.0)
    assert data["rates_span"] == 30
    # /api/queues keeps exactly the fields of the spec
    assert "finished_per_minute" not in client.get("/api/queues").get_json()[0]

    for n in range(40):
        q.enqueue("tests.jobs.add", n, n)
    assert SimpleWorker([q], connection=connection).work(burst=True)
    clock.now += 30
    page = client.get("/").get_data(as_text=True)
    row = re.search(r'<a href="/queues/rated">rated</a>.*?</tr>', page, re.S).group(0)
    assert '<td class="rate finished">43</td>' in row  # (3 + 40) jobs in 60 s
    assert '<td class="rate failed nonzero">1</td>' in row
    assert "finished/min" in page and "failed/min" in page


def test_garbage_counters_never_break_the_overview(app_and_clock, connection):
    app, clock = app_and_clock
    client = app.test_client()
    keys = Queue("rated", connection=connection).keys
    Queue("rated", connection=connection).enqueue("tests.jobs.noop")
    connection.hset(keys.metrics_jobs, mapping={"not json": 5, '["rated", "f"]': 1,
                                                '["rated", "f", "finished"]': "lots",
                                                '["rated", "f", "failed"]': -3,
                                                '["rated", "f", "finished", 1]': 9})
    assert client.get("/api/overview").status_code == 200
    clock.now += 10
    [queue] = client.get("/api/overview").get_json()["queues"]
    assert (queue["finished_per_minute"], queue["failed_per_minute"]) == (0.0, 0.0)
    connection.delete(keys.metrics_jobs)
    connection.set(keys.metrics_jobs, "not a hash")
    clock.now += 10
    assert client.get("/").status_code == 200
    assert client.get("/api/overview").status_code == 200
