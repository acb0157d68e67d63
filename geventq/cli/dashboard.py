"""``geventq dashboard``: the web dashboard, served by gevent's WSGI server.

Safe by default: without credentials (``--auth``, ``$GEVENTQ_DASHBOARD_AUTH`` or
``DASHBOARD_AUTH`` in the settings file) it serves loopback only, and refuses
any other address with one line and exit code 1.
"""

from __future__ import annotations

import ipaddress
import sys

import click

from . import main
from .admin import connection_options

DEFAULT_BIND = "127.0.0.1:9181"


def parse_bind(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as (host, port); ValueError when malformed."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--bind takes HOST:PORT (e.g. {DEFAULT_BIND}), got {value!r}")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


@main.command("dashboard")
@connection_options
@click.option("--bind", default=DEFAULT_BIND, show_default=True,
              help="HOST:PORT to serve on. Without --auth, only a loopback address is accepted.")
@click.option("--auth", envvar="GEVENTQ_DASHBOARD_AUTH", metavar="USER:PASSWORD",
              help="Require HTTP basic auth (or $GEVENTQ_DASHBOARD_AUTH, which keeps the "
                   "password out of the process list; else DASHBOARD_AUTH in the settings).")
@click.option("--read-only", is_flag=True, help="Show everything, change nothing: no buttons, "
                                                "every POST refused.")
def dashboard(config: str | None, url: str | None, cluster: bool | None, prefix: str | None,
              bind: str, auth: str | None, read_only: bool) -> None:
    """Serve the web dashboard (needs Flask: pip install 'geventq[dashboard]')."""
    # First, as the worker does: redis and the server's sockets must cooperate with gevent.
    from ..green.patch import patch

    patch()
    try:
        server, line = _build_server(config, url, cluster, prefix, bind, auth, read_only)
    except _Refused as exc:
        click.echo(f"geventq dashboard: {exc}", err=True)
        sys.exit(1)
    _serve(server, line)


class _Refused(Exception):
    """A reason not to start, said in one line."""


def _build_server(config: str | None, url: str | None, cluster: bool | None,
                  prefix: str | None, bind: str, auth: str | None, read_only: bool):
    import socket

    import redis

    from ..connection import describe_connection
    from ..exceptions import GeventqError
    from ..utils import redact_url
    from .admin import Context

    try:
        import flask  # noqa: F401
    except ImportError:
        raise _Refused("needs Flask: pip install 'geventq[dashboard]'") from None
    from gevent.pywsgi import WSGIServer

    from ..dashboard import create_app
    from ..dashboard.security import parse_credentials

    try:
        host, port = parse_bind(bind)
        ctx = Context(config, url, prefix, cluster)
        credentials = parse_credentials(auth or ctx.settings.get("DASHBOARD_AUTH") or None)
        if credentials is None and not is_loopback(host):
            raise _Refused(f"refusing to serve on {host} without auth: give --auth USER:PASSWORD "
                           f"(or $GEVENTQ_DASHBOARD_AUTH, or DASHBOARD_AUTH in the settings), "
                           f"or bind a loopback address such as {DEFAULT_BIND}")
        # None here means the option, the environment and the settings gave nothing
        app = create_app(ctx.connection, credentials, prefix=ctx.keys.prefix,
                         read_only=read_only, serializer=ctx.settings.get("SERIALIZER"))
        server = WSGIServer((host, port), app, log=None)
        server.init_socket()
        # accepted sockets inherit it: a keep-alive response's second write must not
        # wait for the client's delayed ACK (40 ms per request otherwise)
        server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (GeventqError, ValueError, redis.RedisError) as exc:
        raise _Refused(redact_url(str(exc))) from None
    except OSError as exc:
        raise _Refused(f"cannot bind {bind}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    where = describe_connection(ctx.connection)
    try:
        ctx.connection.ping()
    except redis.RedisError as exc:
        click.echo(f"geventq dashboard: Redis at {where} does not answer yet "
                   f"({type(exc).__name__}); pages show it until it does", err=True)
    line = (f"geventq dashboard: serving http://{shown}:{bound_port}/ (Redis {where}; "
            f"{'basic auth' if credentials else 'no auth, loopback only'}"
            f"{'; read-only' if read_only else ''})")
    return server, line


def _serve(server, line: str) -> None:
    import signal

    import gevent

    server.start()
    click.echo(line)
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, server.stop)
    server.serve_forever()
    click.echo("geventq dashboard: stopped")
