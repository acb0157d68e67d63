"""Pause and Unpause on the dashboard (Flask's test client): the queue page's buttons (form
POST + CSRF), the JSON API, and the paused state wherever it is shown."""

from __future__ import annotations

import html
import re

import pytest

from geventq import Queue
from geventq.dashboard import create_app
from tests.dashboard_support import csrf_from

pytest.importorskip("flask", reason="the dashboard needs Flask (the test extra installs it)")


@pytest.fixture
def client(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    return create_app(connection).test_client()


def _paused_cell(overview_html: str, queue: str) -> str:
    row = re.search(rf'<a href="/queues/{queue}">{queue}</a>.*?</tr>', overview_html, re.S).group(0)
    return re.search(r'<td class="paused[^"]*">[^<]*</td>', row).group(0)


def test_the_pause_and_unpause_buttons_of_the_queue_page(client, connection):
    q = Queue("mail", connection=connection)
    q.enqueue("tests.jobs.noop")
    page = client.get("/queues/mail").get_data(as_text=True)
    assert '<button type="submit">Pause</button>' in page and 'id="queue-paused"' not in page
    token = csrf_from(page)

    reply = client.post("/queues/mail/pause", data={"csrf_token": token})
    assert reply.status_code == 303 and reply.headers["Location"].endswith("/queues/mail?done=paused")
    assert q.is_paused
    page = html.unescape(client.get("/queues/mail?done=paused").get_data(as_text=True))
    assert "Queue paused." in page and 'id="queue-paused">paused<' in page
    assert "workers start none of this queue's jobs" in page
    assert '<button type="submit">Unpause</button>' in page and ">Pause</button>" not in page
    assert _paused_cell(client.get("/").get_data(as_text=True), "mail") == \
        '<td class="paused yes">yes</td>'
    assert client.get("/api/queues").get_json()[0]["paused"] is True
    assert client.get("/api/overview").get_json()["queues"][0]["paused"] is True

    reply = client.post("/queues/mail/unpause", data={"csrf_token": token})
    assert reply.status_code == 303 and reply.headers["Location"].endswith("?done=unpaused")
    assert not q.is_paused
    assert _paused_cell(client.get("/").get_data(as_text=True), "mail") == '<td class="paused">no</td>'


def test_pause_without_the_csrf_token_is_refused_and_changes_nothing(client, connection):
    q = Queue("mail", connection=connection)
    q.enqueue("tests.jobs.noop")
    client.get("/queues/mail")  # the cookie is set; the form field is missing
    assert client.post("/queues/mail/pause", data={}).status_code == 403
    assert client.post("/queues/mail/pause", data={"csrf_token": "x" * 43}).status_code == 403
    assert not q.is_paused


def test_pause_and_unpause_through_the_json_api(client, connection):
    q = Queue("mail", connection=connection)
    q.enqueue("tests.jobs.noop")
    assert client.post("/api/queues/mail/pause", json={}).get_json() == {"name": "mail", "paused": True}
    assert client.post("/api/queues/mail/pause", json={}).get_json() == {"name": "mail", "paused": True}
    assert q.is_paused
    assert client.post("/api/queues/mail/unpause", json={}).get_json() == \
        {"name": "mail", "paused": False}
    assert not q.is_paused


@pytest.mark.parametrize("path, body, status", [
    ("/api/queues/nosuch/pause", {}, 404),       # not a queue: nothing is created
    ("/api/queues/a:b/pause", {}, 404),          # not a queue name at all
    ("/api/queues/mail/pause", None, 400),       # no JSON object
    ("/api/queues/mail/pause", [], 400),
])
def test_a_bad_pause_request_names_what_is_wrong_and_writes_nothing(client, connection, path, body,
                                                                      status):
    Queue("mail", connection=connection).enqueue("tests.jobs.noop")
    before = sorted(connection.keys("*"))
    if body is None:
        reply = client.post(path, data="pause", headers={"Content-Type": "application/json"})
    else:
        reply = client.post(path, json=body)
    assert reply.status_code == status and reply.get_json()["error"]
    assert sorted(connection.keys("*")) == before


def test_read_only_offers_no_pause_and_refuses_it(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    client = create_app(connection, read_only=True).test_client()
    q = Queue("mail", connection=connection)
    q.enqueue("tests.jobs.noop")
    page = client.get("/queues/mail").get_data(as_text=True)
    assert ">Pause</button>" not in page
    assert client.post("/api/queues/mail/pause", json={}).status_code == 403
    assert client.post("/queues/mail/pause", data={}).status_code == 403
    q.pause()
    assert ">Unpause</button>" not in client.get("/queues/mail").get_data(as_text=True)
    assert client.post("/api/queues/mail/unpause", json={}).status_code == 403
    assert q.is_paused


def test_the_metrics_gauge_says_which_queues_are_paused(connection):
    pytest.importorskip("prometheus_client", reason="the metrics extra")
    from prometheus_client import generate_latest

    from geventq.metrics.exposition import make_registry

    paused, running = Queue("mail", connection=connection), Queue("reports", connection=connection)
    paused.enqueue("tests.jobs.noop")
    running.enqueue("tests.jobs.noop")
    paused.pause()
    registry, _ = make_registry(connection, paused.keys)
    text = generate_latest(registry).decode()
    assert 'geventq_queue_paused{queue="mail"} 1.0' in text
    assert 'geventq_queue_paused{queue="reports"} 0.0' in text
