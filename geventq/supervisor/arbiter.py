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
import errno
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from ..defaults import EXIT_BOOT_ERROR, EXIT_FAILURE, EXIT_OK
from ..exceptions import ConfigError
from . import memory
from .children import (
    Child,
    HeartbeatDir,
    Spawned,
    SpawnFunc,
    describe_exit,
    pump_stderr,
    spawn_process,
)
from .display import set_title
from .notify import SYSTEMD_ENV, Notifier
from .policy import RestartPolicy
from .reloading import RollingReload
from .settings import PoolSettings

log = logging.getLogger("geventq.pool")

ArgvFactory = Callable[[str], list[str]]


@dataclass
class Recovery:
    """A running ``geventq recover --worker NAME`` for a worker that died hard."""

    name: str
    process: Spawned
    deadline: float


class Arbiter:
    """Run ``settings.workers`` worker processes and keep them healthy.

    ``worker_argv(name)`` and ``recover_argv(name)`` build the command lines;
    ``reload_settings()`` re-reads the settings file on SIGHUP. ``run()``
    returns the exit code: 0 after a requested stop, ``EXIT_BOOT_ERROR`` when a
    worker cannot start, ``EXIT_FAILURE`` when workers keep dying.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
    TICK = 0.5  # longest sleep: heartbeats and reload progress are checked this often
    MEMORY_INTERVAL = 1.0
    RECOVER_TIMEOUT = 30.0

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
        spawn: SpawnFunc = spawn_process,
        waitpid: Callable[[int, int], tuple[int, int]] = os.waitpid,
        kill: Callable[[int, int], None] = os.kill,
        clock: Callable[[], float] = time.monotonic,
        rss: Callable[[int], int | None] = memory.rss,
        notifier: Notifier | None = None,
        env: Mapping[str, str] | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.settings = settings
        self.target = settings.workers
        self.pool_name = pool_name or f"{socket.gethostname()}.{os.getpid()}"
        self.name_base = name_base or self.pool_name
        self.worker_argv = worker_argv
        self.recover_argv = recover_argv
        self.reload_settings = reload_settings
        self.policy = policy or RestartPolicy()
        self._spawn, self._waitpid, self._kill = spawn, waitpid, kill
        self.clock, self._rss = clock, rss
        self.notifier = notifier or Notifier({})
        base_env = os.environ if env is None else env
        self.env = {k: v for k, v in base_env.items() if k not in SYSTEMD_ENV}
        self.out = stderr or sys.stderr

        self.children: dict[int, Child] = {}
        self.recoveries: dict[int, Recovery] = {}
        self.generations: dict[int, int] = {}
        self.done_slots: set[int] = set()  # burst mode: slots whose worker finished
        self.sig_queue: list[int] = []
        self.stopping = False
        self.cold = False
        self.exit_code = EXIT_OK
        self.reason: str | None = None
        self.spawn_after = 0.0
        self.ready_sent = False
        self.restarts = 0
        self.last_status = ""
        self.next_memory_check = 0.0
        self.next_watchdog = 0.0
        self.heartbeats: HeartbeatDir | None = None
        self.pipe: tuple[int, int] | None = None
        self._old_handlers: dict[int, object] = {}
        self.reload = RollingReload(self)

    # -- signals -----------------------------------------------------------

    def init_signals(self) -> None:
        """Install the handlers; each only queues the signal and wakes the loop."""
        self._ensure_pipe()
        for sig in (*self.SIGNALS, signal.SIGCHLD):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        """Put back the handlers that were there before ``init_signals``."""
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame: object) -> None:
        # No work here: the handler may interrupt the loop anywhere.
        if signum != signal.SIGCHLD and len(self.sig_queue) < 5:
            self.sig_queue.append(signum)
        self.wakeup()

    def wakeup(self) -> None:
        """Write a byte to the self-pipe so ``select`` returns."""
        if self.pipe is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self.pipe[1], b".")

    def dispatch_signals(self) -> None:
        """Run ``handle_<name>`` for each queued signal, oldest first."""
        while self.sig_queue:
            signum = self.sig_queue.pop(0)
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
        self.init_signals()
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
            self.restore_signals()
            self.close()
        if self.reason:
            log.error("geventq pool: exiting with code %d: %s", self.exit_code, self.reason)
        else:
            log.info("pool %s stopped", self.pool_name)
        return self.exit_code

    def start(self) -> None:
        """Create the heartbeat directory and start the first workers."""
        self._ensure_pipe()
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
        if self.children:
            return False
        if self.stopping:
            return True
        return self.settings.burst and self.done_slots.issuperset(range(self.target))

    def next_timeout(self, now: float) -> float:
        """Sleep until the next thing due, at most ``TICK``."""
        due = [now + self.TICK, self.next_watchdog if self.notifier.watchdog_interval else None]
        if self.spawn_after > now:
            due.append(self.spawn_after)
        due += [c.stop_deadline for c in self.children.values()]
        due += [r.deadline for r in self.recoveries.values()]
        return max(0.01, min(d for d in due if d is not None) - now)

    def sleep(self, timeout: float) -> None:
        """Wait on the self-pipe and the workers' stderr; copy what they wrote."""
        by_fd = {c.process.stderr_fd: c for c in self.children.values() if c.process.stderr_fd}
        assert self.pipe is not None
        try:
            ready, _, _ = select.select([self.pipe[0], *by_fd], [], [], timeout)
        except OSError as exc:  # EINTR is retried by Python itself (PEP 475)
            if exc.errno != errno.EBADF:
                raise
            return
        for fd in ready:
            if fd == self.pipe[0]:
                with contextlib.suppress(BlockingIOError):
                    while os.read(fd, 4096):
                        pass
            elif not pump_stderr(by_fd[fd], self.out):
                by_fd[fd].process.close()

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
            process = self._spawn(self.worker_argv(name), env, True)
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
                pid, status = self._waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.child_exited(self.children.pop(pid), status, now)
            elif pid in self.recoveries:
                recovery = self.recoveries.pop(pid)
                recovery.process.reaped(status)
                _, words = describe_exit(status)
                level = logging.INFO if status == 0 else logging.WARNING
                log.log(level, "recovery of %s's jobs %s", recovery.name, words)

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
            self.recover(child.name, now)  # its in-flight jobs would be lost otherwise
        if child.role == "retiring" or self.stopping:
            log.log(logging.INFO if code == 0 else logging.WARNING, "%s", what)
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
            last = f" (last line: {child.last_line})" if child.last_line else ""
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
            if child.killed:
                continue
            child.observe_beat(HeartbeatDir.mtime(child.heartbeat), now)
            if child.beating and now - child.last_beat > self.settings.worker_timeout:
                self.kill(child, f"no heartbeat for {now - child.last_beat:.1f}s "
                          f"(WORKER_TIMEOUT={self.settings.worker_timeout:g})")
            elif not child.beating and now - child.started > self.settings.boot_timeout:
                self.kill(child, f"no heartbeat within {self.settings.boot_timeout:g}s of starting")
            elif child.stop_deadline is not None and now >= child.stop_deadline:
                self.kill(child, f"still running {self.settings.stop_timeout:g}s after SIGTERM")
        for pid, recovery in self.recoveries.items():
            if now >= recovery.deadline:
                log.error("recovery of %s's jobs timed out; killing it", recovery.name)
                recovery.deadline = float("inf")
                with contextlib.suppress(ProcessLookupError):
                    self._kill(pid, signal.SIGKILL)

    def check_memory(self, now: float) -> None:
        """Warm-stop (and so replace) a worker whose RSS passed MAX_MEMORY."""
        limit = self.settings.max_memory
        if not limit or self.stopping or now < self.next_memory_check:
            return
        self.next_memory_check = now + self.MEMORY_INTERVAL
        for child in list(self.children.values()):
            if child.role == "retiring" or child.killed:
                continue
            size = self._rss(child.pid)
            if size is not None and size > limit:
                self.retire(child, now, f"RSS {memory.format_size(size)} over MAX_MEMORY "
                            f"{memory.format_size(limit)}")

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
        for child in self.children.values():
            if child.slot == slot and child.role == role:
                return child
        return None

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
            self._kill(child.pid, signal.SIGKILL)

    def _term(self, child: Child) -> None:
        child.terms_sent += 1
        with contextlib.suppress(ProcessLookupError):
            self._kill(child.pid, signal.SIGTERM)

    def recover(self, name: str, now: float) -> None:
        """Start ``geventq recover --worker NAME``; it is reaped like a child."""
        if self.recover_argv is None:
            return
        try:
            process = self._spawn(self.recover_argv(name), self.env, False)
        except OSError as exc:
            log.error("cannot start the recovery of %s's jobs: %s", name, exc)
            return
        self.recoveries[process.pid] = Recovery(name, process, now + self.RECOVER_TIMEOUT)
        log.info("recovering the in-flight jobs of %s (pid %d)", name, process.pid)

    def wait_recoveries(self) -> None:
        """Before exiting, let running recoveries finish (each has a deadline)."""
        while self.recoveries:
            now = self.clock()
            self.reap(now)
            self.murder(now)
            if self.recoveries:
                self.sleep(self.next_timeout(now))

    # -- stopping ----------------------------------------------------------

    def fail(self, code: int, reason: str) -> None:
        """Stop the pool because of ``reason``; the first reason wins."""
        if self.reason is None:
            self.exit_code, self.reason = code, reason
            log.error("stopping the pool: %s", reason)
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

    # -- reporting ---------------------------------------------------------

    def report(self, now: float) -> None:
        """Keep the title, the log, STATUS, READY and the watchdog current."""
        up = sum(1 for c in self.children.values() if c.role == "active" and c.beating)
        status = f"{up}/{self.target} workers up"
        if self.restarts:
            status += f", {self.restarts} replaced"
        status += self.reload.status()
        if self.stopping:
            status = f"stopping, {len(self.children)} workers left"
        if status != self.last_status:
            self.last_status = status
            log.info("pool %s: %s", self.pool_name, status)
            set_title(f"geventq pool {self.pool_name}: {status}")
            if self.ready_sent:
                self.notifier.status(status)
        if not self.ready_sent and not self.stopping and up >= self.target:
            self.ready_sent = True
            self.notifier.ready(status)
        interval = self.notifier.watchdog_interval
        if interval and now >= self.next_watchdog and self.reason is None:
            self.notifier.watchdog()
            self.next_watchdog = now + interval

    def close(self) -> None:
        """Release the pipe, the stderr pipes and the heartbeat directory."""
        for child in self.children.values():
            child.process.close()
        if self.heartbeats is not None:
            self.heartbeats.cleanup()
        if self.pipe is not None:
            for fd in self.pipe:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.pipe = None

    def _ensure_pipe(self) -> None:
        if self.pipe is None:
            self.pipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
