"""Dashboard JSON API and actions through Flask's test client: CSRF, read-only, auth, mounting."""

from __future__ import annotations

import base64

import pytest
import redis

from geventq import Job, Queue, lifecycle
from geventq.dashboard import blueprint, create_app, init_dashboard
from tests.dashboard_support import csrf_from, make_failed

flask = pytest.importorskip("flask", reason="the dashboard needs Flask (the test extra installs it)")

QUEUE_FIELDS = {"name", "queued", "started", "failed", "finished", "scheduled", "deferred",
                "canceled", "paused", "oldest_job_age"}


@pytest.fixture
def client(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    return create_app(connection).test_client()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _status(connection, job_id: str) -> str:
    return Job.fetch(job_id, connection=connection).get_status()


def test_api_queues_has_exactly_the_fields_of_the_spec(client, connection):
    make_failed(connection, 3)
    Queue(connection=connection).enqueue("tests.jobs.noop")
    [queue] = client.get("/api/queues").get_json()
    assert set(queue) == QUEUE_FIELDS
    assert (queue["name"], queue["queued"], queue["failed"], queue["paused"]) == ("default", 1, 3, False)
    assert queue["oldest_job_age"] >= 0


def test_api_job_returns_the_jobs_fields(client, connection):
    job = Queue(connection=connection).enqueue("tests.jobs.add", 2, y=3)
    data = client.get(f"/api/jobs/{job.id}").get_json()
    assert (data["id"], data["status"], data["func_name"], data["origin"]) == \
        (job.id, "queued", "tests.jobs.add", "default")
    assert (data["args"], data["kwargs"]) == ("(2,)", "{'y': 3}")
    assert data["created_at"].endswith("+00:00") and data["ended_at"] is None
    assert data["exc_info"] is None and data["exc_history"] == [] and data["progress"] is None


def test_requeue_failed_by_ids_all_or_search(client, connection):
    ids = make_failed(connection, 6)
    other = make_failed(connection, 1, queue="other")
    reply = client.post("/api/queues/default/failed/requeue", json={"ids": ids[:2] + other})
    assert reply.get_json() == {"requeued": 2}  # the other queue's job is not this registry's
    assert [_status(connection, i) for i in ids[:3]] == ["queued", "queued", "failed"]
    assert _status(connection, other[0]) == "failed"
    reply = client.post("/api/queues/default/failed/requeue", json={"search": ids[4]})
    assert reply.get_json() == {"requeued": 1} and _status(connection, ids[4]) == "queued"
    assert client.post("/api/queues/default/failed/requeue", json={}).get_json() == {"requeued": 3}
    assert Queue(connection=connection).failed_job_registry.count == 0
    assert Queue(connection=connection).count == 6


@pytest.mark.parametrize("body", [[], "x", {"ids": "abc"}, {"ids": [1, 2]}, {"search": 3},
                                  {"ids": ["a"] * 10_001}])
def test_requeue_failed_refuses_a_bad_body_and_changes_nothing(client, connection, body):
    ids = make_failed(connection, 1)
    reply = client.post("/api/queues/default/failed/requeue", json=body)
    assert reply.status_code == 400 and "error" in reply.get_json()
    assert _status(connection, ids[0]) == "failed"


def test_job_actions_through_the_api(client, connection):
    [failed] = make_failed(connection, 1)
    assert client.post(f"/api/jobs/{failed}/requeue", json={}).get_json() == \
        {"id": failed, "status": "queued"}
    again = client.post(f"/api/jobs/{failed}/requeue", json={})
    assert again.status_code == 409 and "its status is queued" in again.get_json()["error"]
    assert client.post(f"/api/jobs/{failed}/stop", json={}).status_code == 409  # not running
    q = Queue(connection=connection)
    lifecycle.claim_and_start(connection, q.keys, ["default"], "some-worker", 1)
    with connection.pubsub() as pubsub:
        pubsub.subscribe(q.keys.stop_channel())
        pubsub.get_message(timeout=1)
        assert client.post(f"/api/jobs/{failed}/stop", json={}).get_json() == \
            {"id": failed, "stop_sent": True}
        assert pubsub.get_message(timeout=2)["data"] == failed.encode()
    assert client.post(f"/api/jobs/{failed}/delete", json={}).get_json() == \
        {"id": failed, "deleted": True}
    assert not connection.exists(q.keys.job(failed))
    assert client.post(f"/api/jobs/{failed}/delete", json={}).status_code == 404


def test_pause_and_unpause_through_the_api(client, connection):
    q = Queue(connection=connection)
    q.enqueue("tests.jobs.noop")
    assert client.post("/api/queues/default/pause", json={}).status_code == 200
    assert q.is_paused
    assert client.post("/api/queues/default/unpause", json={}).status_code == 200
    assert not q.is_paused


def test_a_form_post_needs_the_csrf_token_of_the_page(client, connection):
    [job_id] = make_failed(connection, 1)
    page = client.get("/queues/default/failed").get_data(as_text=True)
    token = csrf_from(page)
    refused = client.post("/queues/default/failed/requeue", data={"search": ""})
    assert refused.status_code == 403 and _status(connection, job_id) == "failed"
    wrong = client.post("/queues/default/failed/requeue", data={"csrf_token": "x" * 43})
    assert wrong.status_code == 403 and _status(connection, job_id) == "failed"
    done = client.post("/queues/default/failed/requeue", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"].endswith("requeued=1")
    assert _status(connection, job_id) == "queued"
    assert "1 job(s) requeued." in client.get(done.headers["Location"]).get_data(as_text=True)


def test_a_token_without_its_cookie_is_refused(connection, monkeypatch):
    """A cross-site form POST carries no SameSite=Strict cookie: even a stolen token fails."""
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    app = create_app(connection)
    [job_id] = make_failed(connection, 1)
    token = csrf_from(app.test_client().get("/queues/default/failed").get_data(as_text=True))
    fresh = app.test_client()  # a browser without the dashboard's cookie
    assert fresh.post("/queues/default/failed/requeue", data={"csrf_token": token}).status_code == 403
    assert _status(connection, job_id) == "failed"


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Origin": "null"},
                                     {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}])
