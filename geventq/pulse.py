"""The pulse: a tiny process that keeps one worker's key alive in Redis.

A worker's liveness must not depend on the worker's own interpreter: a job in
one long C call (``3 ** (25 * 10 ** 6)``) holds the GIL, and a heartbeat
thread in the worker then cannot beat, so other workers take a live worker for
dead and run its jobs twice. The pulse is a separate process, started by the
worker at ``work()`` (``geventq.worker.heartbeat.Liveness``), that refreshes
the worker key's TTL every interval for exactly as long as the worker process
lives:

- stdin is a pipe from the worker, carrying frames (a 4-byte length, then a
  ``marshal``-ed dict). The first is the configuration (keys, interval, TTL and
  how to reach Redis, password included: it never appears on a command line
  or in the environment); later ones carry the worker's ``state``. End of
  file means the worker is gone (even after
  SIGKILL the kernel closes the pipe): the pulse stops beating and exits, so a
  dead worker is detected as promptly as before.
- stdout is a pipe to the worker that the pulse never writes: the worker sees
  its end of file if the pulse dies, and starts a new one.
- stderr is the worker's: one line per Redis problem, the password masked.

It runs as ``python -I -S geventq/pulse.py NAME``: standard library only, no
redis-py (20 MB of memory per process), no site packages, not even ``json``
(``marshal`` is built in). Redis is spoken in
RESP2 over TCP, a unix socket or TLS (``ssl`` is imported only then), with
``AUTH [username] password`` and ``SELECT``; with Sentinel the master is asked
of the Sentinels at each (re)connection; on a Redis Cluster it dials the first
node that answers (the slot's primary as last seen first) and follows ``MOVED``. It ignores SIGINT, SIGTERM and SIGHUP
(blocked from its first instruction):
a Ctrl-C or a ``kill`` of the worker's process group must not stop the
heartbeat of a worker still finishing its jobs.
"""

from __future__ import annotations

import marshal
import os
import select
import signal
import socket
import sys
import time

# typing.TYPE_CHECKING without importing typing (standard library only, and as little
# of it as will do: the pulse imports typing nowhere at run time); mypy takes it as true
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from typing import Any, BinaryIO, TypedDict

    # A RESP2 reply: bytes, int, None, a ReplyError or a list of replies.
    Reply = Any
    # A node's [host, port] as marshal carries it (a list: follow() compares lists).
    NodeAddress = list[Any]
    # A frame from the worker, as marshal.loads gives it: a dict, the configuration
    # (a Config) first, then {"state": ...} messages.
    Message = Any

    class TLSOptions(TypedDict, total=False):
        """``ssl`` settings, as geventq.connection.pulse_endpoint reads them from redis-py."""

        cert_reqs: str
        check_hostname: bool
        include_flags: int
        exclude_flags: int
        min_version: str | None
        certfile: str | None
        keyfile: str | None
        password: str | None
        ca_certs: str | None
        ca_path: str | None
        ca_data: str | None
        ciphers: str | None

    class LinkOptions(TypedDict, total=False):
        """How to talk to one server: credentials, database, timeouts, TLS."""

        auth: list[str] | None
        db: int
        socket_timeout: float | None
        connect_timeout: float | None
        tls: TLSOptions | None

    class Address(TypedDict, total=False):
        host: str
        port: int
        path: str

    class SentinelOptions(LinkOptions, total=False):
        service: str
        addresses: list[NodeAddress]

    class Endpoint(LinkOptions, total=False):
        """Where the Redis is: one of address, sentinel, cluster."""

        address: Address
        sentinel: SentinelOptions
        cluster: list[NodeAddress]

    class _Config(TypedDict):
        key: str
        workers: str
        name: str
        interval: float
        ttl: int
        endpoint: Endpoint

    class Config(_Config, total=False):
        """The first frame from the worker."""

        state: str

DEFAULT_TIMEOUT = 5.0  # seconds, as redis-py: connect and each reply


class ReplyError(Exception):
    """Redis answered with an error (``-ERR ...``)."""


