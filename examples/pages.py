"""A local page server for count_words_at_url: ``/N`` serves N words.

The demo, the doc samples and the example apps' tests fetch pages from it
instead of the network. ``delay`` makes each page slow, like a real site.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Page(BaseHTTPRequestHandler):
    delay = 0.0

    def do_GET(self):  # noqa: N802
        if self.delay:
            time.sleep(self.delay)
        path = self.path.strip("/")
        words = int(path) if path.isdigit() else 7
        body = " ".join(["word"] * words).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default backlog of 5 refuses a burst of connections


@contextmanager
def serve_pages(delay: float = 0.0) -> Iterator[str]:
    """Serve pages on a free loopback port, each after ``delay`` s; yields the base URL."""
    handler = type("Page", (_Page,), {"delay": delay})
    server = _Server(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
