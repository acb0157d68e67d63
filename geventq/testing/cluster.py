"""A local Redis Cluster for tests and benchmarks, made of private servers
(:class:`geventq.testing.server.RedisServer`), joined by ``redis-cli --cluster create``."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from .server import RedisServer, find_redis_server


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free and valid too."""
    for _ in range(200):
        port = random.randint(20000, 55000)
        socks = []
        try:
            for candidate in (port, port + 10000):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no free pair of ports (port, port + 10000) for a cluster node")


REDIS_CLI_ENV = "GEVENTQ_REDIS_CLI"


class ClusterUnavailable(RuntimeError):
    """This machine cannot run a local Redis Cluster; the message says why, in one line."""


def find_redis_cli(server_binary: str | None = None) -> str | None:
    """Path of redis-cli: ``$GEVENTQ_REDIS_CLI``, the one next to redis-server, or on PATH."""
    if os.environ.get(REDIS_CLI_ENV):
        return os.environ[REDIS_CLI_ENV]
    if server_binary:
        sibling = os.path.join(os.path.dirname(server_binary), "redis-cli")
        if os.path.isfile(sibling) and os.access(sibling, os.X_OK):
            return sibling
    return shutil.which("redis-cli")


class LocalRedisCluster:
    """A Redis Cluster of our own: ``with LocalRedisCluster() as cluster: cluster.url``.

    ``primaries`` primaries with ``replicas`` replicas each, every node a
    :class:`RedisServer` on a free loopback port with its own directory and
    ``cluster-config-file``, nothing persisted, joined by ``redis-cli --cluster
    create``. ``start()`` returns once every node sees ``cluster_state:ok``, all
    16384 slots covered, every node known, and every replica in sync.
    ``node_timeout`` (ms) is Redis's ``cluster-node-timeout``: a killed primary's
    replica is promoted about 1.5 to 3 times that after the kill.

    Raises :class:`ClusterUnavailable` (one line) when redis-server cannot run in
    cluster mode or redis-cli is missing or too old for ``--cluster``.
    """

    def __init__(self, primaries: int = 3, replicas: int = 1, node_timeout: int = 2000,
                 binary: str | None = None, cli: str | None = None):
        self.binary = binary or find_redis_server()
        if not self.binary:
            raise ClusterUnavailable("redis-server not found: install it (Debian/Ubuntu: "
                                     "apt-get install redis-server) or set GEVENTQ_REDIS_SERVER")
        self.cli = cli or find_redis_cli(self.binary)
        self.primaries, self.replicas, self.node_timeout = primaries, replicas, node_timeout
        self.nodes: list[RedisServer] = []

    # -- addresses ---------------------------------------------------------
    @property
    def url(self) -> str:
        """URL of the first node: any node seeds a cluster client."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{node.port}" for node in self.nodes]

    def node(self, port: int) -> RedisServer:
        """The node listening on ``port`` (KeyError if none)."""
        return {node.port: node for node in self.nodes}[port]

    def running(self) -> list[RedisServer]:
        """The nodes whose process is alive."""
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    # -- starting and stopping ---------------------------------------------
    def start(self, timeout: float = 60.0) -> LocalRedisCluster:
        """Start the nodes, create the cluster, wait until it is healthy."""
        cli = self._check_cli()
        args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.node_timeout),
                "--cluster-replica-validity-factor", "0",  # a replica may always take over
                "--repl-diskless-sync-delay", "0"]  # replicas sync at once (default: 5 s later)
        try:
            for _ in range(self.primaries * (1 + self.replicas)):
                self.nodes.append(RedisServer(port=free_cluster_port(), args=args, binary=self.binary))
                try:
                    self.nodes[-1].start()
                except RuntimeError as exc:
                    raise ClusterUnavailable(f"{self.binary} cannot run as a cluster node: "
                                             f"{_one_line(str(exc))}") from None
            self._cluster_create(cli, timeout)
            self.wait_until_healthy(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _check_cli(self) -> str:
        """The path of redis-cli, once it is known to be there and recent enough."""
        if not self.cli:
            raise ClusterUnavailable("redis-cli not found (it creates the cluster): install it "
                                     "with redis-server or set GEVENTQ_REDIS_CLI")
        try:
            out = subprocess.run([self.cli, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise ClusterUnavailable(f"cannot run {self.cli}: {exc}") from None
        version = (out.split() or [""])[-1]
        if not version.split(".")[0].isdigit():
            raise ClusterUnavailable(f"cannot tell the version of {self.cli}: {out.strip()!r}")
        if int(version.split(".")[0]) < 5:
            raise ClusterUnavailable(f"{self.cli} is version {version}: 'redis-cli --cluster' "
                                     "needs Redis 5 or later")
        return self.cli

    def _cluster_create(self, cli: str, timeout: float) -> None:
        client = self.client(self.nodes[0])
        try:
            client.execute_command("CLUSTER", "INFO")
        except Exception as exc:  # "cluster support disabled": a build without cluster mode
            raise ClusterUnavailable(f"{self.binary} has no cluster support: {_one_line(str(exc))}")
        finally:
            client.close()
        cmd = [cli, "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
               "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or "[OK] All 16384 slots covered" not in proc.stdout:
            lines = (proc.stdout + proc.stderr).strip().splitlines() or [""]
            tail = _one_line(lines[-1])
            raise ClusterUnavailable(f"redis-cli --cluster create failed (exit {proc.returncode}): {tail}")

    def close(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.close()
        self.nodes = []

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- looking at it -------------------------------------------------------
    @staticmethod
    def client(node: RedisServer) -> Any:
        """A plain ``redis.Redis`` to one node (for the harness and for tests)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=5)

    def _ask(self, command: Sequence[str], nodes: Sequence[RedisServer] | None = None) -> dict:
        """``{node: reply}`` of one command sent to each running node that answers."""
        import redis

        replies = {}
        for node in nodes if nodes is not None else self.running():
            client = self.client(node)
            try:
                replies[node] = client.execute_command(*command)
            except redis.RedisError:
                pass
            finally:
                client.close()
        return replies

    def slot_of(self, key: str | bytes) -> int:
        """The hash slot of ``key`` (its hash tag's, if it has one)."""
        from redis.crc import key_slot

        return key_slot(key.encode() if isinstance(key, str) else key)

    def slot_owners(self, slot: int) -> list[int]:
        """Ports of the primary and replicas serving ``slot``, as one running node sees it."""
        for reply in self._ask(["CLUSTER", "SLOTS"]).values():
            for start, end, primary, *replicas in reply:
                if int(start) <= slot <= int(end):
                    return [int(primary[1])] + [int(r[1]) for r in replicas]
        raise RuntimeError(f"no running node answers CLUSTER SLOTS for slot {slot}")

    def primary_of(self, key: str | bytes) -> RedisServer:
        """The node that is primary for the slot of ``key`` now."""
        return self.node(self.slot_owners(self.slot_of(key))[0])

    def is_healthy(self) -> bool:
        """Every node runs, sees the cluster ok with every slot and node, replicas in sync."""
        running = self.running()
        if len(running) != len(self.nodes):
            return False
        for info in self._ask(["CLUSTER", "INFO"], running).values():
            fields = _info_fields(info)
            if fields.get("cluster_state") != "ok" or \
                    fields.get("cluster_slots_ok") != "16384" or \
                    fields.get("cluster_known_nodes") != str(len(self.nodes)):
                return False
        replication = self._ask(["INFO", "replication"], running)
        if len(replication) != len(running):
            return False
        roles = [info.get("role") for info in replication.values()]
        if roles.count("master") != self.primaries:
            return False
        return all(info.get("master_link_status") == "up" and info.get("master_sync_in_progress") == 0
                   for info in replication.values() if info.get("role") == "slave")

    def wait_until_healthy(self, timeout: float = 60.0) -> None:
        """Block until :meth:`is_healthy` (raise RuntimeError after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.is_healthy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local cluster is not healthy after {timeout} s")
            time.sleep(0.05)

    # -- faults ----------------------------------------------------------------
    def kill_primary_of(self, key: str | bytes) -> RedisServer:
        """SIGKILL the primary serving the slot of ``key``; return it (its data dir stays)."""
        node = self.primary_of(key)
        node.stop(kill=True)
        return node

    def wait_for_promotion(self, key: str | bytes, old: RedisServer,
                           timeout: float = 30.0) -> RedisServer:
        """Block until a replica has replaced ``old`` as primary of ``key``'s slot; return it."""
        slot = self.slot_of(key)
        deadline = time.monotonic() + timeout
        while True:
            try:
                port = self.slot_owners(slot)[0]
            except RuntimeError:
                port = old.port
            if port != old.port:
                new = self.node(port)
                role = self._ask(["ROLE"], [new]).get(new)
                if role and role[0] in (b"master", "master"):
                    return new
            if time.monotonic() > deadline:
                raise RuntimeError(f"no replica took over slot {slot} within {timeout} s")
            time.sleep(0.02)

    def heal(self, timeout: float = 60.0) -> None:
        """Restart stopped nodes (they rejoin, as replicas) and wait until healthy."""
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                node.start()
        self.wait_until_healthy(timeout)

    def flush(self) -> None:
        """Empty every primary (our own nodes only)."""
        for node, role in self._ask(["ROLE"]).items():
            if role[0] in (b"master", "master"):
                client = self.client(node)
                try:
                    client.flushall()
                finally:
                    client.close()


def _info_fields(text: Any) -> dict[str, str]:
    """``CLUSTER INFO``'s ``key:value`` lines as a dict."""
    if isinstance(text, bytes):
        text = text.decode()
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
