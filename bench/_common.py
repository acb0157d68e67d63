"""Helpers shared by the benchmarks: a private Redis, timing, medians, tables.

Every benchmark starts its own ``redis-server`` (``geventq.testing.RedisServer``)
on a free port with nothing saved to disk, so results never depend on, or
touch, another Redis.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python bench/x.py` puts bench/ first; job functions are bench.jobs
    sys.path.insert(0, ROOT)

import redis  # noqa: E402

from geventq.testing import RedisServer  # noqa: E402


def have_rq() -> bool:
    """True when python-rq (the peer) is installed."""
    try:
        import rq  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of our own for the whole benchmark."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()


def connect(server: RedisServer, db: int = 0) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, db=db)


def server_stats(conn: redis.Redis) -> dict[str, int]:
    """Counters to turn into per-job costs (see bench/README.md, 'Round trips')."""
    info = conn.info("stats")
    return {"reads": int(info["total_reads_processed"]),
            "commands": int(info["total_commands_processed"])}


def worker_env(server: RedisServer, db: int = 0) -> dict[str, str]:
    """Environment for a worker process that can import bench.jobs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["REDIS_URL"] = f"redis://127.0.0.1:{server.port}/{db}"
    env.pop("GEVENTQ_PREFIX", None)
    return env


def run_burst_worker(server: RedisServer, concurrency: int, queue: str = "bench",
                     env: dict[str, str] | None = None) -> tuple[float, float]:
    """One ``python -m geventq worker --burst`` process to its end: (wall seconds, CPU seconds
    of the worker, from its rusage, start-up included). Raises if it exits non-zero."""
    cmd = [sys.executable, "-m", "geventq", "worker", "--logging-level", "WARNING", "--url",
           server.url, "-n", str(concurrency), "--burst", queue]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: nothing blocks on a full pipe
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env or worker_env(server), cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            raise RuntimeError(f"the worker exited {code}: "
                               f"{err.read().decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def enqueue_chunked(conn: redis.Redis, n: int, prepare: Callable[[int], Any],
                    queue: str = "bench", chunk: int = 5000) -> list[str]:
    """``n`` jobs into ``queue`` by ``enqueue_many`` calls of ``chunk`` jobs; ``prepare(i)``
    gives the i-th job's ``Queue.prepare_data(...)``. Returns the ids in order."""
    from geventq import Queue

    q = Queue(queue, connection=conn)
    ids: list[str] = []
    for start in range(0, n, chunk):
        ids += [j.id for j in q.enqueue_many([prepare(i) for i in range(start, min(n, start + chunk))])]
    return ids


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain-text table, numbers formatted, columns aligned."""
    cells = [list(header)] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def ratio(ours: float, theirs: float) -> str:
    if not theirs or theirs != theirs or ours != ours:
        return "-"
    return f"{ours / theirs:.1f}x"


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--quick", action="store_true",
                        help="a few dozen jobs, one run: only checks that the script works")
    parser.add_argument("--no-rq", action="store_true", help="skip python-rq even if installed")
    return parser


def rq_enqueue_many(conn: redis.Redis, queue: str, func: Any, args: tuple, n: int) -> list[str]:
    """python-rq's bulk enqueue, in one pipeline, the way its docs show it."""
    import rq

    q = rq.Queue(queue, connection=conn)
    with conn.pipeline() as pipe:
        jobs = q.enqueue_many([rq.Queue.prepare_data(func, args) for _ in range(n)], pipeline=pipe)
        pipe.execute()
    return [j.id for j in jobs]


def _rq_time(value: bytes) -> float:
    from datetime import datetime, timezone

    return datetime.strptime(value.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc).timestamp()


def drain_span(kind: str, conn: redis.Redis, ids: list[str]) -> float:
    """Seconds from the first job's start to the last job's end; checks all finished."""
    from geventq.keys import Keys

    pipe = conn.pipeline(transaction=False)
    for job_id in ids:
        key = Keys().job(job_id) if kind == "geventq" else f"rq:job:{job_id}"
        pipe.hmget(key, "status", "started_at", "ended_at")
    rows = pipe.execute()
    bad = [r[0] for r in rows if r[0] != b"finished"]
    if bad:
        raise RuntimeError(f"{kind}: {len(bad)} of {len(ids)} jobs did not finish: {set(bad)}")
    parse = float if kind == "geventq" else _rq_time
    return max(parse(r[2]) for r in rows) - min(parse(r[1]) for r in rows)