def encode(*args: object) -> bytes:
    """One command in RESP: ``*N`` then each argument as a bulk string."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_reply(stream: BinaryIO) -> Reply:
    """One RESP2 reply from a buffered binary stream; an error reply is returned, not raised."""
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return ReplyError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("Redis closed the connection")
        return data[:-2]
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [read_reply(stream) for _ in range(size)]
    raise ConnectionError(f"unexpected reply from Redis: {line[:40]!r}")


class Link:
    """One connection to a Redis server (or a Sentinel), RESP2."""

    def __init__(self, address: Address, options: LinkOptions):
        timeout = options.get("connect_timeout") or DEFAULT_TIMEOUT
        if address.get("path"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(address["path"])
        else:
            sock = socket.create_connection((address["host"], int(address["port"])), timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        try:
            if (tls := options.get("tls")) is not None:
                sock = tls_context(tls).wrap_socket(
                    sock, server_hostname=address.get("host"))
            sock.settimeout(options.get("socket_timeout") or DEFAULT_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        self.address = address
        self.sock = sock
        self.stream = sock.makefile("rb")
        commands: list[tuple[object, ...]] = []
        if auth := options.get("auth"):  # [password] or [username, password], as redis-py sends
            commands.append(("AUTH", *auth))
        if options.get("db"):
            commands.append(("SELECT", options["db"]))
        if commands:
            self.call(*commands)

    def call(self, *commands: tuple) -> list[Reply]:
        """Send commands in one write, read their replies; the first error reply raises."""
        self.sock.sendall(b"".join(encode(*command) for command in commands))
        replies = [read_reply(self.stream) for _ in commands]
        for reply in replies:
            if isinstance(reply, ReplyError):
                raise reply
        return replies

    def close(self) -> None:
        try:
            self.stream.close()
            self.sock.close()
        except OSError:
            pass


def tls_context(tls: TLSOptions) -> ssl.SSLContext:
    """An ``ssl.SSLContext`` built the way redis-py's ``SSLConnection`` builds its own."""
    import ssl

    context = ssl.create_default_context()
    verify = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
              "required": ssl.CERT_REQUIRED}[tls.get("cert_reqs") or "required"]
    context.check_hostname = bool(tls.get("check_hostname")) and verify != ssl.CERT_NONE
    context.verify_mode = verify
    context.verify_flags |= int(tls.get("include_flags") or 0)
    context.verify_flags &= ~int(tls.get("exclude_flags") or 0)
    if tls.get("certfile") or tls.get("keyfile"):
        # a keyfile without a certfile fails here, as it does in redis-py's SSLConnection
        context.load_cert_chain(tls.get("certfile"),  # type: ignore[arg-type]
                                tls.get("keyfile"), tls.get("password"))
    if tls.get("ca_certs") or tls.get("ca_path") or tls.get("ca_data"):
        context.load_verify_locations(tls.get("ca_certs"), tls.get("ca_path"), tls.get("ca_data"))
    if min_version := tls.get("min_version"):
        context.minimum_version = ssl.TLSVersion[min_version]
    if ciphers := tls.get("ciphers"):
        context.set_ciphers(ciphers)
    return context


def connect(endpoint: Endpoint) -> Link:
    """A link to the Redis the worker uses (its master, through the Sentinels, if any;
    on a Redis Cluster the first node that answers, the slot's primary as last seen first)."""
    if endpoint.get("cluster"):
        errors = []
        for host, port in endpoint["cluster"]:
            try:
                return Link({"host": host, "port": port}, endpoint)
            except (OSError, ReplyError) as exc:
                errors.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
        raise ConnectionError("no cluster node answered: " + "; ".join(errors))
    sentinel = endpoint.get("sentinel")
    if not sentinel:
        return Link(endpoint["address"], endpoint)
    errors = []
    for host, port in sentinel["addresses"]:
        try:
            link = Link({"host": host, "port": port}, sentinel)
        except (OSError, ReplyError) as exc:
            errors.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
            continue
        try:
            reply = link.call(("SENTINEL", "GET-MASTER-ADDR-BY-NAME", sentinel["service"]))[0]
        except (OSError, ReplyError) as exc:
            errors.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
            continue
        finally:
            link.close()
        if reply:
            return Link({"host": reply[0].decode(), "port": int(reply[1])}, endpoint)
        errors.append(f"{host}:{port}: no master named {sentinel['service']!r}")
    raise ConnectionError("no Sentinel named the master: " + "; ".join(errors))


