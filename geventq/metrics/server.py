"""The ``/metrics`` endpoint: a small threaded HTTP server (stdlib) around the collector.

Every request to ``/metrics`` is one scrape of Redis; any other path is 404. The
server holds no state of its own, so it may be restarted, or run twice, freely.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..keys import Keys
from .exposition import make_registry

logger = logging.getLogger("geventq.metrics")


def make_server(connection: redis.Redis, keys: Keys, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to (host, port) serving the deployment's metrics; call
    ``serve_forever()`` on it (``shutdown()`` from another thread stops it)."""
    registry, _ = make_registry(connection, keys)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            if self.path.split("?", 1)[0] != "/metrics":
                self._reply(404, b"not found: the metrics are at /metrics\n", "text/plain")
                return
            try:
                body = generate_latest(registry)
            except redis.RedisError as exc:  # Redis down: a scrape error, not a dead exporter
                logger.warning("metrics scrape failed: %s", exc)
                self._reply(503, f"cannot read Redis: {type(exc).__name__}\n".encode(),
                            "text/plain")
                return
            self._reply(200, body, CONTENT_TYPE_LATEST)

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            logger.debug("%s - %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (for ``geventq pool`` and tests)."""
    thread = threading.Thread(target=server.serve_forever, name="geventq-metrics", daemon=True)
    thread.start()
    return thread
