"""Worker and pool settings: each rule written once (geventq.setting_rules), applied to the
settings file, the command line and the worker classes' own arguments alike."""

from __future__ import annotations

import math

import pytest

from geventq import GeventWorker, SimpleWorker
from geventq.defaults import EXIT_BOOT_ERROR
from geventq.exceptions import ConfigError
from geventq.scheduler import Scheduler
from geventq.setting_rules import RULES, check_settings
from geventq.supervisor import PoolSettings
from tests.conftest import WorkerProcess, worker_env

NAN, INF = float("nan"), float("inf")

# key -> values its rule refuses
BAD = {
    "HEARTBEAT_INTERVAL": [0, 0.05, -1, 3601, NAN, INF, True, "5", [5]],
    "DEFAULT_RESULT_TTL": [1.5, -2, 2**31, NAN, INF, True, "soon"],
    "MAX_ABANDONED_REQUEUES": [-1, 1.5, 2**31, NAN, True, "1"],
    "SHUTDOWN_GRACE": [-1, NAN, INF, 2**31, False, "30"],
    "MAX_BLOCKING_TIME": [-1, 0.001, NAN, INF, True, "1"],
    "CONCURRENCY": [0, -5, 100_001, 1.5, NAN, True, "100"],
    "FORK_CONCURRENCY": [0, 4097, 2.5, True, "2"],
    "MAX_JOBS": [0, -1, 1.5, INF, True, "10"],
    "SCHEDULER_LOCK_TTL": [0, 0.29, -1, NAN, INF, 2**31, True, "10"],
    "QUEUES": [[], ["a b"], ["a:b"], ["a,b"], ["new\nline"], [""], [1], {"a": 1}, 5],
    "FORK_QUEUES": [["x y"], ["nul\x00"], 5],
    "PREFIX": ["", "a b", "tab\t", "nl\n", 5],
    "LOGGING_LEVEL": ["LOUD", "", 5, True, "verbose"],
    "NAME": ["a b", "a:b", "a,b", "cr\r", "", 5],
    "MODE": ["threads", "", 1],
    "BURST": ["false", 1, "yes"],
    "WITH_SCHEDULER": ["no", 0],
    "NO_WAIT": ["true"],
    "REDIS_CLUSTER": ["yes", 1],
    "ALLOW_EVICTION": ["no", 0],
    "WORKERS": [0, -1, 4097, 1.5, True, "4"],
    "WORKER_TIMEOUT": [0, -1, NAN, INF, "60"],
    "WORKER_BOOT_TIMEOUT": [0, NAN, "30"],
}
CASES = [(key, value) for key, values in BAD.items() for value in values]

# key -> (given, as checked)
GOOD = {
    "HEARTBEAT_INTERVAL": [(0.1, 0.1), (5, 5.0), (3600, 3600.0)],
    "DEFAULT_RESULT_TTL": [(0, 0), (-1, -1), (500.0, 500), ("600", 600)],
    "MAX_ABANDONED_REQUEUES": [(0, 0), (3, 3), (2.0, 2)],
    "SHUTDOWN_GRACE": [(0, 0.0), (2.5, 2.5)],
    "MAX_BLOCKING_TIME": [(0, 0.0), (0.01, 0.01), (1, 1.0)],
    "CONCURRENCY": [(1, 1), (100_000, 100_000)],
    "SCHEDULER_LOCK_TTL": [(0.3, 0.3), (10, 10.0)],
    "QUEUES": [("high low", ["high", "low"]), ("a,b", ["a", "b"]), (("x",), ["x"])],
    "LOGGING_LEVEL": [("debug", "DEBUG"), (" Warning ", "WARNING"), (40, "ERROR")],
    "NAME": [("host-1.worker", "host-1.worker")],
    "PREFIX": [("{geventq}:", "{geventq}:")],
}


def test_every_rule_is_covered_here():
    assert set(BAD) == set(RULES)


@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_check_settings_refuses_each_bad_value_in_one_line_naming_key_and_value(key, value):
    with pytest.raises(ConfigError) as raised:
        check_settings({key: value})
    message = str(raised.value)
    assert message.startswith(key) and repr(value) in message and "\n" not in message


def test_check_settings_normalises_good_values_and_keeps_none_and_unknown_keys():
    for key, pairs in GOOD.items():
        for given, expected in pairs:
            assert check_settings({key: given})[key] == expected, (key, given)
    settings = {"MAX_JOBS": None, "FORK_CONCURRENCY": None, "JOB_MODULES": ["x"], "OTHER": 1}
    assert check_settings(settings) == settings


def test_the_default_settings_pass_their_own_rules():
    from geventq.cli.options import SETTING_DEFAULTS

    assert check_settings(SETTING_DEFAULTS)["HEARTBEAT_INTERVAL"] == 5.0


