"""The launcher's logic, step by step, with a fake clock and fake processes.

No real worker runs here: ``FakeSystem`` hands out pids, records signals and
returns exit statuses from ``waitpid``; heartbeats are real files whose mtime
the tests set. Each test drives ``Arbiter.step()`` by hand.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from geventq.defaults import EXIT_BOOT_ERROR, EXIT_FAILURE
from geventq.exceptions import ConfigError
from geventq.supervisor import Arbiter, Notifier, PoolSettings, RestartPolicy
from geventq.supervisor.children import Child, Spawned, describe_exit, pump_stderr
from geventq.supervisor.memory import format_size, parse_size
from geventq.supervisor.notify import watchdog_interval
from geventq.supervisor.signals import SignalQueue
from geventq.supervisor.system import System
from geventq.utils import redact_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def exited(code: int) -> int:
    """A wait status for a normal exit."""
    return code << 8


class FakeSystem:
    """Pids, signals and exits without processes; the clock moves when told."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pid = 100
        self.spawned: list[tuple[list[str], dict, bool, int]] = []
        self.signals: list[tuple[int, int]] = []
        self.exits: list[tuple[int, int]] = []
        self.live: set[int] = set()
        self.rss: dict[int, int] = {}
        self.stderr_lines: dict[str, bytes] = {}  # worker name -> what it "printed"

    def spawn(self, argv, env, capture):
        self.pid += 1
        self.spawned.append((argv, dict(env), capture, self.pid))
        self.live.add(self.pid)
        fd = None
        name = argv[-1]
        if capture and name in self.stderr_lines:
            fd, w = os.pipe()
            os.write(w, self.stderr_lines[name])
            os.close(w)
        return Spawned(self.pid, fd)

    def waitpid(self, pid, flags):
        if self.exits:
            return self.exits.pop(0)
        if not self.live:
            raise ChildProcessError
        return 0, 0

    def kill(self, pid, sig):
        self.signals.append((pid, sig))
        if sig == signal.SIGKILL and pid in self.live:
            self.exit(pid, signum=signal.SIGKILL)

    def exit(self, pid: int, code: int = 0, signum: int | None = None) -> None:
        self.live.discard(pid)
        self.exits.append((pid, signum if signum else exited(code)))

    def system(self) -> System:
        return System(self.spawn, self.waitpid, self.kill, lambda: self.now,
                      lambda pid: self.rss.get(pid))

    def sent(self, sig: int) -> list[int]:
        return [pid for pid, s in self.signals if s == sig]

    def worker_spawns(self) -> list[str]:
        return [argv[-1] for argv, _, capture, _ in self.spawned if capture]

    def recover_spawns(self) -> list[list[str]]:
        return [argv for argv, _, capture, _ in self.spawned if not capture]


class RecordingNotifier(Notifier):
    def __init__(self, watchdog: float | None = None) -> None:
        super().__init__({})
        self.address = "@test"
        self.watchdog_interval = watchdog
        self.messages: list[str] = []

    def send(self, *fields: str, wait: float = 0.0) -> bool:
        self.messages.append("\n".join(fields))
        return True

    def kinds(self) -> list[str]:
        return [m.split("\n")[0].split("=")[0] for m in self.messages]


@pytest.fixture
def fake():
    return FakeSystem()


def make(fake: FakeSystem, workers: int = 3, notifier=None, **kwargs) -> Arbiter:
    settings = kwargs.pop("settings", None) or PoolSettings(
        workers=workers, worker_timeout=10, boot_timeout=20, shutdown_grace=30,
        max_memory=kwargs.pop("max_memory", None), burst=kwargs.pop("burst", False))
    arb = Arbiter(
        settings, lambda name: ["worker", "--name", name], pool_name="host.1",
        recover_argv=lambda name: ["recover", "--worker", name],
        system=fake.system(), notifier=notifier or RecordingNotifier(),
        env={"PATH": "/bin", "NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1"},
        stderr=io.StringIO(), **kwargs)
    arb.start()
    return arb


_beat_clock = [1_700_000_000.0]


def beat(arb: Arbiter, *children: Child) -> None:
    """Touch the heartbeat files the way a ready worker does (a new mtime each time)."""
    for child in children or list(arb.children.values()):
        _beat_clock[0] += 1
        with open(child.heartbeat, "w") as fh:
            fh.write("ready\n")
        os.utime(child.heartbeat, (_beat_clock[0], _beat_clock[0]))


