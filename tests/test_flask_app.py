"""examples/flask_app: enqueue from a view, show status and result; a real worker runs the job
(in the test process for the test client, a `geventq worker` process over HTTP)."""

from __future__ import annotations

import re
import threading

import pytest
import requests
from werkzeug.serving import make_server

from examples.flask_app.app import create_app
from examples.pages import serve_pages
from geventq import SimpleWorker
from tests.helpers import wait_for


@pytest.fixture
def page_site():
    with serve_pages() as url:
        yield url


@pytest.fixture
def served_app(redis_url):
    """The app behind a real threaded WSGI server; its base URL."""
    server = make_server("127.0.0.1", 0, create_app(redis_url), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _status(html: str) -> str | None:
    match = re.search(r'<dd id="status">([^<]*)</dd>', html)
    return match.group(1) if match else None


def test_test_client_posts_a_url_and_the_page_shows_the_result_of_a_real_worker(
        connection, redis_url, page_site):
    client = create_app(redis_url).test_client()

    posted = client.post("/jobs", data={"url": f"{page_site}/42"})
    assert posted.status_code == 303
    job_page = posted.headers["Location"]
    first = client.get(job_page).get_data(as_text=True)
    assert _status(first) == "queued"
    assert 'http-equiv="refresh"' in first  # the page refreshes itself until the job ends

    # the subject is the app: a worker in this process runs the job (the HTTP and SSE tests
    # below use `geventq worker` processes)
    assert SimpleWorker(["default"], connection=connection).work(burst=True) is True
    html = client.get(job_page).get_data(as_text=True)
    assert _status(html) == "finished"
    assert '<dd id="result">42</dd>' in html
    assert 'http-equiv="refresh"' not in html


def test_app_served_by_a_real_wsgi_server_driven_over_http(connection, served_app, start_worker, page_site):
    base = served_app
    with requests.Session() as http:
        page = http.post(f"{base}/jobs", data={"url": f"{page_site}/1234"}, timeout=10)
        assert page.status_code == 200 and _status(page.text) == "queued"
        job_id = page.url.rsplit("/", 1)[1]
        assert http.get(f"{base}/api/jobs/{job_id}", timeout=10).json()["status"] == "queued"

        start_worker("--burst")
        state = wait_for(lambda: (lambda d: d if d["status"] == "finished" else None)(
            http.get(f"{base}/api/jobs/{job_id}", timeout=10).json()),
            timeout=20, message="the job to finish")
        assert state["result"] == 1234 and state["error"] is None
        assert "<dd id=\"result\">1234</dd>" in http.get(f"{base}/jobs/{job_id}", timeout=10).text

        assert http.get(f"{base}/jobs/no-such-job", timeout=10).status_code == 404
        bad = http.post(f"{base}/jobs", data={"url": "ftp://example"}, timeout=10)
        assert bad.status_code == 400 and "not an http(s) URL" in bad.text


def test_is_async_false_runs_the_job_during_the_request_for_the_apps_own_tests(connection, redis_url,
                                                                             page_site):
    """The pattern for an app's own tests: no worker, the job ran when the view returns."""
    client = create_app(redis_url, is_async=False).test_client()

    done = client.post("/jobs", data={"url": f"{page_site}/5"}, follow_redirects=True)
    html = done.get_data(as_text=True)
    assert _status(html) == "finished" and '<dd id="result">5</dd>' in html

    # a page that cannot be fetched: the job fails, and the page says why
    failed = client.post("/jobs", data={"url": "http://127.0.0.1:9/"}, follow_redirects=True)
    html = failed.get_data(as_text=True)
    assert _status(html) == "failed" and 'id="error">' in html and "ConnectionError" in html


def test_bad_input_is_refused_and_nothing_is_written(connection, redis_url):
    client = create_app(redis_url).test_client()
    for url in ("", "ftp://example.org/", "javascript:alert(1)", "http://has space"):
        response = client.post("/jobs", data={"url": url})
        assert response.status_code == 400, url
        assert b"not an http(s) URL" in response.data
    assert connection.keys("geventq:*") == []
    for job_id in ("missing", "a:b", "x" * 65):
        assert client.get(f"/jobs/{job_id}").status_code == 404
        assert client.get(f"/api/jobs/{job_id}").status_code == 404


def _sse_events(response) -> list[dict]:
    """The data of each server-sent event of a streamed response, until it closes."""
    import json

    events = []
    for line in response.iter_lines(decode_unicode=True):
        if line and line.startswith("data: "):
            events.append(json.loads(line[len("data: "):]))
    return events


@pytest.mark.timeout(60)
def test_a_live_progress_bar_through_server_sent_events_over_http(connection, served_app,
                                                                  start_worker):
    base = served_app
    with requests.Session() as http:
        page = http.post(f"{base}/reports", data={"parts": "4"}, timeout=10)
        assert page.status_code == 200
        assert '<progress id="bar" max="100" value="0">' in page.text
        assert "new EventSource(" in page.text
        job_id = page.url.rsplit("/", 1)[1]
        start_worker("--burst")
        with requests.get(f"{base}/jobs/{job_id}/events", stream=True, timeout=30) as stream:
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            # the app stays usable while a stream is open
            assert http.get(f"{base}/", timeout=10).status_code == 200
            events = _sse_events(stream)
        percents = [e["percent"] for e in events if e["event"] == "progress"]
        assert percents and percents == sorted(percents) and percents[-1] == 100.0
        assert events[-1]["event"] == "finished"
        finished = http.get(f"{base}/reports/{job_id}", timeout=10).text
        assert '<progress id="bar" max="100" value="100.0">' in finished
        assert "part 4 of 4" in finished
        # a late listener: the latest progress, then the end, at once
        late = _sse_events(http.get(f"{base}/jobs/{job_id}/events", stream=True, timeout=10))
        assert [(e["event"], e.get("percent")) for e in late] == [("progress", 100.0),
                                                                  ("finished", None)]
        assert http.post(f"{base}/reports", data={"parts": "0"}, timeout=10).status_code == 400
        assert http.get(f"{base}/jobs/nope!/events", timeout=10).status_code == 404
