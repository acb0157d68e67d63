"""Limits per key (issue 14): what a limit costs, and how close a limited run gets to ideal.

Every worker is a real ``python -m geventq worker --burst`` process against a private
redis-server; runs are interleaved (limited, unlimited, limited, ...) and medians shown:

(a) no-op drain, every job carrying one of 100 keys (``Limit(key, concurrency=1000)``,
    never reached) vs the same jobs without a limit: jobs/s (first start to last end,
    from the job hashes), the ratio (target >= 85%), worker CPU per job, Redis CPU per
    job, round trips (reads processed by Redis) and commands per job;
(b) 20 keys x ``concurrency=3``, jobs that wait 100 ms on I/O, one worker at -n 500: jobs/s
    against the ideal 20 x 3 / 0.1 s = 600/s (target >= 90%), CPU and round trips per job.

    python bench/limits.py            # 3 runs, medians
    python bench/limits.py --quick    # a few dozen jobs: only checks it works
"""

from __future__ import annotations

import psutil
from _common import (  # before bench.jobs: it puts the repository on sys.path
    base_parser,
    connect,
    drain_span,
    enqueue_chunked,
    median,
    print_table,
    private_redis,
    run_burst_worker,
    server_stats,
)

from bench.jobs import io_wait, noop
from geventq import Limit, Queue


def enqueue(conn, n: int, func, args: tuple, limits: list[Limit] | None) -> list[str]:
    def prepare(i: int):
        options = {"limit": limits[i % len(limits)]} if limits else {}
        return Queue.prepare_data(func, args, **options)
    return enqueue_chunked(conn, n, prepare)


def empty_run(server) -> dict:
    """Start-up and shutdown cost of a burst worker with nothing to do (subtracted)."""
    conn = connect(server)
    conn.flushdb()
    before = server_stats(conn)
    _, cpu = run_burst_worker(server, 100)
    after = server_stats(conn)
    return {"cpu": cpu, "reads": after["reads"] - before["reads"],
            "commands": after["commands"] - before["commands"]}


def drain(server, n: int, func, args: tuple, concurrency: int, limits: list[Limit] | None,
          base: dict) -> dict:
    conn = connect(server)
    conn.flushdb()
    ids = enqueue(conn, n, func, args, limits)
    redis_proc = psutil.Process(server.process.pid)
    redis_cpu0 = sum(redis_proc.cpu_times()[:2])
    before = server_stats(conn)
    _, cpu = run_burst_worker(server, concurrency)
    after = server_stats(conn)
    redis_cpu = sum(redis_proc.cpu_times()[:2]) - redis_cpu0
    span = drain_span("geventq", conn, ids)
    return {"rate": n / span, "cpu_ms": (cpu - base["cpu"]) / n * 1000,
            "redis_cpu_ms": redis_cpu / n * 1000,
            "rt": (after["reads"] - before["reads"] - base["reads"]) / n,
            "cmds": (after["commands"] - before["commands"] - base["commands"]) / n}


def row(name: str, runs: list[dict], extra: list) -> list:
    return [name, median([r["rate"] for r in runs]), *extra,
            median([r["cpu_ms"] for r in runs]), median([r["redis_cpu_ms"] for r in runs]),
            median([r["rt"] for r in runs]), median([r["cmds"] for r in runs])]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs of part (a)")
    parser.add_argument("--io-jobs", type=int, default=3000, help="jobs of part (b)")
    parser.add_argument("--cases", default="ab", help="which parts to run (default: ab)")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    n = 60 if args.quick else args.jobs
    n_io = 60 if args.quick else args.io_jobs
    wide = [Limit(f"key{i}", concurrency=1000) for i in range(100)]
    tight = [Limit(f"site{i}", concurrency=3) for i in range(20)]
    with private_redis() as server:
        base = empty_run(server)
        plain, limited, io = [], [], []
        for _ in range(runs):  # interleaved: the machine's noise hits both alike
            if "a" in args.cases:
                plain.append(drain(server, n, noop, (), 500, None, base))
                limited.append(drain(server, n, noop, (), 500, wide, base))
            if "b" in args.cases:
                io.append(drain(server, n_io, io_wait, (0.1,), 500, tight, base))
    header = ["run", "jobs/s", "vs", "worker CPU ms/job", "Redis CPU ms/job",
              "round trips/job", "commands/job"]
    if plain:
        # the median of each run's own ratio: the two drains of one run share its noise
        share = median([b["rate"] / a["rate"] for a, b in zip(plain, limited)])
        print_table(f"(a) no-op drain, {n} jobs, -n 500, medians of {runs} interleaved runs",
                    header, [row("unlimited", plain, ["100%"]),
                             row("100 keys, concurrency 1000", limited, [f"{share:.0%}"])])
        print("  each run, limited / unlimited: " + ", ".join(
            f"{b['rate']:,.0f}/{a['rate']:,.0f} = {b['rate'] / a['rate']:.0%}"
            for a, b in zip(plain, limited)))
    if io:
        ideal = 20 * 3 / 0.1
        share = median([r["rate"] for r in io]) / ideal
        print_table(f"(b) 20 keys x concurrency 3, 100 ms jobs, {n_io} jobs, -n 500, medians "
                    f"of {runs} runs", header, [row("limited", io, [f"{share:.0%} of {ideal:.0f}/s"])])


if __name__ == "__main__":
    main()