def active(arb: Arbiter) -> list[Child]:
    return sorted((c for c in arb.children.values() if c.role == "active"), key=lambda c: c.slot)


def by_name(arb: Arbiter, name: str) -> Child:
    return next(c for c in arb.children.values() if c.name == name)


def teardown(arb: Arbiter) -> None:
    arb.close()


# -- starting and replacing -------------------------------------------------


def test_starts_n_workers_with_names_env_and_heartbeat_files(fake):
    arb = make(fake, 3)
    assert fake.worker_spawns() == ["host.1.0.0", "host.1.1.0", "host.1.2.0"]
    argv, env, _, _ = fake.spawned[0]
    assert argv == ["worker", "--name", "host.1.0.0"]
    assert env["GEVENTQ_POOL"] == "host.1"
    assert os.path.dirname(env["GEVENTQ_HEARTBEAT_FILE"]) == arb.heartbeats.path
    assert os.path.isfile(env["GEVENTQ_HEARTBEAT_FILE"])
    # systemd's variables are for the launcher only
    assert "NOTIFY_SOCKET" not in env and "WATCHDOG_USEC" not in env
    assert env["PATH"] == "/bin"
    hb_dir = arb.heartbeats.path
    teardown(arb)
    assert not os.path.exists(hb_dir)


def test_name_base_replaces_the_pool_name_in_worker_names(fake):
    arb = make(fake, 2, name_base="mailer")
    assert fake.worker_spawns() == ["mailer.0.0", "mailer.1.0"]
    assert fake.spawned[0][1]["GEVENTQ_POOL"] == "host.1"
    teardown(arb)


def test_ready_once_every_worker_has_beaten(fake):
    notifier = RecordingNotifier()
    arb = make(fake, 2, notifier=notifier)
    arb.step()
    assert "READY" not in notifier.kinds()
    beat(arb, active(arb)[0])
    arb.step()
    assert "READY" not in notifier.kinds()
    beat(arb, active(arb)[1])
    arb.step()
    assert notifier.kinds().count("READY") == 1
    assert "STATUS=2/2 workers up" in notifier.messages[-1]
    teardown(arb)


def test_a_booting_worker_that_touches_is_alive_but_not_ready(fake):
    # e.g. waiting for Redis: its file is touched from process start, but it is
    # only up once it has registered and written to the file
    notifier = RecordingNotifier()
    arb = make(fake, 1, notifier=notifier)
    arb.step()
    (child,) = active(arb)
    for _ in range(5):
        fake.now += 8  # past boot_timeout=20 in all
        _beat_clock[0] += 1
        os.utime(child.heartbeat, (_beat_clock[0], _beat_clock[0]))
        arb.step()
    assert fake.signals == [] and "READY" not in notifier.kinds()
    beat(arb, child)
    arb.step()
    assert notifier.kinds().count("READY") == 1
    teardown(arb)


def test_clean_exit_is_replaced_at_once_without_recovery(fake):
    arb = make(fake, 2)
    first = active(arb)[0]
    fake.exit(first.pid, 0)  # e.g. after --max-jobs
    arb.step()
    assert fake.worker_spawns()[-1] == "host.1.0.1"
    assert fake.recover_spawns() == []
    assert len(active(arb)) == 2
    teardown(arb)


def test_sigkilled_worker_is_replaced_and_its_jobs_recovered(fake):
    arb = make(fake, 2)
    victim = active(arb)[1]
    fake.exit(victim.pid, signum=signal.SIGKILL)
    arb.step()
    assert fake.worker_spawns()[-1] == "host.1.1.1"
    assert fake.recover_spawns() == [["recover", "--worker", "host.1.1.0"]]
    # the recovery is reaped like a child and then forgotten
    recovery_pid = next(pid for _, _, capture, pid in fake.spawned if not capture)
    fake.exit(recovery_pid, 0)
    arb.step()
    assert not arb.recoveries
    teardown(arb)


