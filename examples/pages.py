"""A local page server for count_words_at_url: ``/N`` serves N words.

The demo, the doc samples and the example apps' tests fetch pages from it
instead of the network. ``delay`` makes each page slow, like a real site.

``/N?site=NAME`` plays one of many sites (examples/scrape.py): the server counts,
per site, the requests in progress and the most seen at once (``/stats`` answers
them as JSON), and with ``max_per_site`` it answers 429 Too Many Requests (with a
``Retry-After``) past that many at once, as a real site protecting itself would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Sites:
    """Requests in progress per site, the most seen at once, and the 429s answered."""

    def __init__(self, max_per_site: int | None) -> None:
        self.lock = threading.Lock()
        self.max_per_site = max_per_site
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.served: dict[str, int] = {}
        self.refused = 0

    def enter(self, site: str) -> bool:
        with self.lock:
            now = self.running.get(site, 0) + 1
            if self.max_per_site is not None and now > self.max_per_site:
                self.refused += 1
                return False
            self.running[site] = now
            self.peak[site] = max(self.peak.get(site, 0), now)
            self.served[site] = self.served.get(site, 0) + 1
            return True

    def leave(self, site: str) -> None:
        with self.lock:
            self.running[site] -= 1

    def stats(self) -> dict:
        with self.lock:
            return {"peak": dict(self.peak), "served": dict(self.served),
                    "refused": self.refused}


class _Page(BaseHTTPRequestHandler):
    delay = 0.0
    sites = _Sites(None)

    def do_GET(self):  # noqa: N802
        parts = urlsplit(self.path)
        if parts.path == "/stats":
            return self._send(200, json.dumps(self.sites.stats()).encode())
        site = parse_qs(parts.query).get("site", [None])[0]
        if site is not None and not self.sites.enter(site):
            return self._send(429, b"slow down", {"Retry-After": "1"})
        try:
            if self.delay:
                time.sleep(self.delay)
            path = parts.path.strip("/")
            words = int(path) if path.isdigit() else 7
            self._send(200, " ".join(["word"] * words).encode())
        finally:
            if site is not None:
                self.sites.leave(site)

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default backlog of 5 refuses a burst of connections


@contextmanager
def serve_pages(delay: float = 0.0, max_per_site: int | None = None) -> Iterator[str]:
    """Serve pages on a free loopback port, each after ``delay`` s; yields the base URL.

    ``max_per_site``: more requests than that at once for one ``?site=`` get a 429.
    """
    handler = type("Page", (_Page,), {"delay": delay, "sites": _Sites(max_per_site)})
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
