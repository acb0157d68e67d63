"""``geventq metrics``: the Prometheus exporter, reading Redis only.

Loopback by default (``127.0.0.1:9191``): exposing it elsewhere is an explicit
``--bind``. The metrics tell queue and function names, never job arguments.
"""

from __future__ import annotations

import sys

import click

from . import main
from .admin import connection_options

DEFAULT_BIND = "127.0.0.1:9191"


@main.command("metrics")
@connection_options
@click.option("--bind", default=DEFAULT_BIND, show_default=True,
              help="HOST:PORT to serve /metrics on (port 0: any free port).")
def metrics(config: str | None, url: str | None, cluster: bool | None, prefix: str | None,
            bind: str) -> None:
    """Serve Prometheus metrics at /metrics (needs pip install 'geventq[metrics]')."""
    import signal

    try:
        server, line = build_server(config, url, cluster, prefix, bind)
    except ValueError as exc:
        click.echo(f"geventq metrics: {exc}", err=True)
        sys.exit(1)
    click.echo(line, err=True)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    click.echo("geventq metrics: stopped", err=True)


def build_server(config: str | None, url: str | None, cluster: bool | None, prefix: str | None,
                 bind: str):
    """(server, the line saying where it serves); ValueError says in one line why not."""
    import redis

    from ..exceptions import GeventqError
    from ..utils import redact_url
    from .admin import Context
    from .dashboard import parse_bind

    try:
        from ..metrics.server import make_server
    except ImportError:
        raise ValueError("needs prometheus-client: pip install 'geventq[metrics]'") from None
    try:
        host, port = parse_bind(bind)
        ctx = Context(config, url, prefix, cluster)
        server = make_server(ctx.connection, ctx.keys, host, port)
    except (GeventqError, redis.RedisError) as exc:
        raise ValueError(redact_url(str(exc))) from None
    except OSError as exc:
        raise ValueError(f"cannot bind {bind}: {exc.strerror or exc}") from None
    bound_host, bound_port = server.server_address[:2]
    # server_bind set it from getsockname(): the host is str (the stub also allows the bytes
    # a constructor may be given)
    if not isinstance(bound_host, str):
        bound_host = bytes(bound_host).decode()
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return server, f"geventq metrics: serving http://{shown}:{bound_port}/metrics"