def test_boot_error_stops_the_pool_with_the_workers_last_line(fake):
    fake.stderr_lines["host.1.1.0"] = (
        b"Traceback (most recent call last):\n"
        b"ConfigError: no module tests.nope (redis://bob:hunter2@db:6379/0)\n")
    arb = make(fake, 2)
    fake.exit(active(arb)[1].pid, EXIT_BOOT_ERROR)
    arb.step()
    assert arb.stopping and arb.exit_code == EXIT_BOOT_ERROR
    assert "could not start" in arb.reason and "ConfigError: no module tests.nope" in arb.reason
    assert "hunter2" not in arb.reason and "redis://bob:***@db" in arb.reason  # the user stays
    assert "hunter2" not in arb.out.getvalue()
    # no restart: the other worker is warm-stopped instead
    assert fake.worker_spawns() == ["host.1.0.0", "host.1.1.0"]
    assert fake.sent(signal.SIGTERM) == [active(arb)[0].pid]
    assert fake.recover_spawns() == []
    fake.exit(active(arb)[0].pid, 0)
    arb.step()
    assert arb.finished()
    teardown(arb)


def test_quick_failures_back_off_then_the_pool_gives_up(fake):
    policy = RestartPolicy(start_window=10, max_failures=4, base_delay=0.5, max_delay=30)
    arb = make(fake, 1, policy=policy)
    fake.exit(active(arb)[0].pid, 1)
    arb.step()
    assert len(active(arb)) == 1, "the first crash is replaced at once"
    delays = []
    for _ in range(2):
        fake.exit(active(arb)[0].pid, 1)
        fake.now += 1
        arb.step()
        assert not active(arb), "no restart before the back-off delay"
        delays.append(arb.spawn_after - fake.now)
        fake.now = arb.spawn_after
        arb.step()
        assert len(active(arb)) == 1
    assert delays == [0.5, 1.0]
    fake.exit(active(arb)[0].pid, 1)
    arb.step()
    assert arb.exit_code == EXIT_FAILURE and arb.stopping
    assert "4 in a row" in arb.reason and "exited with code 1" in arb.reason
    assert arb.finished()
    teardown(arb)


def test_a_worker_that_ran_past_the_start_window_resets_the_back_off(fake):
    arb = make(fake, 1, policy=RestartPolicy(start_window=10, max_failures=3))
    for _ in range(2):
        fake.exit(active(arb)[0].pid, 1)
        arb.step()
        fake.now = arb.spawn_after
        arb.step()
    assert arb.policy.failures == 2
    fake.now += 60  # this one ran for a minute before crashing
    fake.exit(active(arb)[0].pid, 1)
    arb.step()
    assert not arb.stopping and arb.policy.failures == 0
    assert len(active(arb)) == 1
    teardown(arb)


# -- health ------------------------------------------------------------------


def test_lapsed_heartbeat_is_killed_replaced_and_recovered(fake, caplog):
    arb = make(fake, 2)
    beat(arb)
    arb.step()
    stuck, healthy = active(arb)
    fake.now += 9
    beat(arb, healthy)
    arb.step()
    assert fake.sent(signal.SIGKILL) == []
    fake.now += 2  # 11 s since stuck's last beat > WORKER_TIMEOUT=10
    beat(arb, healthy)
    arb.step()
    assert fake.sent(signal.SIGKILL) == [stuck.pid]
    arb.step()  # reaped: replaced and recovered
    assert fake.recover_spawns() == [["recover", "--worker", stuck.name]]
    assert fake.worker_spawns()[-1] == "host.1.0.1"
    assert "no heartbeat for 11.0s (WORKER_TIMEOUT=10)" in caplog.text
    teardown(arb)


def test_a_worker_gets_the_boot_allowance_before_its_first_beat(fake):
    arb = make(fake, 1)
    child = active(arb)[0]
    fake.now += 15  # past WORKER_TIMEOUT (10) but within the boot timeout (20)
    arb.step()
    assert fake.sent(signal.SIGKILL) == []
    fake.now += 6
    arb.step()
    assert fake.sent(signal.SIGKILL) == [child.pid]
    teardown(arb)


def test_worker_over_max_memory_is_warm_stopped_and_replaced(fake):
    arb = make(fake, 2, max_memory=parse_size("100M"))
    fat = active(arb)[1]
    fake.rss[fat.pid] = 150 * 1024 * 1024
    fake.rss[active(arb)[0].pid] = 50 * 1024 * 1024
    arb.step()
    assert fake.sent(signal.SIGTERM) == [fat.pid]
    assert fat.role == "retiring"
    assert fake.worker_spawns()[-1] == "host.1.1.1"
    fake.now += 5
    arb.step()
    assert fake.sent(signal.SIGTERM) == [fat.pid], "one SIGTERM only: a second would be cold"
    fake.exit(fat.pid, 0)
    arb.step()
    assert len(fake.worker_spawns()) == 3, "a retired worker's exit is not replaced again"
    teardown(arb)


