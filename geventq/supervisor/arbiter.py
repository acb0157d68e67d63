"""The launcher's main loop, in the manner of gunicorn's arbiter.

Signal handlers only queue the signal and write a byte to a self-pipe. One loop
sleeps on that pipe (and on the workers' stderr pipes) with ``select``, then
dispatches ``handle_<signal>``, reaps exited children, kills stuck ones
(``murder``), recycles fat ones, and brings the count back to the target
(``manage``). Nothing here imports gevent or redis; every effect on the
outside world (spawning, waiting, killing, the clock, RSS) is injectable so
unit tests run the loop step by step without real workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

from ..defaults import EXIT_BOOT_ERROR, EXIT_FAILURE, EXIT_OK
from ..exceptions import ConfigError
from .children import Child, HeartbeatDir, describe_exit, pump_stderr, wait_for_output
from .health import Health
from .notify import SYSTEMD_ENV, Notifier
from .policy import RestartPolicy
from .recover_process import Recoveries
from .reloading import RollingReload
from .reporting import Reporter
from .settings import PoolSettings
from .signals import SignalQueue
from .system import System

log = logging.getLogger("geventq.pool")

ArgvFactory = Callable[[str], list[str]]


class Arbiter:
    """Run ``settings.workers`` worker processes and keep them healthy.

    ``worker_argv(name)`` and ``recover_argv(name)`` build the command lines;
    ``reload_settings()`` re-reads the settings file on SIGHUP. ``run()``
    returns the exit code: 0 after a requested stop, ``EXIT_BOOT_ERROR`` when a
    worker cannot start, ``EXIT_FAILURE`` when workers keep dying.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
    TICK = 0.5  # longest sleep: heartbeats and reload progress are checked this often

    def __init__(
        self,
        settings: PoolSettings,
        worker_argv: ArgvFactory,
        *,
        pool_name: str | None = None,
        name_base: str | None = None,
        recover_argv: ArgvFactory | None = None,
        reload_settings: Callable[[], PoolSettings] | None = None,
        policy: RestartPolicy | None = None,
        system: System | None = None,
        notifier: Notifier | None = None,
        env: Mapping[str, str] | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.target = settings.workers
        self.pool_name = pool_name or f"{socket.gethostname()}.{os.getpid()}"
        self.name_base = name_base or self.pool_name
        self.worker_argv = worker_argv
        self.reload_settings = reload_settings
        self.policy = policy or RestartPolicy()
        self.system = system = system or System()
        self.clock = system.clock
        self.health = Health(system.rss)
        self.notifier = notifier or Notifier({})
        self.reporter = Reporter(self.notifier, self.pool_name)
        self.env = {k: v for k, v in (os.environ if env is None else env).items()
                    if k not in SYSTEMD_ENV}
        self.out = stderr or sys.stderr

        self.children: dict[int, Child] = {}
        self.recoveries = Recoveries(recover_argv, system.spawn, system.kill, self.env)
        self.generations: dict[int, int] = {}
        self.done_slots: set[int] = set()  # burst mode: slots whose worker finished
        self.signals = SignalQueue()
        self.stopping = False
        self.cold = False
        self.exit_code = EXIT_OK
        self.reason: str | None = None
        self.spawn_after = 0.0
        self.restarts = 0
        self.heartbeats: HeartbeatDir | None = None
        self.reload = RollingReload(self)

    # -- signals -----------------------------------------------------------

    def dispatch_signals(self) -> None:
        """Run ``handle_<name>`` for each queued signal, oldest first."""
        while (signum := self.signals.pop()) is not None:
            name = signal.Signals(signum).name[3:].lower()
            log.info("received SIG%s", name.upper())
            getattr(self, f"handle_{name}")()

    def handle_term(self) -> None:
        """SIGTERM: warm shutdown; a second one makes it cold."""
        self.begin_stop()

    handle_int = handle_term

    def handle_hup(self) -> None:
        """SIGHUP: re-read the settings, then replace the workers one at a time."""
        if self.stopping:
            return
        if self.reload_settings is not None:
            try:
                self.settings = self.reload_settings()
            except ConfigError as exc:
                log.error("reload failed, keeping the current settings and workers: %s", exc)
                return
            self.target = self.settings.workers
        self.notifier.reloading()
        self.reload.start(self.clock())

    def handle_ttin(self) -> None:
        """SIGTTIN: one more worker."""
        if not self.stopping:
            self.target += 1
            log.info("SIGTTIN: %d workers wanted", self.target)

    def handle_ttou(self) -> None:
        """SIGTTOU: one fewer worker, never fewer than one."""
        if not self.stopping and self.target > 1:
            self.target -= 1
            log.info("SIGTTOU: %d workers wanted", self.target)

    # -- the loop ----------------------------------------------------------

    def run(self) -> int:
        """Start the workers, supervise them until stopped; return the exit code."""
        self.signals.install(self.SIGNALS)
        try:
            self.start()
            while not self.finished():
                self.sleep(self.next_timeout(self.clock()))
                self.step()
            self.wait_recoveries()
        except Exception:
            log.exception("launcher failure; stopping the workers")
            self.exit_code, self.reason = EXIT_FAILURE, self.reason or "launcher failure"
            for child in self.children.values():
                if child.terms_sent == 0:
                    self._term(child)
        finally:
            self.close()
        if self.reason:
            log.error("geventq pool: exiting with code %d: %s", self.exit_code, self.reason)
        else:
            log.info("pool %s stopped", self.pool_name)
        return self.exit_code

    def start(self) -> None:
        """Create the heartbeat directory and start the first workers."""
        self.heartbeats = HeartbeatDir()
        log.info("pool %s starting %d workers", self.pool_name, self.target)
        self.manage(self.clock())
        self.report(self.clock())

    def step(self) -> None:
        """One turn of the loop, after a wake-up."""
        now = self.clock()
        self.dispatch_signals()
        self.reap(now)
        self.murder(now)
        self.check_memory(now)
        self.manage(now)
        self.report(now)

    def finished(self) -> bool:
        """True when no worker is left and none will be started."""
        burst_done = self.settings.burst and self.done_slots.issuperset(range(self.target))
        return not self.children and (self.stopping or burst_done)

    def next_timeout(self, now: float) -> float:
        """Sleep until the next thing due, at most ``TICK``."""
        due = [now + self.TICK, self.reporter.next_due()]
        if self.spawn_after > now:
            due.append(self.spawn_after)
        due += [c.stop_deadline for c in self.children.values() if not c.killed]
        due += self.recoveries.deadlines()
        return max(0.01, min(d for d in due if d is not None) - now)

    def sleep(self, timeout: float) -> None:
        """Wait on the self-pipe and the workers' stderr; copy what they wrote."""
        if wait_for_output(self.signals.fd, self.children.values(), timeout, self.out):
            self.signals.drain()

    # -- children ----------------------------------------------------------

    def spawn(self, slot: int, role: str, now: float) -> Child | None:
        """Start the next generation of worker ``slot``."""
        assert self.heartbeats is not None
        generation = self.generations.get(slot, -1) + 1
        self.generations[slot] = generation
        name = f"{self.name_base}.{slot}.{generation}"
        heartbeat = self.heartbeats.create(name)
        env = dict(self.env, GEVENTQ_HEARTBEAT_FILE=heartbeat, GEVENTQ_POOL=self.pool_name)
        try:
            process = self.system.spawn(self.worker_argv(name), env, True)
        except OSError as exc:
            HeartbeatDir.remove(heartbeat)
            self._after_failure(f"cannot start worker {name}: {exc}", 0.0, now)
            return None
        child = Child(slot, generation, name, process, heartbeat, now, role, last_beat=now)
        self.children[child.pid] = child
        log.info("started worker %s (pid %d)", name, child.pid)
        return child

    def reap(self, now: float) -> None:
        """Collect every exited child without blocking."""
        while True:
            try:
                pid, status = self.system.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.child_exited(self.children.pop(pid), status, now)
            else:
                self.recoveries.reaped(pid, status)

    def child_exited(self, child: Child, status: int, now: float) -> None:
        """Decide what one exit means: nothing, a replacement, or the end."""
        if child.process.stderr_fd is not None:
            pump_stderr(child, self.out, final=True)
            child.process.close()
        child.process.reaped(status)
        HeartbeatDir.remove(child.heartbeat)
        code, words = describe_exit(status)
        what = f"worker {child.name} (pid {child.pid}) {words}"
        if child.killed:
            what += f" after the launcher killed it: {child.killed}"
        if code < 0 or code not in (EXIT_OK, EXIT_BOOT_ERROR):
            self.recoveries.start(child.name, now)  # its in-flight jobs would be lost otherwise
        if child.role == "retiring" or self.stopping:
            # a worker still booting has no SIGTERM handler yet: dying of ours is expected
            expected = code == 0 or (code == -signal.SIGTERM and child.terms_sent > 0)
            log.log(logging.INFO if expected else logging.WARNING, "%s", what)
        elif code == EXIT_BOOT_ERROR:
            reason = f"worker {child.name} could not start (exit code {code})"
            reason += f": {child.last_line}" if child.last_line else ""
            if child.role == "incoming":
                self.reload.abort(reason)
            else:
                self.fail(EXIT_BOOT_ERROR, reason)
        elif code == EXIT_OK and self.settings.burst:
            log.info("%s: burst done", what)
            self.done_slots.add(child.slot)
        elif code == EXIT_OK:
            log.info("%s; starting a new one", what)
            self.restarts += 1
            self.policy.record(now - child.started, failed=False)
        else:
            self.restarts += 1
            # the last line explains a crash; after a kill it is just the last log line
            last = f" (last line: {child.last_line})" if child.last_line and code > 0 else ""
            self._after_failure(what + last, now - child.started, now)

    def _after_failure(self, what: str, lifetime: float, now: float) -> None:
        delay = self.policy.record(lifetime, failed=True)
        if self.policy.gave_up:
            self.fail(EXIT_FAILURE, f"workers keep failing ({self.policy.failures} in a row within "
                      f"{self.policy.start_window:g}s of starting); last: {what}")
        elif delay:
            log.warning("%s; next start in %.1fs", what, delay)
            self.spawn_after = max(self.spawn_after, now + delay)
        else:
            log.warning("%s; starting a new one", what)

    def murder(self, now: float) -> None:
        """SIGKILL workers whose heartbeat stopped or that overstay a stop."""
        for child in list(self.children.values()):
            why = None if child.killed else self.health.why_kill(child, self.settings, now)
            if why:
                self.kill(child, why)
        self.recoveries.check(now)

    def check_memory(self, now: float) -> None:
        """Warm-stop (and so replace) a worker whose RSS passed MAX_MEMORY."""
        if self.stopping:
            return
        children = list(self.children.values())
        for child, why in self.health.over_memory(children, self.settings.max_memory, now):
            self.retire(child, now, why)

    def manage(self, now: float) -> None:
        """Bring the number of workers to the target; advance a rolling reload."""
        if self.stopping:
            return
        for child in list(self.children.values()):
            if child.role != "retiring" and child.slot >= self.target:
                self.retire(child, now, "fewer workers wanted")
        for slot in range(self.target):
            if slot in self.done_slots or self.find(slot, "active"):
                continue
            incoming = self.find(slot, "incoming")
            if incoming is not None:  # the old one died during a reload: promote the new one
                incoming.role = "active"
            elif now >= self.spawn_after:
                self.spawn(slot, "active", now)
        self.reload.advance(now)

    def find(self, slot: int, role: str) -> Child | None:
        """The child of ``slot`` in ``role``, if any."""
        return next((c for c in self.children.values() if c.slot == slot and c.role == role), None)

    def retire(self, child: Child, now: float, why: str) -> None:
        """Warm-stop one worker; its slot gets a new one at once."""
        log.info("stopping worker %s (pid %d): %s", child.name, child.pid, why)
        child.role = "retiring"
        child.stop_deadline = now + self.settings.stop_timeout
        if child.terms_sent == 0:
            self._term(child)

    def kill(self, child: Child, why: str) -> None:
        """SIGKILL one worker; its jobs are recovered when it is reaped."""
        log.warning("killing worker %s (pid %d): %s", child.name, child.pid, why)
        child.killed = why
        with contextlib.suppress(ProcessLookupError):
            self.system.kill(child.pid, signal.SIGKILL)

    def _term(self, child: Child) -> None:  # one SIGTERM = warm; a second one = cold
        child.terms_sent += 1
        with contextlib.suppress(ProcessLookupError):
            self.system.kill(child.pid, signal.SIGTERM)

    def wait_recoveries(self) -> None:
        """Before exiting, let running recoveries finish (each has a deadline)."""
        while self.recoveries:
            now = self.clock()
            self.reap(now)
            self.murder(now)
            if self.recoveries:
                self.sleep(self.next_timeout(now))

    # -- stopping and reporting --------------------------------------------

    def fail(self, code: int, reason: str) -> None:
        """Stop the pool because of ``reason``; the first reason wins."""
        if self.reason is None:
            self.exit_code, self.reason = code, reason
            log.error("stopping the pool: %s", reason)
        if not self.stopping:  # a failure is no second signal: it must not turn cold
            self.begin_stop()

    def begin_stop(self) -> None:
        """Warm shutdown of every worker; called again, make it cold."""
        now = self.clock()
        if self.stopping:
            if not self.cold:
                self.cold = True
                log.warning("cold shutdown: a second SIGTERM to each worker")
                for child in self.children.values():
                    if child.terms_sent < 2 and not child.killed:
                        self._term(child)
            return
        self.stopping = True
        self.notifier.stopping()
        self.reload.cancel()
        log.info("warm shutdown of %d workers", len(self.children))
        deadline = now + self.settings.stop_timeout
        for child in self.children.values():
            child.stop_deadline = min(child.stop_deadline or deadline, deadline)
            if child.terms_sent == 0:
                self._term(child)

    def report(self, now: float) -> None:
        """Keep the log, the title, STATUS, READY and the watchdog current."""
        up = sum(1 for c in self.children.values() if c.role == "active" and c.ready)
        status = f"{up}/{self.target} workers up"
        if self.restarts:
            status += f", {self.restarts} replaced"
        status += self.reload.status()
        if self.stopping:
            status = f"stopping, {len(self.children)} workers left"
        self.reporter.update(now, status, up >= self.target, self.stopping, self.reason is None)

    def close(self) -> None:
        """Release the pipe, the stderr pipes and the heartbeat directory."""
        for child in self.children.values():
            child.process.close()
        if self.heartbeats is not None:
            self.heartbeats.cleanup()
        self.signals.close()
