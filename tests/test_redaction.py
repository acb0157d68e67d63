"""Passwords never leak, whatever they hold: ``/ # @ : ? % space``, raw or percent-encoded.

One function (``geventq.utils.redact_url``) hides them in every message. Real
CLI processes (``geventq info``, ``worker``, ``pool``) against a private Redis
that requires a password; redis-py's own errors (a wrong password) too.
"""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import quote

import pytest
import redis

from geventq import Queue
from geventq.connection import get_connection
from geventq.defaults import EXIT_BOOT_ERROR
from geventq.testing import RedisServer
from geventq.utils import redact_url, remember_secret, url_password
from tests.conftest import ROOT, worker_env
from tests.test_recovery import write_config

# what a password may hold; each test looks for every spelling of it in the output
PASSWORD = "Pa/ss#wo@rd:1?9%x y"
WRONG = "Wr/ong#gu@ess:2?8%z w"


def spellings(password: str) -> list[str]:
    """The forms a message could show: raw, URL-encoded, and the pieces a URL parser cuts."""
    pieces = [p for p in password.replace("#", "/").replace("?", "/").split("/") if len(p) >= 4]
    return [password, quote(password, safe=""), quote(password), *pieces]


def assert_hidden(text: str, *passwords: str) -> None:
    for password in passwords:
        for form in spellings(password):
            assert form not in text, f"{form!r} leaked in:\n{text}"


@pytest.fixture(scope="module")
def locked_redis():
    """A private redis-server whose default user needs PASSWORD (requirepass)."""
    with RedisServer() as server:
        redis.Redis(port=server.port).config_set("requirepass", PASSWORD)
        yield server


def url(server, password: str, encode: bool = True) -> str:
    secret = quote(password, safe="") if encode else password
    return f"redis://default:{secret}@127.0.0.1:{server.port}/0"


def geventq(*args: str, env: dict | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "geventq", *args], cwd=ROOT,
                          env=env or worker_env("redis://127.0.0.1:1/0"), capture_output=True,
                          text=True, timeout=timeout)


# -- the function -----------------------------------------------------------------------
@pytest.mark.parametrize("password", [PASSWORD, "p/ss", "p#ss", "p@ss", "p:ss", "p?ss", "p%2Fss",
                                      "a b", ":@/#?%"])
def test_a_url_loses_its_password_whatever_it_holds(password):
    text = f"cannot reach redis://alice:{password}@db.internal:6379/0 (refused)"
    assert redact_url(text) == "cannot reach redis://alice:***@db.internal:6379/0 (refused)"


def test_remembered_passwords_are_hidden_in_every_spelling():
    remember_secret("Sp3cial/#@:?% pw")
    for form in ("Sp3cial/#@:?% pw", quote("Sp3cial/#@:?% pw", safe=""),
                 "Sp3cial%2F%23%40%3A%3F%25+pw"):
        assert redact_url(f"auth with {form} failed") == "auth with *** failed"
    remember_secret("Enc%2Foded")  # as written in a URL: its decoded form is hidden too
    assert redact_url("Enc/oded, Enc%2Foded") == "***, ***"
    assert redact_url("redis://h/0?password=x&db=1") == "redis://h/0?password=***&db=1"
    assert url_password("redis://u:a/b#c@h:1/0") == "a/b#c" and url_password("redis://h/0") is None


def test_a_password_a_url_parser_would_cut_is_refused_before_redis_py_quotes_it():
    for char in "/?#":
        with pytest.raises(ValueError) as caught:
            get_connection(f"redis://alice:s3cret{char}Tail99@127.0.0.1:6379/0")
        message = str(caught.value)
        assert f"holds a {char!r}" in message and "percent-encoded" in message
        assert "s3cret" not in message and "Tail99" not in message


# -- real processes -------------------------------------------------------------------------
def test_info_with_every_character_in_the_password(locked_redis):
    done = geventq("info", "-u", url(locked_redis, PASSWORD))
    assert done.returncode == 0, done.stderr
    assert "0 queue(s)" in done.stdout
    assert_hidden(done.stdout + done.stderr, PASSWORD)


def test_a_wrong_password_is_one_line_without_either_password(locked_redis):
    done = geventq("info", "-u", url(locked_redis, WRONG))
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, lines
    assert "invalid username-password pair" in lines[0] or "WRONGPASS" in lines[0]
    assert_hidden(lines[0], WRONG, PASSWORD)


@pytest.mark.parametrize("command", ["info", "worker"])
def test_an_unencoded_password_is_refused_in_one_line(locked_redis, command):
    """`#`, `?` and `/` cut a URL short: said so, and no part of the password is shown."""
    done = geventq(command, *(["--burst"] if command == "worker" else []), "-u",
                   url(locked_redis, PASSWORD, encode=False))
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert done.returncode == (EXIT_BOOT_ERROR if command == "worker" else 1)
    assert "its password holds a '/'" in lines[0] and "redis://default:***@" in lines[0]
    assert_hidden(lines[0], PASSWORD)


def test_worker_logs_and_errors_hide_the_password(locked_redis, tmp_path):
    """The worker's own log lines, a job's failure logged by it, and its exit line."""
    good = url(locked_redis, PASSWORD)
    queue = Queue("leaks", connection=redis.Redis.from_url(good))
    job = queue.enqueue("tests.jobs.fail", f"cannot log in with {PASSWORD} to {good}")
    config = write_config(tmp_path, REDIS_URL=good, LOGGING_LEVEL="DEBUG")
    done = geventq("worker", "--burst", "-c", config, "leaks",
                   env=worker_env(good, GEVENTQ_URL=""))
    assert done.returncode == 0, done.stderr
    assert job.get_status() == "failed"
    assert "cannot log in with *** to redis://default:***@" in done.stderr
    assert_hidden(done.stdout + done.stderr, PASSWORD)
    wrong = geventq("worker", "--burst", "-u", url(locked_redis, WRONG))
    assert wrong.returncode == EXIT_BOOT_ERROR
    assert "refused the credentials" in wrong.stderr
    assert_hidden(wrong.stdout + wrong.stderr, WRONG, PASSWORD)


def test_the_pool_output_hides_the_password(locked_redis, tmp_path):
    bad = url(locked_redis, WRONG)
    log = tmp_path / "pool.log"
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "geventq", "pool", "-N", "1", "-u", bad],
                              cwd=ROOT, env=worker_env("redis://127.0.0.1:1/0"), stdout=out,
                              stderr=subprocess.STDOUT, timeout=60)
    text = log.read_text()
    assert proc.returncode == EXIT_BOOT_ERROR, text
    assert "refused the credentials" in text and "could not start" in text
    assert_hidden(text, WRONG)
