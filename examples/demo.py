"""The README demo: python-rq's count_words_at_url example, made real.

Starts a private redis-server and a tiny local HTTP server (each page takes
50 ms to serve, like a slow website), enqueues a few hundred
``count_words_at_url`` jobs, runs ``geventq worker --burst`` the way a user
would, and prints a summary. Nothing outside this machine is contacted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from redis import Redis  # noqa: E402

from examples.count_words import count_words_at_url  # noqa: E402
from examples.pages import serve_pages  # noqa: E402
from geventq import Queue  # noqa: E402
from geventq.testing import RedisServer  # noqa: E402

JOBS = int(os.environ.get("DEMO_JOBS", 300))
PAGE_DELAY = 0.05


def main() -> int:
    with serve_pages(delay=PAGE_DELAY) as base, RedisServer() as server:
        q = Queue(connection=Redis.from_url(server.url))
        jobs = [q.enqueue(count_words_at_url, f"{base}/{100 + i}") for i in range(JOBS)]
        print(f"enqueued {len(jobs)} count_words_at_url jobs; first result now: {jobs[0].result}")
        env = dict(os.environ, REDIS_URL=server.url, PYTHONPATH=ROOT)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "geventq", "worker", "--burst",
                        "--concurrency", "200", "--logging-level", "WARNING"],
                       env=env, check=True, cwd=ROOT)
        wall = time.monotonic() - started
        finished = [j for j in jobs if j.result is not None]
        wrong = [j for j in finished if j.result != 100 + jobs.index(j)]
        failed = q.failed_job_registry.count
        print(f"first job: {jobs[0].description} -> {jobs[0].result} words")
        print(f"jobs {len(jobs)}  finished {len(finished)}  failed {failed}  wrong {len(wrong)}")
        print(f"wall time {wall:.2f} s (worker start-up included)  "
              f"{len(finished) / wall:.0f} jobs/s  "
              f"(one at a time would take {len(jobs) * PAGE_DELAY:.0f} s)")
        for job in q.failed_job_registry.get_jobs()[:1]:
            print("a failure:", job.exc_info.strip().splitlines()[-1])
        return 0 if len(finished) == len(jobs) and not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
