"""The dashboard on a huge failed registry: page, search and "Requeue all" times.

A failed registry of N entries (default 1,000,000) is filled by one Lua loop of
bounded ZADDs; only the jobs of the first and last pages get a hash (a page
reads its own jobs and nothing else). Then, through `geventq dashboard` served
as users serve it (a real process, real HTTP, basic auth), each request is
timed from the client: the first page, the last page, a search (which scans
the newest 1,000 entries) and the overview. Redis commands per request come
from `INFO stats`. Then the overview's rates: with the job counters of Q queues
x F functions (default 100 x 10) in Redis, as workers leave them, the overview
and `/api/overview` (which read the counters to derive finished/min and
failed/min) against `/api/queues` (which does not), interleaved. Last, "Requeue
all" (`POST /api/queues/<q>/failed/requeue {}`) on M real failed jobs (default
20,000) gives the requeue rate.

    python bench/dashboard.py            # 1,000,000 entries, 20,000 to requeue, 5 runs
    python bench/dashboard.py --quick    # 10,000 entries: only checks it works
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import requests  # noqa: E402
from _common import (  # first: it puts the repository on sys.path
    ROOT,
    base_parser,
    connect,
    median,
    print_table,
    private_redis,
    server_stats,
    worker_env,
)

from geventq.keys import Keys  # noqa: E402
from geventq.metrics.counting import BUCKETS  # noqa: E402

AUTH = ("bench", "bench-password")
PAGE = 50

# members first..last, 1,000 per ZADD; a call covers 100,000 (well under the busy-script limit)
FILL = """
local first, last, base = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for s = first, last, 1000 do
  local batch = {}
  for i = s, math.min(s + 999, last) do
    batch[#batch + 1] = base + i
    batch[#batch + 1] = ARGV[4] .. i
  end
  redis.call('ZADD', KEYS[1], unpack(batch))
end
return last - first + 1
"""

# M failed job hashes and their registry entries, in bounded batches per call
FAILED_JOBS = """
local first, last, expiry = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local batch = {}
for i = first, last do
  local id = 'requeue-' .. i
  redis.call('HSET', ARGV[4] .. id, 'func', 'app.tasks.work', 'status', 'failed',
             'origin', 'requeue', 'exc_info', 'ValueError: boom')
  batch[#batch + 1] = expiry
  batch[#batch + 1] = id
end
redis.call('ZADD', KEYS[1], unpack(batch))
return #batch / 2
"""


def start_dashboard(server) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "geventq", "dashboard", "--bind", "127.0.0.1:0",
         "--auth", ":".join(AUTH)], env=worker_env(server), cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    match = re.search(r"serving (http://\S+/)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the dashboard did not start: {line}{proc.stdout.read()}")
    return proc, match.group(1)


def fill(conn, n: int) -> None:
    keys = Keys()
    key = keys.registry("failed", "default")
    conn.sadd(keys.queues, "default", "requeue")
    for first in range(1, n + 1, 100_000):
        conn.eval(FILL, 1, key, first, min(first + 99_999, n), time.time() + 86400, "job-")
    pipe = conn.pipeline(transaction=False)
    for i in list(range(n, n - PAGE, -1)) + list(range(1, PAGE + 1)):  # first and last pages
        pipe.hset(keys.job(f"job-{i}"), mapping={
            "func": "app.tasks.work", "status": "failed", "origin": "default",
            "exc_info": f"Traceback...\nValueError: job {i} failed"})
    pipe.execute()


def timed_get(session, conn, url: str, runs: int) -> tuple[float, int]:
    """(median ms, Redis commands of one request)."""
    times, commands = [], 0
    session.get(url).raise_for_status()  # warm-up
    for _ in range(runs):
        before = server_stats(conn)["commands"]
        start = time.perf_counter()
        session.get(url).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
        commands = server_stats(conn)["commands"] - before - 1  # less the INFO itself
    return median(times), commands


def fill_counters(conn, queues: int, functions: int) -> None:
    """The metric hashes of ``queues`` x ``functions`` that finished and failed jobs, with
    their duration histograms: what workers leave after running them (metrics_count.lua)."""
    keys = Keys()
    names = [f"q{i:03d}" for i in range(queues)]
    conn.sadd(keys.queues, *names)
    for queue in names:
        jobs, durations = {}, {}
        for f in range(functions):
            func = f"app.tasks.function_{f}"
            for outcome, count in (("finished", 1000 + f), ("failed", f)):
                jobs[json.dumps([queue, func, outcome])] = count
            for field in [repr(b) for b in BUCKETS] + ["+Inf", "count", "sum"]:
                durations[json.dumps([queue, func, field])] = 7
        conn.hset(keys.metrics_jobs, mapping=jobs)
        conn.hset(keys.metrics_durations, mapping=durations)


def rates_cost(session, conn, url: str, runs: int) -> list[tuple[str, float, int]]:
    """(request, median ms, commands) of the requests with and without the rates,
    interleaved run by run so that the machine's noise falls on all of them."""
    paths = [("overview (rates)", ""), ("GET /api/overview (rates)", "api/overview"),
             ("GET /api/queues (no rates)", "api/queues")]
    times: dict[str, list[float]] = {label: [] for label, _ in paths}
    commands: dict[str, int] = {}
    for _ in range(runs):
        for label, path in paths:
            ms, sent = timed_get(session, conn, url + path, 1)
            times[label].append(ms)
            commands[label] = sent
    return [(label, median(times[label]), commands[label]) for label, _ in paths]


def requeue_rate(session, conn, url: str, m: int) -> float:
    key = Keys().registry("failed", "requeue")
    for first in range(1, m + 1, 1000):
        conn.eval(FAILED_JOBS, 1, key, first, min(first + 999, m), time.time() + 86400,
                  Keys().prefix + "job:")
    start = time.perf_counter()
    reply = session.post(url + "api/queues/requeue/failed/requeue", json={})
    elapsed = time.perf_counter() - start
    reply.raise_for_status()
    if reply.json()["requeued"] != m:
        raise SystemExit(f"requeued {reply.json()} of {m}")
    return m / elapsed


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requeue", type=int, default=20_000)
    parser.add_argument("--queues", type=int, default=100, help="queues with job counters")
    parser.add_argument("--functions", type=int, default=10, help="functions per queue")
    args = parser.parse_args()
    n, m, runs = (10_000, 200, 1) if args.quick else (args.entries, args.requeue, max(args.runs, 5))
    queues, functions = (5, 2) if args.quick else (args.queues, args.functions)
    with private_redis() as server:
        conn = connect(server)
        start = time.perf_counter()
        fill(conn, n)
        print(f"filled a failed registry of {n:,} entries in {time.perf_counter() - start:.1f} s")
        proc, url = start_dashboard(server)
        try:
            session = requests.Session()
            session.auth = AUTH
            pages = n // PAGE
            rows = []
            for label, path in [("first page", "queues/default/failed"),
                                (f"last page ({pages:,})", f"queues/default/failed?page={pages}"),
                                ("search (newest 1,000 scanned)", "queues/default/failed?search=job-42"),
                                ("overview", ""), ("GET /api/queues", "api/queues")]:
                ms, commands = timed_get(session, conn, url + path, runs)
                rows.append((label, ms, commands))
            print_table(f"dashboard requests on a failed registry of {n:,} jobs "
                        f"(median of {runs}, HTTP through `geventq dashboard`)",
                        ["request", "ms", "Redis commands"], rows)
            fill_counters(conn, queues, functions)
            print_table(f"the overview's rates: {queues} more queues x {functions} functions of "
                        f"job counters (median of {runs}, interleaved)",
                        ["request", "ms", "Redis commands"], rates_cost(session, conn, url, runs))
            rate = requeue_rate(session, conn, url, m)
            print(f"\nRequeue all: {m:,} failed jobs requeued at {rate:,.0f} jobs/s "
                  f"(one POST /api/queues/<q>/failed/requeue)")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