@pytest.mark.parametrize("make, message", [
    (lambda c: GeventWorker(connection=c, heartbeat_interval=0), "heartbeat_interval must be"),
    (lambda c: SimpleWorker(connection=c, heartbeat_interval=NAN), "heartbeat_interval must be"),
    (lambda c: SimpleWorker(connection=c, default_result_ttl=1.5), "default_result_ttl must be"),
    (lambda c: GeventWorker(connection=c, default_result_ttl=10**17), "default_result_ttl"),
    (lambda c: SimpleWorker(connection=c, shutdown_grace=-1), "shutdown_grace must be"),
    (lambda c: SimpleWorker(connection=c, max_abandoned_requeues=-1), "max_abandoned_requeues"),
    (lambda c: GeventWorker(connection=c, concurrency=0), "concurrency must be"),
    (lambda c: GeventWorker(connection=c, concurrency=True), "concurrency must be"),
    (lambda c: GeventWorker(connection=c, max_blocking_time=INF), "max_blocking_time must be"),
    (lambda c: GeventWorker(connection=c, fork_queues=["default"], fork_concurrency=0),
     "fork_concurrency must be"),
    (lambda c: GeventWorker(connection=c, mode="threads"), "mode must be"),
    (lambda c: GeventWorker(connection=c, name="two words"), "worker name must"),
    (lambda c: GeventWorker(["ok", "not ok"], connection=c), "queue name must"),
    (lambda c: GeventWorker(connection=c, with_scheduler=True, scheduler_lock_ttl=INF),
     "SCHEDULER_LOCK_TTL must be"),
])
def test_worker_constructors_apply_the_same_rules(connection, make, message):
    with pytest.raises(ValueError, match=message):
        make(connection)
    assert connection.keys("*") == []


def test_scheduler_takes_the_rule_of_its_lock_ttl(connection, queue):
    assert Scheduler(connection, queue.keys, "s", lock_ttl=0.3).lock_ttl == 0.3
    with pytest.raises(ValueError, match="SCHEDULER_LOCK_TTL must be seconds from 0.3"):
        Scheduler(connection, queue.keys, "s", lock_ttl=math.nan)


def test_pool_settings_check_the_worker_keys_too():
    with pytest.raises(ConfigError, match="HEARTBEAT_INTERVAL must be .* got 0"):
        PoolSettings.from_settings({"HEARTBEAT_INTERVAL": 0})
    with pytest.raises(ConfigError, match="WORKERS must be .* got 5000"):
        PoolSettings.from_settings({}, workers=5000)
    with pytest.raises(ConfigError, match="WORKER_TIMEOUT must be .* got nan"):
        PoolSettings.from_settings({"WORKER_TIMEOUT": NAN})
    with pytest.raises(ConfigError, match="MAX_MEMORY"):
        PoolSettings.from_settings({"MAX_MEMORY": "lots"})
    settings = PoolSettings.from_settings({"WORKERS": 3, "SHUTDOWN_GRACE": 0, "WORKER_TIMEOUT": 9})
    assert (settings.workers, settings.shutdown_grace, settings.worker_timeout) == (3, 0.0, 9.0)


# -- real processes: `geventq worker -c file.py` and `geventq pool -c file.py` ---------------

@pytest.mark.parametrize("config, args, line", [
    ("HEARTBEAT_INTERVAL = 0\n", [], "HEARTBEAT_INTERVAL must be seconds from 0.1 to 3600, got 0"),
    ("DEFAULT_RESULT_TTL = 1.5\n", [],
     "DEFAULT_RESULT_TTL must be whole seconds from 0 to 2147483647, or -1 (forever), got 1.5"),
    ("MAX_ABANDONED_REQUEUES = -1\n", [],
     "MAX_ABANDONED_REQUEUES must be a whole number from 0 to 2147483647, got -1"),
    ("QUEUES = ['ok', 'not ok']\n", [], "QUEUES ['ok', 'not ok']: queue name must hold printable "
                                        "characters only, without spaces, ':' or ',' (no control "
                                        "characters), got 'not ok'"),
    ("", ["-n", "0"], "CONCURRENCY must be a whole number from 1 to 100000, got 0"),
])
def test_geventq_worker_refuses_a_bad_setting_with_one_line_and_exit_3(
        tmp_path, start_worker, connection, config, args, line):
    path = tmp_path / "bad_settings.py"
    path.write_text(config)
    worker = start_worker("--burst", "-c", str(path), *args)
    out = worker.output()
    assert worker.proc.returncode == EXIT_BOOT_ERROR
    assert out.strip() == f"geventq worker: {line}", out
    assert connection.keys("*") == []  # it never registered


def test_geventq_pool_refuses_a_bad_worker_setting_before_starting_any(tmp_path, redis_url,
                                                                       connection):
    path = tmp_path / "pool_settings.py"
    path.write_text("HEARTBEAT_INTERVAL = 0\nWORKERS = 2\n")
    pool = WorkerProcess(["-c", str(path)], worker_env(redis_url), command="pool")
    try:
        out = pool.output(timeout=30)
    finally:
        pool.kill()
    assert pool.proc.returncode == EXIT_BOOT_ERROR
    assert out.strip() == \
        "geventq pool: HEARTBEAT_INTERVAL must be seconds from 0.1 to 3600, got 0", out
    assert connection.keys("*") == []
