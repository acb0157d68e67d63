"""Scraping politely: 1,000 pages over 20 sites, 3 at once and 10 per second per site,
on one worker at ``-n 500`` (docs/flow-control.md).

Each job carries ``Limit(site, concurrency=3, rate=10, per=1)``: the worker may run
500 jobs at once, yet no site ever sees more than 3 requests at a time nor more than
10 new ones in a second, and the sites' pages are fetched side by side (one busy site
never holds the others up). A site that answers 429 makes its job raise
``RateLimited``: that job comes back after ``Retry-After``, and its site's other jobs
wait too; nothing fails.

Runs against the local page server (examples/pages.py), which plays every site and
answers 429 past 3 requests at once per site (so the limit shows: it never does)::

    python examples/scrape.py                 # 1,000 pages, 20 sites
    python examples/scrape.py --pages 120 --sites 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from geventq import Limit, Queue, RateLimited  # noqa: E402


def fetch(url: str) -> int:
    """Fetch one page and count its words; a 429 puts the job (and its site) back."""
    response = requests.get(url, timeout=10)
    if response.status_code == 429:
        raise RateLimited(retry_after=float(response.headers.get("Retry-After", "1")))
    response.raise_for_status()
    return len(response.text.split())


def enqueue_pages(queue: Queue, base_url: str, pages: int, sites: int) -> list:
    """One job per page, round the sites; each site has its own limit (one round trip)."""
    data = []
    for i in range(pages):
        site = f"site{i % sites}.example"
        url = f"{base_url}/{i % 50 + 1}?site={site}"
        # by dotted path: run as a script, this module is __main__, which no worker imports
        data.append(Queue.prepare_data("examples.scrape.fetch", (url,),
                                       limit=Limit(site, concurrency=3, rate=10, per=1)))
    return queue.enqueue_many(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--url", default=None, help="Redis URL (default: a private redis-server)")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from examples.pages import serve_pages
    from geventq.connection import get_connection
    from geventq.testing import RedisServer

    server = None if args.url else RedisServer().start()
    url = args.url or server.url
    try:
        connection = get_connection(url)
        queue = Queue("scrape", connection=connection)
        with serve_pages(delay=0.1, max_per_site=3) as base_url:
            jobs = enqueue_pages(queue, base_url, args.pages, args.sites)
            started = time.monotonic()
            env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
            subprocess.run([sys.executable, "-m", "geventq", "worker", "--url", url, "--burst",
                            "-n", "500", "--logging-level", "WARNING", "scrape"],
                           env=env, cwd=ROOT, check=True)
            elapsed = time.monotonic() - started
            stats = json.loads(requests.get(f"{base_url}/stats", timeout=10).text)
        finished = sum(1 for job in jobs if job.get_status() == "finished")
        per_site = args.pages / args.sites
        print(f"{finished} of {len(jobs)} pages fetched in {elapsed:.1f} s "
              f"(at 10/s per site, {per_site:.0f} pages per site take at least "
              f"{(per_site - 10) / 10:.1f} s)")
        print(f"most requests at once on one site: {max(stats['peak'].values())}; "
              f"429 answers: {stats['refused']}")
    finally:
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
