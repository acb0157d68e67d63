"""`geventq dashboard` as users start it: a real process, real HTTP, auth and binding rules."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time

import pytest
import requests

from geventq.cli.dashboard import is_loopback, parse_bind
from tests import dashboard_support
from tests.conftest import ROOT

pytest.importorskip("flask", reason="the dashboard needs Flask (the test extra installs it)")
start_dashboard = dashboard_support.start_dashboard  # the fixture


def test_with_auth_it_answers_401_without_credentials_and_serves_with_them(start_dashboard,
                                                                           connection):
    from geventq import Queue

    Queue(connection=connection).enqueue("tests.jobs.noop")
    dash = start_dashboard("--bind", "127.0.0.1:0", "--auth", "ops:pa55:word")
    url = dash.wait_until_serving()
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
    assert requests.get(url + "api/queues", timeout=5).status_code == 401
    ok = requests.get(url + "api/queues", auth=("ops", "pa55:word"), timeout=5)
    assert ok.status_code == 200 and ok.json()[0]["queued"] == 1
    assert "pa55" not in "".join(dash._lines)
    dash.signal(signal.SIGTERM)
    assert dash.wait(10) == 0
    assert "geventq dashboard: stopped" in dash.output()


def test_auth_from_the_environment_or_the_settings_file(start_dashboard, tmp_path):
    dash = start_dashboard("--bind", "127.0.0.1:0",
                           env_extra={"GEVENTQ_DASHBOARD_AUTH": "env:secret1"})
    url = dash.wait_until_serving()
    assert "basic auth" in "".join(dash._lines)
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("env", "secret1"), timeout=5).status_code == 200

    settings = tmp_path / "dash_settings.py"
    settings.write_text('DASHBOARD_AUTH = "file:secret2"\n')
    dash = start_dashboard("--bind", "127.0.0.1:0", "-c", str(settings))
    url = dash.wait_until_serving()
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("file", "secret2"), timeout=5).status_code == 200


def test_without_auth_it_serves_loopback_without_delaying_keep_alive_replies(start_dashboard):
    dash = start_dashboard("--bind", "127.0.0.1:0")
    url = dash.wait_until_serving()
    assert "no auth, loopback only" in "".join(dash._lines)
    session = requests.Session()
    page = session.get(url, timeout=5)
    assert page.status_code == 200 and "Queues" in page.text
    # without TCP_NODELAY each keep-alive reply waited ~40 ms for the client's delayed ACK
    took = []
    for _ in range(9):
        started = time.perf_counter()
        assert session.get(url + "api/queues", timeout=5).status_code == 200
        took.append(time.perf_counter() - started)
    assert statistics.median(took) < 0.035, [f"{t * 1000:.1f} ms" for t in took]


@pytest.mark.parametrize("bind, expected", [
    ("127.0.0.1:9181", ("127.0.0.1", 9181)), ("[::1]:0", ("::1", 0)),
    ("localhost:80", ("localhost", 80))])
def test_parse_bind(bind, expected):
    assert parse_bind(bind) == expected


@pytest.mark.parametrize("bind", ["nonsense", "127.0.0.1:99999", ":9181", "127.0.0.1:", "h:-1"])
def test_parse_bind_refuses_malformed_addresses(bind):
    with pytest.raises(ValueError, match="--bind takes HOST:PORT"):
        parse_bind(bind)


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.3.2.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com", "localhost.evil"]))


@pytest.mark.parametrize("bind", ["0.0.0.0:9181", "[::]:9181", "example.com:9181"])
def test_without_auth_it_refuses_any_other_address(start_dashboard, bind):
    dash = start_dashboard("--bind", bind)
    assert dash.wait(20) == 1
    out = dash.output().strip().splitlines()
    assert len(out) == 1 and out[0].startswith("geventq dashboard: refusing to serve on ")
    assert "--auth USER:PASSWORD" in out[0]


def test_with_auth_it_may_serve_every_interface(start_dashboard):
    dash = start_dashboard("--bind", "0.0.0.0:0", "--auth", "a:b")
    url = dash.wait_until_serving()
    local = url.replace("0.0.0.0", "127.0.0.1")
    assert requests.get(local, timeout=5).status_code == 401
    assert requests.get(local, auth=("a", "b"), timeout=5).status_code == 200


@pytest.mark.parametrize("args, message", [
    (["--bind", "nonsense"], "--bind takes HOST:PORT"),
    (["--auth", "no-colon-here"], "dashboard auth must be USER:PASSWORD"),
    (["-c", "/no/such/settings.py"], "config file not found"),
])
def test_bad_options_print_one_line_and_exit_1(start_dashboard, args, message):
    dash = start_dashboard(*args)
    assert dash.wait(20) == 1
    out = dash.output().strip().splitlines()
    assert len(out) == 1 and message in out[0], out
    assert "no-colon-here" not in out[0]


def test_a_redis_password_never_reaches_the_output(start_dashboard, redis_server, tmp_path):
    dash = start_dashboard("--bind", "127.0.0.1:0", url=False, env_extra={
        "GEVENTQ_URL": f"redis://someone:T0pSecret@127.0.0.1:{redis_server.port}/0"})
    url = dash.wait_until_serving()
    page = requests.get(url, timeout=5)
    assert page.status_code == 503 and "T0pSecret" not in page.text  # that user does not exist
    assert "someone@127.0.0.1" in "".join(dash._lines) and "T0pSecret" not in "".join(dash._lines)


def test_without_flask_it_says_what_to_install(start_dashboard, tmp_path):
    shadow = tmp_path / "flask"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('no flask here')\n")
    dash = start_dashboard(env_extra={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert dash.wait(20) == 1
    assert dash.output().strip() == "geventq dashboard: needs Flask: pip install 'geventq[dashboard]'"


def test_the_command_loads_neither_flask_nor_gevent_for_help():
    code = ("import sys; sys.argv = ['geventq', 'dashboard', '--help']\n"
            "from geventq.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('flask', 'gevent', 'redis') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "--bind" in done.stdout and "--auth" in done.stdout and "--read-only" in done.stdout