class Pulse:
    """Beats for one worker until its pipe ends."""

    def __init__(self, config: Config):
        self.key = config["key"]
        self.workers = config["workers"]
        self.name = config["name"]
        self.interval = float(config["interval"])
        self.ttl = int(config["ttl"])
        self.state = config.get("state") or "idle"
        self.endpoint = config["endpoint"]
        self.secrets = sorted({str(part) for options in (self.endpoint,
                                                         self.endpoint.get("sentinel") or {})
                               for part in (options.get("auth") or [])[-1:] if part},
                              key=len, reverse=True)
        self.link: Link | None = None
        self.failures = 0

    def run(self, frames: Frames) -> None:
        """Beat every ``interval`` until the worker's pipe reaches end of file."""
        due = time.monotonic() + self.interval  # the worker registered itself just now
        while True:
            ready, _, _ = select.select([frames.fd], [], [], max(0.0, due - time.monotonic()))
            if not ready:
                due = time.monotonic() + self.beat()
                continue
            messages = frames.read()
            if messages is None:
                return  # the worker is gone
            for message in messages:
                self.state = str(message.get("state") or self.state)

    def beat(self) -> float:
        """Refresh the key once; return the seconds until the next beat."""
        try:
            for redirects in range(3):
                if self.link is None:
                    self.link = connect(self.endpoint)
                try:
                    self.link.call(("MULTI",), ("HSET", self.key, "heartbeat", repr(time.time()),
                                                "state", self.state),
                                   ("EXPIRE", self.key, self.ttl), ("SADD", self.workers, self.name),
                                   ("EXEC",))
                    break
                except ReplyError as exc:  # a cluster node that does not serve the slot (now)
                    if not self.endpoint.get("cluster") or redirects == 2 or not self.follow(exc):
                        raise
        except Exception as exc:  # Redis away, a failover (READONLY), a refused AUTH...
            if self.link is not None:
                self.link.close()
                self.link = None
            self.failures += 1
            jitter = 0.5 + int.from_bytes(os.urandom(2), "big") / 131070  # 0.5 to 1
            delay = min(self.interval, 0.5 * 2 ** min(self.failures, 6)) * jitter
            self.log(f"heartbeat failed ({type(exc).__name__}: {exc}); retrying in {delay:.1f} s")
            return delay
        if self.failures:
            self.log(f"heartbeat back after {self.failures} failure(s)")
            self.failures = 0
        return self.interval

    def follow(self, reply: ReplyError) -> bool:
        """After ``MOVED <slot> <host>:<port>``: dial that node first from now on (True)."""
        parts = str(reply).split()
        if len(parts) != 3 or parts[0] != "MOVED":
            return False
        assert self.link is not None  # the link the reply came on
        host, _, port = parts[2].rpartition(":")
        # an empty host means "the host you asked" (a node that does not announce its own)
        target = [host or self.link.address["host"], int(port)]
        self.endpoint["cluster"] = [target, *(a for a in self.endpoint["cluster"] if a != target)]
        self.link.close()
        self.link = None
        return True

    def log(self, message: str) -> None:
        """One line on the worker's stderr, formatted like its log; never the password."""
        for secret in self.secrets:
            message = message.replace(secret, "***")
        moment = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))
        try:
            sys.stderr.write(f"{stamp},{int(moment * 1000) % 1000:03d} WARNING geventq.pulse: "
                             f"worker {self.name}: {message}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class Frames:
    """The worker's messages on a pipe: a 4-byte big-endian length, then a marshal-ed dict."""

    def __init__(self, fd: int):
        self.fd = fd
        self.pending = b""

    def read(self) -> list[Message] | None:
        """The messages completed by one read (maybe none); None at end of file."""
        data = os.read(self.fd, 65536)
        if not data:
            return None
        self.pending += data
        messages = []
        while len(self.pending) >= 4:
            size = int.from_bytes(self.pending[:4], "big")
            if len(self.pending) < 4 + size:
                break
            body, self.pending = self.pending[4:4 + size], self.pending[4 + size:]
            messages.append(marshal.loads(body))
        return messages


def frame(message: dict[str, object]) -> bytes:
    """One message as the pulse reads it (used by the worker)."""
    body = marshal.dumps(message)
    return len(body).to_bytes(4, "big") + body


def main() -> int:
    """Entry point of the process (``python -I -S pulse.py NAME``)."""
    # The worker starts it with these blocked; ignored too, in case it was started by hand.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    frames = Frames(0)
    messages: list[Message] = []
    while not messages:  # the configuration comes first
        read = frames.read()
        if read is None:
            return 0
        messages = read
    pulse = Pulse(messages[0])
    for message in messages[1:]:
        pulse.state = str(message.get("state") or pulse.state)
    pulse.run(frames)
    if pulse.link is not None:
        pulse.link.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
