"""Secure connections: TLS with a CA made here, an ACL user, and passwords kept secret.

One redis-server (module-wide) listens on a plain port (for the harness) and a
TLS port that requires a client certificate; it has an ACL user ``alice``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import redis

from geventq import Queue
from geventq.connection import connection_from_settings, describe_connection
from geventq.exceptions import ConfigError
from geventq.testing import RedisServer, free_port
from geventq.utils import redact_url
from tests import jobs_reliability as jobs
from tests.conftest import ROOT, worker_env
from tests.test_recovery import write_config

PASSWORD = "Sup3r-s3cret-Pa55"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def make_certificates(directory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    paths = {name: str(directory / name) for name in (
        "ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key", "san.cnf")}
    with open(paths["san.cnf"], "w") as fh:
        fh.write("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", paths["ca.key"], "-out", paths["ca.crt"], "-days", "1",
        "-subj", "/CN=geventq test CA")
    for name, extra in (("server", ["-extfile", paths["san.cnf"]]), ("client", [])):
        csr = str(directory / f"{name}.csr")
        run("req", "-new", *ec, "-keyout", paths[f"{name}.key"], "-out", csr,
            "-subj", f"/CN=geventq test {name}")
        run("x509", "-req", "-in", csr, "-CA", paths["ca.crt"], "-CAkey", paths["ca.key"],
            "-CAcreateserial", "-out", paths[f"{name}.crt"], "-days", "1", *extra)
    return paths


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    if not os.path.exists(OPENSSL):
        pytest.skip("openssl not found")
    certs = make_certificates(tmp_path_factory.mktemp("tls"))
    tls_port = free_port()
    server = RedisServer(args=[
        "--tls-port", str(tls_port), "--tls-cert-file", certs["server.crt"],
        "--tls-key-file", certs["server.key"], "--tls-ca-cert-file", certs["ca.crt"],
        "--tls-auth-clients", "yes",
        "--user", "alice", "on", f">{PASSWORD}", "~*", "&*", "+@all"])
    try:
        server.start()
    except RuntimeError as exc:  # a redis-server built without TLS
        pytest.skip(f"redis-server cannot serve TLS here: {exc}")
    server.tls_port = tls_port
    server.certs = certs
    yield server
    server.close()


def tls_files(server) -> dict[str, str]:
    return {"REDIS_SSL_CA_CERTS": server.certs["ca.crt"],
            "REDIS_SSL_CERTFILE": server.certs["client.crt"],
            "REDIS_SSL_KEYFILE": server.certs["client.key"]}


def geventq(*args: str, server, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run the `geventq` command (its own env: no REDIS_URL pointing elsewhere)."""
    env = worker_env(f"redis://127.0.0.1:{server.port}/0")
    return subprocess.run([sys.executable, "-m", "geventq", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_tls_url_with_acl_user_enqueue_and_work(tls_server, tmp_path):
    settings = {"REDIS_URL": f"rediss://alice:{PASSWORD}@127.0.0.1:{tls_server.tls_port}/0",
                **tls_files(tls_server)}
    connection = connection_from_settings(settings)
    assert "(TLS)" in describe_connection(connection) and PASSWORD not in \
        describe_connection(connection)
    queue = Queue("tls", connection=connection)
    queue.empty()
    enqueued = [queue.enqueue(jobs.add, i, i) for i in range(20)]
    config = write_config(tmp_path, LOGGING_LEVEL="DEBUG", **settings)
    done = geventq("worker", "--burst", "-c", config, "tls", server=tls_server)
    assert done.returncode == 0, done.stderr
    assert [job.result for job in enqueued] == [2 * i for i in range(20)]
    assert PASSWORD not in done.stdout + done.stderr
    # the plain port sees the same data: it really went over TLS to this server
    assert redis.Redis(port=tls_server.port, username="alice", password=PASSWORD).zcard(
        "geventq:finished:tls") == 20


def test_tls_host_settings_simple_worker_and_info(tls_server, tmp_path):
    settings = {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": tls_server.tls_port, "REDIS_SSL": True,
                "REDIS_USERNAME": "alice", "REDIS_PASSWORD": PASSWORD, **tls_files(tls_server)}
    queue = Queue("tls-simple", connection=connection_from_settings(settings))
    job = queue.enqueue(jobs.add, 40, 2)
    config = write_config(tmp_path, WORKER_CLASS="geventq.SimpleWorker", **settings)
    done = geventq("worker", "--burst", "-c", config, "tls-simple", server=tls_server)
    assert done.returncode == 0, done.stderr
    assert job.result == 42
    info = geventq("info", "-c", config, "tls-simple", server=tls_server)
    assert info.returncode == 0, info.stderr
    assert "tls-simple" in info.stdout and "finished 1" in info.stdout
    assert PASSWORD not in info.stdout + info.stderr + done.stderr


def test_wrong_password_is_one_clear_line(tls_server, tmp_path):
    wrong = "Wr0ng-guess-77"
    config = write_config(tmp_path, **tls_files(tls_server))
    url = f"rediss://alice:{wrong}@127.0.0.1:{tls_server.tls_port}/0"
    done = geventq("worker", "-c", config, "-u", url, server=tls_server)
    assert done.returncode == 3
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"geventq worker: Redis at alice@127.0.0.1:{tls_server.tls_port}/0"
                               " (TLS) refused the credentials")
    assert wrong not in lines[0] and "Traceback" not in lines[0]
    # `geventq info` over the plain port with the same wrong password: one line, exit 1
    plain = f"redis://alice:{wrong}@127.0.0.1:{tls_server.port}/0"
    done = geventq("info", "-u", plain, server=tls_server)
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 1 and len(output.splitlines()) == 1, output
    assert "invalid username-password pair" in output
    assert wrong not in output and "Traceback" not in output


def test_tls_settings_errors_name_the_setting(tls_server):
    plain = {"REDIS_URL": f"redis://127.0.0.1:{tls_server.port}/0",
             "REDIS_SSL_CA_CERTS": tls_server.certs["ca.crt"]}
    with pytest.raises(ConfigError, match="REDIS_SSL_CA_CERTS set but the connection does not"):
        connection_from_settings(plain)
    missing = {"REDIS_URL": f"rediss://127.0.0.1:{tls_server.tls_port}/0",
               "REDIS_SSL_CA_CERTS": "/nonexistent/ca.crt"}
    with pytest.raises(ConfigError, match="REDIS_SSL_CA_CERTS: no such file"):
        connection_from_settings(missing)
    with pytest.raises(ConfigError, match="REDIS_SENTINEL_MASTER"):
        connection_from_settings({"REDIS_SENTINELS": [("127.0.0.1", 26379)]})


def test_redact_url_hides_every_password():
    assert redact_url("redis://alice:p@ss@host:1/0") == "redis://alice:***@host:1/0"
    assert redact_url("rediss://:secret@host/0") == "rediss://:***@host/0"
    assert redact_url("redis://host/0?password=secret&db=1") == "redis://host/0?password=***&db=1"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