def test_cross_site_posts_are_refused_even_with_a_token(client, connection, headers):
    [job_id] = make_failed(connection, 1)
    token = csrf_from(client.get(f"/jobs/{job_id}").get_data(as_text=True))
    form = client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": token}, headers=headers)
    api = client.post(f"/api/jobs/{job_id}/requeue", json={}, headers=headers)
    assert (form.status_code, api.status_code) == (403, 403)
    assert _status(connection, job_id) == "failed"
    same = client.post(f"/jobs/{job_id}/requeue", data={"csrf_token": token},
                       headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 303 and _status(connection, job_id) == "queued"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_the_api_refuses_what_a_plain_cross_site_form_can_send(client, connection, content_type):
    [job_id] = make_failed(connection, 1)
    reply = client.post("/api/queues/default/failed/requeue", data="{}",
                        headers={"Content-Type": content_type})
    assert reply.status_code == 403 and _status(connection, job_id) == "failed"


def test_read_only_shows_no_buttons_and_refuses_every_post(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    client = create_app(connection, read_only=True).test_client()
    [job_id] = make_failed(connection, 1)
    for path in ("/queues/default/failed", f"/jobs/{job_id}"):
        page = client.get(path).get_data(as_text=True)
        assert "<button" not in page.replace('<button type="submit">Search</button>', "")
        assert "read-only" in page
    assert client.post(f"/api/jobs/{job_id}/requeue", json={}).status_code == 403
    assert client.post("/api/queues/default/failed/requeue", json={}).status_code == 403
    assert client.post(f"/jobs/{job_id}/delete", data={}).status_code == 403
    assert _status(connection, job_id) == "failed"


def test_create_app_with_auth_answers_401_without_valid_credentials(connection, monkeypatch):
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    client = create_app(connection, auth="admin:s3cr:et").test_client()
    no_auth = client.get("/")
    assert no_auth.status_code == 401 and no_auth.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/", headers=_basic("admin", "wrong")).status_code == 401
    assert client.get("/", headers=_basic("Admin", "s3cr:et")).status_code == 401
    assert client.get("/static/dashboard.css").status_code == 401
    assert client.get("/", headers=_basic("admin", "s3cr:et")).status_code == 200
    monkeypatch.setenv("GEVENTQ_DASHBOARD_AUTH", "env-user:env-pass")
    from_env = create_app(connection).test_client()
    assert from_env.get("/api/queues").status_code == 401
    assert from_env.get("/api/queues", headers=_basic("env-user", "env-pass")).status_code == 200


@pytest.mark.parametrize("auth", ["nocolon", ":nouser", "nopassword:"])
def test_malformed_auth_is_refused_without_echoing_it(connection, auth):
    with pytest.raises(ValueError) as caught:
        create_app(connection, auth=auth)
    assert "USER:PASSWORD" in str(caught.value) and auth not in str(caught.value)


@pytest.fixture
def password_client(connection, redis_url, monkeypatch):
    """A dashboard whose Redis URL carries a password (an ACL user of our private server)."""
    monkeypatch.delenv("GEVENTQ_DASHBOARD_AUTH", raising=False)
    connection.acl_setuser("dash-user", enabled=True, passwords=["+Sup3rSecret"], keys=["*"],
                           commands=["+@all"], reset=True)
    conn = redis.Redis.from_url(redis_url.replace("redis://", "redis://dash-user:Sup3rSecret@"))
    yield create_app(conn).test_client()
    conn.close()
    connection.acl_deluser("dash-user")


def test_the_redis_password_is_never_shown(password_client, connection, redis_url):
    [job_id] = make_failed(connection, 1)
    for path in ("/", "/api/overview", "/queues/default/failed", f"/jobs/{job_id}", "/jobs/nope"):
        text = password_client.get(path).get_data(as_text=True)
        assert "Sup3rSecret" not in text, path
    assert "dash-user@127.0.0.1" in password_client.get("/").get_data(as_text=True)
    # Redis down: the error page names the server, not the password
    down = redis.Redis.from_url("redis://dash-user:Sup3rSecret@127.0.0.1:1/0")
    reply = create_app(down).test_client().get("/")
    text = reply.get_data(as_text=True)
    assert reply.status_code == 503 and "did not answer" in text and "Sup3rSecret" not in text


def test_the_blueprint_mounts_inside_an_app_with_its_own_auth(connection, redis_url):
    app = flask.Flask("host_app")
    init_dashboard(app, connection)
    app.register_blueprint(blueprint, url_prefix="/admin/queues")

    @app.before_request
    def only_admins():
        if flask.request.blueprint == blueprint.name and \
                flask.request.headers.get("X-User") != "admin":
            flask.abort(403)

    @app.get("/")
    def home():
        return "host home"

    client = app.test_client()
    make_failed(connection, 1)
    assert client.get("/").get_data(as_text=True) == "host home"
    assert client.get("/admin/queues/").status_code == 403
    page = client.get("/admin/queues/", headers={"X-User": "admin"}).get_data(as_text=True)
    assert 'href="/admin/queues/queues/default"' in page
    assert '/admin/queues/static/dashboard.css' in page
    assert client.get("/admin/queues/static/dashboard.js", headers={"X-User": "admin"}).status_code == 200
    # the host app's own responses are left alone
    assert "Content-Security-Policy" not in client.get("/").headers


def test_stop_stops_a_job_a_real_worker_runs(client, connection, start_worker):
    from tests.helpers import wait_for

    job = Queue(connection=connection).enqueue("tests.jobs.sleep", 30)
    start_worker("--logging-level", "WARNING")
    wait_for(lambda: _status(connection, job.id) == "started", timeout=20,
             message="the worker to start the job")
    page = client.get(f"/jobs/{job.id}").get_data(as_text=True)
    assert client.post(f"/jobs/{job.id}/stop", data={"csrf_token": csrf_from(page)}).status_code == 303
    wait_for(lambda: _status(connection, job.id) == "stopped", timeout=10,
             message="the job to be stopped")
    assert job.id in Queue(connection=connection).failed_job_registry
