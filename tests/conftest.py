"""Test harness: one private redis-server per session, a clean database per test.

The server is started from ``$GEVENTQ_REDIS_SERVER`` or the ``redis-server``
on PATH, on a free loopback port, with nothing saved to disk. No test ever
talks to a Redis it did not start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
import redis

from geventq.testing import ClusterUnavailable, LocalRedisCluster, RedisServer, find_redis_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def redis_server():
    if not find_redis_server():
        pytest.exit("redis-server not found: install it (apt-get install redis-server) or set "
                    "GEVENTQ_REDIS_SERVER to its path", returncode=4)
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster():
    """A local Redis Cluster (3 primaries, 3 replicas), started for the tests that ask for it.

    Where redis-server or redis-cli cannot run a cluster, every such test fails with
    the one line saying why (never a silent skip).
    """
    reason = None
    try:
        cluster = LocalRedisCluster().start()
    except ClusterUnavailable as exc:
        reason = str(exc)
    if reason is not None:  # outside the except block: no chained traceback, one line
        pytest.fail(f"cannot start a local Redis Cluster: {reason}", pytrace=False)
    yield cluster
    cluster.close()


@pytest.fixture
def cluster_connection(redis_cluster):
    """A ``RedisCluster`` client of the local cluster, every primary emptied first.

    A test that killed a node leaves it to this fixture to bring it back.
    """
    from geventq.connection import get_connection

    if not redis_cluster.is_healthy():
        redis_cluster.heal()
    redis_cluster.flush()  # our own private cluster: safe to clean
    conn = get_connection(redis_cluster.url, cluster=True)
    yield conn
    conn.close()


def _shared_group(item: pytest.Item) -> str | None:
    """The pytest-xdist group of a test that must share a costly fixture with others.

    Under ``make test`` (``-n 2 --dist loadgroup``) each process starts its own private
    redis-server, which is cheap; but the local Redis Cluster (six nodes) is started once,
    so every test that asks for it runs in one process, and a module- or session-scoped
    fixture of a test module (a Chromium, a dashboard process, a built wheel, a TLS server)
    is set up once, so that module's tests run in one process.
    """
    if "redis_cluster" in item.fixturenames:
        return "redis-cluster"
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for name in item.fixturenames:
        for fixturedef in defs.get(name, ()):
            if fixturedef.scope in ("module", "session") and \
                    fixturedef.func.__module__.startswith("tests.") and name != "redis_server":
                return item.module.__name__
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config, items):
    # NB: with pytest 9.2 and pytest-xdist 3.8 the groups are silently ignored (xdist writes
    # the group into the item's old _nodeid field, which pytest 9.2 no longer reads:
    # pytest-xdist issue 1386), so the tests are spread one by one as with --dist load and
    # such a fixture is set up in each process that needs it (so no such fixture may write
    # into the checkout: the package build works on a copy).
    for item in items:
        group = _shared_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def redis_url(redis_server) -> str:
    return redis_server.url


@pytest.fixture
def connection(redis_server):
    conn = redis.Redis(host="127.0.0.1", port=redis_server.port)
    conn.flushdb()  # our own private server: safe to clean
    yield conn
    conn.close()


@pytest.fixture
def queue(connection):
    from geventq import Queue

    return Queue("default", connection=connection)


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment for a `geventq worker` subprocess that can import tests.jobs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["REDIS_URL"] = redis_url
    env.pop("GEVENTQ_PREFIX", None)
    env.update(extra)
    return env


class WorkerProcess:
    """A real `geventq worker` process, started the way users start it.

    Its output is read by a thread as it comes, so a test can wait for a line.
    """

    def __init__(self, args: list[str], env: dict[str, str], command: str = "worker"):
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "geventq", command, *args], env=env, cwd=ROOT,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.append(line)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def wait_for_output(self, text: str, timeout: float = 15) -> None:
        """Block until the process has printed ``text``."""
        from tests.helpers import wait_for

        wait_for(lambda: text in "".join(self._lines), timeout=timeout,
                 message=f"{text!r} in the output of geventq {' '.join(self.args)}")

    def output(self, timeout: float = 30) -> str:
        """Everything the process printed (waits for it to exit)."""
        self.proc.wait(timeout)
        self._reader.join(5)
        return "".join(self._lines)

    def kill(self) -> None:
        from tests.helpers import kill_group

        kill_group(self.proc)


@pytest.fixture
def start_worker(redis_url):
    """Factory: start_worker('--burst', 'high', env_extra={...}) -> WorkerProcess."""
    started: list[WorkerProcess] = []

    def start(*args: str, env_extra: dict | None = None) -> WorkerProcess:
        proc = WorkerProcess(list(args), worker_env(redis_url, **(env_extra or {})))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


# Hypothesis profiles: "ci" (the default) keeps the suite's time budget; `make fuzz`
# selects "fuzz" through $GEVENTQ_HYPOTHESIS_PROFILE. No example database: nothing is
# written into the work tree.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # the test extra is not installed: the property tests are skipped
    pass
else:
    _hypothesis_settings.register_profile("ci", max_examples=40, deadline=None, database=None,
                                          print_blob=True)
    _hypothesis_settings.register_profile("fuzz", max_examples=2000, deadline=None,
                                          database=None, print_blob=True)
    _hypothesis_settings.load_profile(os.environ.get("GEVENTQ_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def register():
    """register(worker, **fields): announce a worker that runs no loop, as a test's stand-in
    for a live one; it is unregistered at the end of the test, which also stops its pulse
    process (a pulse left running would keep writing its worker into later tests)."""
    registered = []

    def do(worker, **fields):
        worker.register(**fields)
        registered.append(worker)
        return worker

    yield do
    for worker in registered:
        worker.unregister()