def test_retiring_worker_that_overstays_is_killed(fake):
    arb = make(fake, 1, max_memory=1)
    fat = active(arb)[0]
    fake.rss[fat.pid] = 2
    arb.step()
    beat(arb)
    fake.now += arb.settings.stop_timeout - 1
    beat(arb)
    arb.step()
    assert fat.pid not in fake.sent(signal.SIGKILL)
    fake.now += 1.5
    beat(arb)
    arb.step()
    assert fat.pid in fake.sent(signal.SIGKILL)
    teardown(arb)


# -- signals -----------------------------------------------------------------


def test_ttin_and_ttou_change_the_count_never_below_one(fake):
    arb = make(fake, 2)
    arb.signals.push(signal.SIGTTIN)
    arb.step()
    assert fake.worker_spawns()[-1] == "host.1.2.0" and len(active(arb)) == 3
    last = active(arb)[2]
    arb.signals.push(signal.SIGTTOU)
    arb.step()
    assert fake.sent(signal.SIGTERM) == [last.pid] and len(active(arb)) == 2
    for _ in range(3):
        arb.signals.push(signal.SIGTTOU)
        arb.step()
    assert arb.target == 1 and len(active(arb)) == 1
    teardown(arb)


def test_sigterm_is_warm_then_cold_then_exit_zero(fake):
    notifier = RecordingNotifier()
    arb = make(fake, 2, notifier=notifier)
    pids = [c.pid for c in active(arb)]
    arb.signals.push(signal.SIGTERM)
    arb.step()
    assert sorted(fake.sent(signal.SIGTERM)) == sorted(pids)
    assert "STOPPING" in notifier.kinds()
    assert fake.worker_spawns() == ["host.1.0.0", "host.1.1.0"]
    arb.signals.push(signal.SIGINT)  # a second signal: cold
    arb.step()
    assert sorted(fake.sent(signal.SIGTERM)) == sorted(pids * 2)
    for pid in pids:
        fake.exit(pid, 0)
    arb.step()
    assert arb.finished() and arb.exit_code == 0 and arb.reason is None
    teardown(arb)


def test_warm_shutdown_kills_after_the_grace_and_recovers(fake):
    arb = make(fake, 1)
    child = active(arb)[0]
    arb.signals.push(signal.SIGTERM)
    arb.step()
    fake.now += arb.settings.stop_timeout
    beat(arb)
    arb.step()
    assert fake.sent(signal.SIGKILL) == [child.pid]
    arb.step()
    assert fake.recover_spawns() == [["recover", "--worker", child.name]]
    assert arb.finished()
    assert arb.recoveries, "the pool waits for the recovery before exiting"
    teardown(arb)


def test_hup_replaces_workers_one_at_a_time_never_below_n(fake):
    notifier = RecordingNotifier()
    new_settings = PoolSettings(workers=3, worker_timeout=5, boot_timeout=20, shutdown_grace=30)
    arb = make(fake, 3, notifier=notifier, reload_settings=lambda: new_settings)
    beat(arb)
    arb.step()
    old = {c.slot: c for c in active(arb)}
    arb.signals.push(signal.SIGHUP)
    arb.step()
    assert arb.settings is new_settings
    assert "RELOADING" in notifier.kinds()
    assert "MONOTONIC_USEC=" in notifier.messages[notifier.kinds().index("RELOADING")]
    for slot in range(3):
        incoming = [c for c in arb.children.values() if c.role == "incoming"]
        assert [c.slot for c in incoming] == [slot], "one new worker at a time"
        assert incoming[0].name == f"host.1.{slot}.1"
        for _ in range(2):  # not yet beating: the old one keeps running
            fake.now += 0.5
            arb.step()
            assert old[slot].terms_sent == 0
            assert len(active(arb)) == 3
        beat(arb, incoming[0])
        arb.step()
        assert old[slot].role == "retiring" and old[slot].terms_sent == 1
        serving = [c for c in arb.children.values() if c.role == "active"]
        assert len(serving) == 3
        fake.exit(old[slot].pid, 0)
        arb.step()
    assert not arb.reload.active
    assert notifier.kinds()[notifier.kinds().index("RELOADING"):].count("READY") == 1
    assert fake.worker_spawns() == [f"host.1.{s}.0" for s in range(3)] + \
        [f"host.1.{s}.1" for s in range(3)]
    teardown(arb)


