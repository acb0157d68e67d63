"""A private ``redis-server`` for tests, demos and benchmarks (one server).

``RedisServer`` starts its own server on a free loopback port with nothing
saved to disk, and stops it on exit. It never touches another server.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

REDIS_SERVER_ENV = "GEVENTQ_REDIS_SERVER"


def find_redis_server() -> str | None:
    """Path of the redis-server to run: ``$GEVENTQ_REDIS_SERVER`` or the one on PATH."""
    return os.environ.get(REDIS_SERVER_ENV) or shutil.which("redis-server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server process of our own: ``with RedisServer() as server: server.url``.

    ``sentinel`` (lines such as ``"monitor mymaster 127.0.0.1 6380 2"``) runs it as
    a Sentinel instead: those lines, each prefixed with ``sentinel``, go into a
    config file of its own (Sentinel rewrites it as it learns the topology).
    """

    def __init__(self, port: int | None = None, args: Sequence[str] = (),
                 binary: str | None = None, persistent: bool = False,
                 sentinel: Sequence[str] | None = None):
        binary = binary or find_redis_server()
        if not binary:
            raise RuntimeError("redis-server not found: install it (Debian/Ubuntu: "
                               "apt-get install redis-server) or set GEVENTQ_REDIS_SERVER")
        self.binary: str = binary
        self.port = port or free_port()
        self.args = list(args)
        self.persistent = persistent
        self.sentinel = list(sentinel) if sentinel is not None else None
        self.dir = tempfile.mkdtemp(prefix="geventq-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        cmd = [self.binary]
        if self.sentinel is not None:
            config = os.path.join(self.dir, "sentinel.conf")
            if not os.path.exists(config):  # a restart keeps what Sentinel learnt
                with open(config, "w") as fh:
                    fh.writelines(f"sentinel {line}\n" for line in self.sentinel)
            cmd += [config, "--sentinel"]
        cmd += ["--port", str(self.port), "--bind", "127.0.0.1",
               "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning",
               "--logfile", os.path.join(self.dir, "redis.log")]
        if not self.persistent:
            cmd += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(cmd + self.args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start (code {self.process.returncode}); "
                                   f"log: {self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def ping(self) -> bool:
        """True when the server answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill=True``); keep its data dir for a restart."""
        if self.process and self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def restart(self) -> RedisServer:
        """Stop and start again on the same port (and data dir)."""
        self.stop()
        return self.start()

    def log_tail(self) -> str:
        try:
            with open(os.path.join(self.dir, "redis.log")) as fh:
                return fh.read()[-500:]
        except OSError:
            return "(no log)"

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
