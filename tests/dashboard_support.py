"""Shared by the dashboard tests: failed jobs made by a real worker, the CSRF token, the server."""

from __future__ import annotations

import re
import time

import pytest
import redis

from geventq import Queue, SimpleWorker
from tests.conftest import WorkerProcess, worker_env

HOSTILE_SCRIPT = "<script>window.__pwned=1</script>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned=2">'
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_failed(connection: redis.Redis, count: int, queue: str = "default",
                message: str = "boom") -> list[str]:
    """``count`` jobs that really failed (a SimpleWorker ran them), oldest first."""
    q = Queue(queue, connection=connection)
    ids = [q.enqueue("tests.jobs.fail", f"{message} {n}").id for n in range(count)]
    SimpleWorker([q], connection=connection).work(burst=True)
    return ids


def fill_registry(connection: redis.Redis, key: str, count: int, score_from: float) -> None:
    """``count`` members job-<n> scored score_from + n: Lua loops of bounded ZADDs, 100,000
    members per call (a call stays well under Redis's busy-script threshold)."""
    for first in range(1, count + 1, 100_000):
        connection.eval("""
            local first, last, base = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
            for s = first, last, 1000 do
              local batch = {}
              for i = s, math.min(s + 999, last) do
                batch[#batch + 1] = base + i
                batch[#batch + 1] = 'job-' .. i
              end
              redis.call('ZADD', KEYS[1], unpack(batch))
            end
            return last - first + 1""", 1, key, first, min(first + 99_999, count), score_from)


def csrf_from(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def commands_processed(connection: redis.Redis) -> int:
    return int(connection.info("stats")["total_commands_processed"])


def far_future() -> float:
    return time.time() + 365 * 86400


class Dashboard(WorkerProcess):
    """A `geventq dashboard` process; ``url`` once it serves."""

    def __init__(self, args: list[str], env: dict[str, str]):
        super().__init__(args, env, command="dashboard")
        self.url = ""

    def wait_until_serving(self) -> str:
        self.wait_for_output("geventq dashboard: serving http://")
        self.url = re.search(r"serving (http://\S+/)", "".join(self._lines)).group(1)
        return self.url


@pytest.fixture
def start_dashboard(redis_url):
    """Factory: start_dashboard('--auth', 'u:p', env_extra={...}) -> Dashboard (not yet serving)."""
    started: list[Dashboard] = []

    def start(*args: str, env_extra: dict | None = None, url: bool = True) -> Dashboard:
        env = worker_env(redis_url, **(env_extra or {}))
        env.pop("GEVENTQ_DASHBOARD_AUTH", None)
        env.update(env_extra or {})
        proc = Dashboard((["-u", redis_url] if url else []) + list(args), env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