def test_hup_with_a_broken_config_keeps_everything(fake):
    def broken():
        raise ConfigError("config file x.py failed to load: SyntaxError")

    arb = make(fake, 2, reload_settings=broken)
    arb.signals.push(signal.SIGHUP)
    arb.step()
    assert not arb.reload.active and len(fake.worker_spawns()) == 2 and not arb.stopping
    teardown(arb)


def test_hup_whose_new_worker_cannot_start_is_aborted_not_fatal(fake):
    notifier = RecordingNotifier()
    arb = make(fake, 2, notifier=notifier)
    beat(arb)
    arb.step()
    arb.signals.push(signal.SIGHUP)
    arb.step()
    incoming = next(c for c in arb.children.values() if c.role == "incoming")
    fake.exit(incoming.pid, EXIT_BOOT_ERROR)
    arb.step()
    assert not arb.stopping and not arb.reload.active
    assert len(active(arb)) == 2 and fake.sent(signal.SIGTERM) == []
    assert notifier.kinds()[-1] in ("READY", "STATUS")
    teardown(arb)


def test_burst_mode_does_not_replace_finished_workers(fake):
    arb = make(fake, 2, burst=True)
    for child in active(arb):
        fake.exit(child.pid, 0)
    arb.step()
    assert len(fake.worker_spawns()) == 2
    assert arb.finished() and arb.exit_code == 0
    teardown(arb)


def test_watchdog_pings_at_its_interval_and_sleep_is_bounded(fake):
    notifier = RecordingNotifier(watchdog=2.0)
    arb = make(fake, 1, notifier=notifier)
    assert notifier.kinds().count("WATCHDOG") == 1
    assert 0.01 <= arb.next_timeout(fake.now) <= Arbiter.TICK
    fake.now += 1
    arb.step()
    assert notifier.kinds().count("WATCHDOG") == 1
    fake.now += 1
    arb.step()
    assert notifier.kinds().count("WATCHDOG") == 2
    teardown(arb)


# -- small parts -------------------------------------------------------------


def test_signal_queue_records_real_signals_and_wakes_the_pipe():
    queue = SignalQueue()
    queue.install([signal.SIGTTIN])
    try:
        os.kill(os.getpid(), signal.SIGTTIN)
        os.kill(os.getpid(), signal.SIGCHLD)  # wakes, is not queued
        assert queue.pop() == signal.SIGTTIN and queue.pop() is None
        assert os.read(queue.fd, 10).startswith(b".")
    finally:
        queue.close()
    assert signal.getsignal(signal.SIGTTIN) is signal.SIG_DFL


def test_pump_stderr_copies_whole_lines_and_keeps_the_last():
    r, w = os.pipe()
    os.set_blocking(r, False)
    child = Child(0, 0, "n", Spawned(1, r), "/nonexistent", 0.0)
    out = io.StringIO()
    os.write(w, b"one\ntwo redis://u:p@h/0\npart")
    assert pump_stderr(child, out)
    assert out.getvalue() == "one\ntwo redis://u:***@h/0\n" \
        and child.last_line == "two redis://u:***@h/0"
    os.write(w, b"ial\n")
    os.close(w)
    pump_stderr(child, out, final=True)
    assert out.getvalue().endswith("partial\n") and child.last_line == "partial"
    child.process.close()


def test_describe_exit():
    assert describe_exit(exited(3)) == (3, "exited with code 3")
    assert describe_exit(signal.SIGKILL) == (-9, "was killed by SIGKILL")


@pytest.mark.parametrize("value, expected", [
    (None, None), (0, None), ("", None), (1000, 1000), ("512M", 512 * 1024**2),
    ("1G", 1024**3), ("1.5g", int(1.5 * 1024**3)), ("800MiB", 800 * 1024**2), ("64kb", 65536),
])
def test_parse_size(value, expected):
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["lots", "5X", -1, True, 1.5])
def test_parse_size_rejects(value):
    with pytest.raises(ValueError, match="MAX_MEMORY"):
        parse_size(value)


def test_format_size():
    assert format_size(512 * 1024**2) == "512.0M" and format_size(10) == "10"


