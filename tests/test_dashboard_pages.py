"""Dashboard pages through Flask's test client: what they show, paging, search, escaping, cost."""

from __future__ import annotations

import glob
import html
import os
import pickle
import re
import time

import pytest

from geventq import Queue, Retry, SimpleWorker, lifecycle
from geventq.dashboard import create_app
from geventq.keys import Keys
from tests.dashboard_support import (
    HOSTILE_IMG,
    HOSTILE_SCRIPT,
    commands_processed,
    fill_registry,
    make_failed,
)

pytest.importorskip("flask", reason="the dashboard needs Flask (the test extra installs it)")


@pytest.fixture
def client(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    return create_app(connection).test_client()


def _ids_on(page_html: str) -> list[str]:
    """Job ids in the order the jobs table lists them."""
    return re.findall(r'<td class="id"><a href="/jobs/([^"]+)">', page_html)


def test_overview_shows_queues_workers_and_pools(client, connection, monkeypatch, register):
    make_failed(connection, 2)
    Queue("emails", connection=connection).enqueue("tests.jobs.noop")
    monkeypatch.setenv("GEVENTQ_POOL", "mailers")
    worker = SimpleWorker(["emails"], connection=connection, name="mailer-1")
    register(worker, concurrency=50, mode="gevent")
    lifecycle.claim(connection, worker.keys, ["emails"], "mailer-1", 1)

    page = client.get("/").get_data(as_text=True)
    assert 'href="/queues/default"' in page and 'href="/queues/emails"' in page
    assert 'href="/queues/default/failed">2</a>' in page
    assert "mailer-1" in page and "mailers" in page
    assert "1 / 49" in page  # busy / free slots
    assert 'data-live-overview="/api/overview"' in page  # the JS polls this
    assert "Redis 127.0.0.1:" in page


def test_the_overview_shows_hub_blocked_current_jobs_and_how_long_the_head_waited(
        client, connection, register):
    q = Queue("emails", connection=connection)
    head = q.enqueue("tests.jobs.noop")
    connection.hset(head.key, "enqueued_at", repr(time.time() - 125))  # waited about 2 minutes
    running = [q.enqueue("tests.jobs.noop") for _ in range(3)]
    worker = SimpleWorker(["emails"], connection=connection, name="mailer-2")
    register(worker, concurrency=10, mode="gevent")
    connection.lrem(q.key, 1, head.id)  # the head stays waiting while the worker claims the rest
    lifecycle.claim(connection, worker.keys, ["emails"], "mailer-2", 3)
    connection.lpush(q.key, head.id)
    connection.hincrby(worker.key, "hub_blocked", 7)

    page = client.get("/").get_data(as_text=True)
    row = re.search(r'<a href="/queues/emails">emails</a>.*?</tr>', page, re.S).group(0)
    assert re.search(r"<td>2m [5-9]s</td>", row), row  # the oldest job's wait
    workers = page[page.index('id="workers"'):]
    for job in running:  # each current job links to its page
        assert f'<a href="/jobs/{job.id}">{job.id}</a>' in workers
    assert "<td>7</td>" in workers  # hub blocked
    pools = page[page.index('id="pools"'):page.index('id="workers"')]
    assert "<td>1</td><td>3</td><td>7</td><td>7</td>" in pools  # workers, busy, free, hub blocked


def test_arguments_are_shown_as_a_bounded_repr(client, connection):
    job = Queue(connection=connection).enqueue("tests.jobs.echo", "x" * 50_000, list(range(5000)))
    data = client.get(f"/api/jobs/{job.id}").get_json()
    assert len(data["args"]) <= 2100
    assert data["args"].startswith("('xxx") and "..." in data["args"]
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert "x" * 400 not in page


def test_a_registry_is_paged_newest_first(client, connection):
    ids = make_failed(connection, 45)
    first = client.get("/queues/default/failed?page_size=20").get_data(as_text=True)
    assert _ids_on(first) == ids[::-1][:20]
    assert "page 1 of 3" in first
    third = client.get("/queues/default/failed?page_size=20&page=3").get_data(as_text=True)
    assert _ids_on(third) == ids[::-1][40:]
    beyond = client.get("/queues/default/failed?page_size=20&page=9").get_data(as_text=True)
    assert _ids_on(beyond) == []
    odd = client.get("/queues/default/failed?page=abc&page_size=-3")
    assert odd.status_code == 200 and len(_ids_on(odd.get_data(as_text=True))) == 45


def test_the_queue_page_lists_waiting_jobs_newest_first(client, connection):
    q = Queue(connection=connection)
    ids = [q.enqueue("tests.jobs.noop").id for _ in range(5)]
    page = client.get("/queues/default?page_size=20").get_data(as_text=True)
    assert _ids_on(page) == ids[::-1]
    assert "Queued jobs" in page and "Requeue all" not in page


def test_search_by_function_id_and_exception_text(client, connection):
    ids = make_failed(connection, 6, message="disk full on node")
    Queue(connection=connection).enqueue("tests.jobs.add", 1, 2)
    SimpleWorker([Queue(connection=connection)], connection=connection).work(burst=True)
    by_text = client.get("/queues/default/failed?search=DISK+FULL").get_data(as_text=True)
    assert sorted(_ids_on(by_text)) == sorted(ids)
    by_id = client.get(f"/queues/default/failed?search={ids[3][:12]}").get_data(as_text=True)
    assert _ids_on(by_id) == [ids[3]]
    by_func = client.get("/queues/default/finished?search=jobs.add").get_data(as_text=True)
    assert len(_ids_on(by_func)) == 1
    none = client.get("/queues/default/failed?search=nothing-like-this").get_data(as_text=True)
    assert _ids_on(none) == [] and "no job matches" in none


def test_search_scans_only_the_newest_entries_and_says_so(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    client = create_app(connection, search_limit=10).test_client()
    old = make_failed(connection, 5, message="needle")
    make_failed(connection, 12, message="hay")
    page = client.get("/queues/default/failed?search=needle").get_data(as_text=True)
    assert _ids_on(page) == []  # the needles are older than the 10 newest entries
    assert "among the newest\n  10 of 17 jobs" in page
    found = client.get("/api/queues/default/failed?search=hay").get_json()
    assert (found["total"], found["scanned"], found["source_total"]) == (10, 10, 17)
    assert old[0] not in str(found)


def test_the_job_page_shows_arguments_timestamps_result_and_every_try(client, connection):
    q = Queue(connection=connection)
    done = q.enqueue("tests.jobs.echo", 1, "two", key=[3.5])
    retried = q.enqueue("tests.jobs_sched.fail_and_record", "tries", retry=Retry(max=2))
    SimpleWorker([q], connection=connection).work(burst=True)

    page = html.unescape(client.get(f"/jobs/{done.id}").get_data(as_text=True))
    assert "tests.jobs.echo" in page and "(1, 'two')" in page and "{'key': [3.5]}" in page
    assert "[[1, 'two'], {'key': [3.5]}]" in page  # the result
    for stamp in ("created_at", "enqueued_at", "started_at", "ended_at"):
        assert re.search(rf'id="job-{stamp}">\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC<', page), stamp

    page = html.unescape(client.get(f"/jobs/{retried.id}").get_data(as_text=True))
    assert page.count("<summary>try ") == 3
    for n in (1, 2, 3):
        assert f"ValueError: try {n} failed" in page
    assert "Requeue" in page and "Delete" in page and ">Stop<" not in page


def test_stop_is_offered_for_a_running_job_only(client, connection):
    q = Queue(connection=connection)
    job = q.enqueue("tests.jobs.noop")
    lifecycle.claim_and_start(connection, q.keys, ["default"], "some-worker", 1)
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert ">Stop</button>" in page and ">Requeue</button>" not in page
    assert f'data-live-job="/api/jobs/{job.id}"' in page  # polled until it ends


def test_the_job_page_and_api_show_the_progress_a_running_job_reported(client, connection):
    q = Queue(connection=connection)
    job = q.enqueue("tests.jobs.noop")
    lifecycle.claim_and_start(connection, q.keys, ["default"], "some-worker", 1)
    assert "not reported" in client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert job.set_progress(100 / 3, "<b>step</b> 2 of 6")
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert '<progress max="100" value="33.3"></progress> 33.3% &lt;b&gt;step&lt;/b&gt; 2 of 6' in page
    progress = client.get(f"/api/jobs/{job.id}").get_json()["progress"]
    assert progress["percent"] == pytest.approx(33.333, abs=0.001)
    assert progress["message"] == "<b>step</b> 2 of 6" and progress["at"] > 0


def test_hostile_arguments_and_exception_text_are_shown_as_text(client, connection):
    q = Queue(connection=connection)
    bad = q.enqueue("tests.jobs.fail", HOSTILE_SCRIPT + HOSTILE_IMG, job_id="hostile-job")
    SimpleWorker([q], connection=connection).work(burst=True)
    connection.hset(bad.key, "description", HOSTILE_SCRIPT)
    for path in (f"/jobs/{bad.id}", "/queues/default/failed", "/queues/default/failed?search=pwned"):
        page = client.get(path).get_data(as_text=True)
        assert "<script>window.__pwned" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page, path


def test_hostile_names_in_redis_are_escaped_on_the_overview(client, connection):
    keys = Keys()
    connection.sadd(keys.queues, "<img/src=x/onerror=window.__pwned=3>")
    connection.sadd(keys.workers, "<svg/onload=window.__pwned=4>")
    connection.hset(keys.worker("<svg/onload=window.__pwned=4>"),
                    mapping={"queues": "<b>q</b>", "hostname": HOSTILE_SCRIPT, "pool": HOSTILE_IMG})
    page = client.get("/").get_data(as_text=True)
    for raw in ("<img/src=x", "<svg/onload", "<script>window", "<b>q</b>", "<img src=x"):
        assert raw not in page
    assert "&lt;svg/onload=window.__pwned=4&gt;" in page


class Evil:
    """Unpickling it with the real pickle would write a file: the dashboard must not."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


def test_job_data_is_never_unpickled_with_code_from_redis(client, connection, tmp_path):
    target = tmp_path / "pwned"
    q = Queue(connection=connection)
    job = q.enqueue("tests.jobs.noop")
    connection.hset(job.key, mapping={
        "data": pickle.dumps([None, (Evil(str(target)), 7), {"when": Evil(str(target))}]),
        "meta": pickle.dumps({"owner": Evil(str(target))}),
        "status": "finished", "result": pickle.dumps(Evil(str(target)))})
    page = html.unescape(client.get(f"/jobs/{job.id}").get_data(as_text=True))
    api = client.get(f"/api/jobs/{job.id}").get_json()
    assert not target.exists()
    assert "(<builtins.exec object>, 7)" in page
    assert api["kwargs"] == "{'when': <builtins.exec object>}"
    assert api["result"] == "<builtins.exec object>" and "builtins.exec" in api["meta"]


def test_garbage_job_fields_do_not_break_the_page(client, connection):
    q = Queue(connection=connection)
    job = q.enqueue("tests.jobs.noop")
    connection.hset(job.key, mapping={"data": b"\x80\x05garbage", "timeout": "soon",
                                      "created_at": "yesterday", "exc_history": "[not json",
                                      "meta": b"\x00" * 10, "status": "<i>odd</i>"})
    response = client.get(f"/jobs/{job.id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "&lt;unreadable: UnpicklingError&gt;" in page or "&lt;unreadable:" in page
    assert "&lt;exc_history is not valid JSON&gt;" in page
    assert client.get("/queues/default").status_code == 200


def test_unknown_things_get_404(client, connection):
    Queue(connection=connection).enqueue("tests.jobs.noop")
    assert client.get("/jobs/no-such-job").status_code == 404
    assert client.get("/queues/nope").status_code == 404
    assert client.get("/queues/default/bogus").status_code == 404
    assert client.get("/api/jobs/no-such-job").get_json() == {"error": "no job with id 'no-such-job'"}


def test_every_response_forbids_inline_script_and_framing(client, connection):
    for path in ("/", "/api/queues", "/jobs/missing", "/static/dashboard.js"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"], path
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"


def test_a_million_failed_jobs_render_their_first_page_fast(client, connection):
    key = Keys().registry("failed", "default")
    connection.sadd(Keys().queues, "default")
    fill_registry(connection, key, 1_000_000, time.time() + 86400)
    newest = [f"job-{n}" for n in range(1_000_000, 999_950, -1)]
    pipe = connection.pipeline(transaction=False)
    for job_id in newest:  # only the first page's jobs need their hash
        pipe.hset(Keys().job(job_id), mapping={"func": "app.tasks.work", "status": "failed",
                                               "origin": "default", "exc_info": "Error: x"})
    pipe.execute()

    client.get("/queues/default/failed")  # warm up (templates compiled once per process)
    before = commands_processed(connection)
    started = time.perf_counter()
    response = client.get("/queues/default/failed")
    elapsed = time.perf_counter() - started
    commands = commands_processed(connection) - before - 1
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert _ids_on(page) == newest
    assert "page 1 of 20,000" in page and "all 1,000,000 failed job(s)" in page
    assert commands < 120, f"the first page sent {commands} commands"
    assert elapsed < 1.0, f"the first page of 1,000,000 failed jobs took {elapsed:.3f} s"
    print(f"first page of a 1,000,000-job failed registry: {elapsed * 1000:.1f} ms, "
          f"{commands} Redis commands")

    started = time.perf_counter()
    last = client.get("/queues/default/failed?page=20000").get_data(as_text=True)
    assert "page 20,000 of 20,000" in last and time.perf_counter() - started < 1.0
    started = time.perf_counter()
    found = client.get("/queues/default/failed?search=job-999990").get_data(as_text=True)
    assert "among the newest\n  1,000 of 1,000,000 jobs" in found
    assert _ids_on(found) == ["job-999990"] and time.perf_counter() - started < 1.0


def test_a_huge_field_is_described_not_transferred(client, connection):
    q = Queue(connection=connection)
    job = q.enqueue("tests.jobs.noop")
    connection.hset(job.key, mapping={"status": "finished", "result": b"\x80" * (2 << 20),
                                      "exc_info": "x" * (2 << 20)})
    before = connection.info("stats")["total_net_output_bytes"]
    data = client.get(f"/api/jobs/{job.id}").get_json()
    sent = connection.info("stats")["total_net_output_bytes"] - before
    assert data["result"] == "<2,097,152 bytes: too large to show>"
    assert data["exc_info"] == "<2,097,152 bytes: too large to show>"
    assert sent < 100_000, f"{sent:,} bytes left Redis for one job"


def test_a_key_of_the_wrong_type_gets_an_error_page_not_a_crash(client, connection):
    keys = Keys()
    connection.sadd(keys.queues, "default")
    connection.set(keys.job("odd"), "a string, not a hash")
    assert client.get("/jobs/odd").status_code == 404
    connection.delete(keys.queues)
    connection.set(keys.queues, "not a set")
    reply = client.get("/queues/default")
    assert reply.status_code == 502 and "WRONGTYPE" in reply.get_data(as_text=True)
    assert client.get("/").status_code == 200  # the overview reads it as no queues


def test_the_pages_load_nothing_from_another_host():
    """It works offline: no template, script or stylesheet names another host (no CDN)."""
    root = os.path.join(os.path.dirname(__file__), "..", "geventq", "dashboard")
    files = glob.glob(os.path.join(root, "templates", "**", "*.html"), recursive=True) + \
        glob.glob(os.path.join(root, "static", "*"))
    assert len(files) >= 8
    for path in files:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        assert not re.search(r"https?:|(src|href|action)=[\"']//|url\(\s*[\"']?//|@import", text), path
