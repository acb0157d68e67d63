"""CPU-bound jobs: geventq's fork queues vs python-rq's forking Worker, in one run.

Both workers are real processes started the way users start them, against one
private redis-server, in burst mode:

(a) 40 jobs of ~250 ms of pure-Python CPU work each (calibrated on this
    machine before the runs): ``geventq worker --fork-queue cpu
    --fork-concurrency 2`` against ``rq worker`` (one job at a time, a fork
    per job). Target: geventq >= 1.8x rq's jobs/s on 2 cores.
(b) no-op jobs on a fork queue: the cost of running a job in a child process.
    Target: geventq >= 3x rq's forking Worker.

jobs/s is counted from the first job's start to the last job's end (timestamps
stored in the jobs); "wall" adds the worker's start-up and shutdown.

    python bench/cpu_bound.py            # 3 runs, medians
    python bench/cpu_bound.py --quick    # a few jobs, one run: only checks it works
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from _common import (  # noqa: I001,E501 (sets sys.path for geventq and bench.jobs_cpu)
    ROOT,
    base_parser,
    connect,
    drain_span,
    have_rq,
    median,
    print_table,
    private_redis,
    ratio,
    rq_enqueue_many,
    worker_env,
)

from bench.jobs_cpu import burn, noop
from geventq import Queue

CPU_JOB_SECONDS = 0.25
FORK_CONCURRENCY = 2


def calibrate(seconds: float) -> int:
    """Loops of ``burn`` that take about ``seconds`` here."""
    loops = 100_000
    while True:
        started = time.perf_counter()
        burn(loops)
        took = time.perf_counter() - started
        if took > 0.05:
            return int(loops * seconds / took)
        loops *= 4


def worker_cmd(kind: str, url: str) -> list[str]:
    if kind == "geventq":
        return [sys.executable, "-m", "geventq", "worker", "--burst", "--logging-level", "WARNING",
                "--url", url, "--fork-queue", "cpu", "--fork-concurrency", str(FORK_CONCURRENCY),
                "cpu"]
    rq_bin = shutil.which("rq", path=os.path.dirname(sys.executable)) or "rq"
    return [rq_bin, "worker", "--burst", "--logging_level", "WARNING", "-u", url, "cpu"]


def enqueue(kind: str, conn, func, args: tuple, n: int) -> list[str]:
    if kind == "geventq":
        q = Queue("cpu", connection=conn)
        return [j.id for j in q.enqueue_many([Queue.prepare_data(func, args) for _ in range(n)])]
    return rq_enqueue_many(conn, "cpu", func, args, n)




def drain(kind: str, server, func, args: tuple, n: int) -> dict:
    conn = connect(server)
    conn.flushdb()
    ids = enqueue(kind, conn, func, args, n)
    started = time.perf_counter()
    proc = subprocess.run(worker_cmd(kind, server.url), env=worker_env(server), cwd=ROOT,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=600)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {"rate": n / drain_span(kind, conn, ids), "wall": wall, "n": n}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--cpu-jobs", type=int, default=40)
    parser.add_argument("--noop-jobs", type=int, default=400,
                        help="no-op jobs for geventq (rq gets a quarter: it is slower)")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    n_cpu = 4 if args.quick else args.cpu_jobs
    n_noop = 20 if args.quick else args.noop_jobs
    kinds = ["geventq"] + (["rq-fork"] if have_rq() and not args.no_rq else [])
    loops = calibrate(CPU_JOB_SECONDS)
    print(f"{os.cpu_count()} CPU(s); one CPU job = burn({loops:,}), about "
          f"{CPU_JOB_SECONDS * 1000:.0f} ms here; {runs} run(s), medians")
    results: dict[tuple[str, str], list[dict]] = {}
    with private_redis() as server:
        for _ in range(runs):
            for kind in kinds:
                results.setdefault(("cpu", kind), []).append(
                    drain(kind, server, burn, (loops,), n_cpu))
                n = n_noop if kind == "geventq" else max(4, n_noop // 4)
                results.setdefault(("noop", kind), []).append(drain(kind, server, noop, (), n))
    rows = []
    for what, title in (("cpu", f"{n_cpu} CPU jobs of ~250 ms"), ("noop", "no-op jobs")):
        ours = median([r["rate"] for r in results[(what, "geventq")]])
        for kind in kinds:
            runs_of = results[(what, kind)]
            rate = median([r["rate"] for r in runs_of])
            label = f"geventq fork queue, fork-concurrency {FORK_CONCURRENCY}" \
                if kind == "geventq" else "rq worker (forking)"
            rows.append([title, label, runs_of[0]["n"], rate,
                         median([r["wall"] for r in runs_of]),
                         ratio(ours, rate) if kind != "geventq" else ""])
    print_table("Fork queues vs python-rq's forking Worker (medians)",
                ["load", "worker", "jobs", "jobs/s", "wall s", "geventq is"], rows)


if __name__ == "__main__":
    main()