def test_pool_settings_from_settings_and_errors():
    s = PoolSettings.from_settings({"WORKERS": 4, "WORKER_TIMEOUT": 2, "MAX_MEMORY": "1G",
                                    "SHUTDOWN_GRACE": 5})
    assert (s.workers, s.worker_timeout, s.max_memory, s.stop_timeout) == (4, 2.0, 1024**3, 10.0)
    assert PoolSettings.from_settings({"WORKERS": 4}, workers=2).workers == 2
    assert PoolSettings.from_settings({}).workers == (os.cpu_count() or 1)
    for bad in ({"WORKERS": 0}, {"WORKERS": "3"}, {"WORKER_TIMEOUT": -1}, {"MAX_MEMORY": "x"}):
        with pytest.raises(ConfigError):
            PoolSettings.from_settings(bad)


def test_redact_strips_credentials_from_every_url():
    text = "redis://user:pw@h:1/0 and rediss://:pw@h2 and unix:///tmp/s and http://h/p?a@b"
    assert redact_url(text) == \
        "redis://user:***@h:1/0 and rediss://:***@h2 and unix:///tmp/s and http://h/p?a@b"


def test_restart_policy_delays_are_capped():
    policy = RestartPolicy(start_window=5, max_failures=10, base_delay=1, max_delay=4)
    assert [policy.record(0.1, True) for _ in range(6)] == [0, 1, 2, 4, 4, 4]
    assert policy.record(0.1, False) == 0 and policy.failures == 0


def test_watchdog_interval_reads_usec_and_checks_the_pid():
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    assert watchdog_interval({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "4000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 2.0
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "x"}) is None


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_datagrams_to_path_and_abstract_sockets(abstract):
    with tempfile.TemporaryDirectory() as tmp, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        if abstract:
            name = f"geventq-test-{os.getpid()}"
            sock.bind("\0" + name)
            address = "@" + name
        else:
            address = os.path.join(tmp, "notify")
            sock.bind(address)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": address})
        assert notifier.enabled
        assert notifier.ready("2/2 workers up")
        assert notifier.stopping()
        assert sock.recv(4096) == b"READY=1\nSTATUS=2/2 workers up"
        assert sock.recv(4096) == b"STOPPING=1"
    assert not Notifier({}).send("READY=1")
    assert not Notifier({"NOTIFY_SOCKET": "/nonexistent/sock"}).send("READY=1")


@pytest.mark.parametrize("module", ["geventq.supervisor", "geventq.cli"])
def test_launcher_imports_neither_gevent_nor_redis(module):
    # The launcher must stay light, and a worker must patch before gevent or
    # redis load; a fresh interpreter shows what importing really pulls in.
    code = (f"import sys, {module}; "
            "print(sorted(m for m in ('gevent', 'redis', 'ssl', 'concurrent.futures') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_pool_forwards_exactly_the_worker_options_typed():
    from geventq.cli.pool import RECOVER_OPTIONS, forwarded_options, pool

    ctx = pool.make_context("pool", [
        "-c", "conf/settings.py", "-N", "4", "--concurrency", "50", "-b", "--name", "mail",
        "--fork-queue", "cpu", "--fork-queue", "img", "-u", "redis://u:p@h/0",
        "--pool-name", "p1", "high", "low"])
    # the URL (with its password) goes to the children in $GEVENTQ_URL, never in argv
    assert forwarded_options(ctx) == [
        "--config", "conf/settings.py", "--burst",
        "--concurrency", "50", "--fork-queue", "cpu", "--fork-queue", "img"]
    assert forwarded_options(ctx, RECOVER_OPTIONS) == ["--config", "conf/settings.py"]
    # nothing typed, nothing forwarded: each worker reads its settings file itself
    assert forwarded_options(pool.make_context("pool", [])) == []


def test_pump_stderr_passes_on_an_endless_line_instead_of_hoarding_it():
    from geventq.supervisor.children import MAX_LINE

    r, w = os.pipe()
    os.set_blocking(r, False)
    child = Child(0, 0, "n", Spawned(1, r), "/nonexistent", 0.0)
    out = io.StringIO()
    for _ in range(MAX_LINE // 4096 + 2):  # no newline, ever
        os.write(w, b"x" * 4096)
        pump_stderr(child, out)
    assert len(child.partial) <= MAX_LINE
    assert out.getvalue().startswith("x" * 4096)
    os.close(w)
    child.process.close()


def test_notifier_never_blocks_on_a_full_socket(tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))  # nobody reads: the queue fills up
        notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        started = time.monotonic()
        sent = [notifier.watchdog() for _ in range(200)]
        assert time.monotonic() - started < 2
        assert sent[0] and not all(sent), "the first ones fit, the rest are dropped"
