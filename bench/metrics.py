"""The cost of metrics (issue 15), geventq only, each figure against a peer of the same run.

(a) no-op jobs drained by one worker process (``python -m geventq worker --burst``,
    concurrency 100) with job metrics counted (the default) and with
    ``GEVENTQ_METRICS=0``, alternating on/off in each run: jobs/s from the first
    job's start to the last job's end, the worker's CPU per job (its rusage, start-up
    included), the Redis main thread's CPU per job, and Redis commands per job.
    Target: on is >= 95% of off. On a loaded machine the CPU figures are steadier
    than jobs/s.
(b) one scrape of a deployment of 100 queues (each with queued, failed and finished
    jobs, and job counters for 3 functions) and 50 registered workers: Redis time
    (the sum of ``INFO commandstats`` usec, i.e. time spent running the commands)
    and the number of commands, from ``CONFIG RESETSTAT`` to after the scrape; also
    the exporter's wall time for the whole scrape (client side, HTTP excluded).
    Target: < 50 ms of Redis time.

    python bench/metrics.py            # 3 runs, medians
    python bench/metrics.py --quick    # a few dozen jobs: only checks it works
"""

from __future__ import annotations

import os
import time

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
    worker_env,
)

from bench.jobs import noop
from geventq import Queue, SimpleWorker
from geventq.keys import Keys


def drain(server, n: int, metrics_on: bool) -> dict:
    conn = connect(server)
    conn.flushdb()
    ids = enqueue_chunked(conn, n, lambda i: Queue.prepare_data(noop, ()))
    env = worker_env(server)
    env["GEVENTQ_METRICS"] = "1" if metrics_on else "0"
    before = server_stats(conn)
    redis_cpu0 = _redis_cpu(conn)
    _, worker_cpu = run_burst_worker(server, 100, env=env)
    redis_cpu = _redis_cpu(conn) - redis_cpu0
    after = server_stats(conn)
    counted = conn.exists(Keys().metrics_jobs)
    if counted != metrics_on:
        raise RuntimeError(f"metrics {'on' if metrics_on else 'off'} but counters exist: {counted}")
    return {"rate": n / drain_span("geventq", conn, ids),
            "cmds": (after["commands"] - before["commands"]) / n,
            "cpu_us": worker_cpu / n * 1e6,
            "redis_us": redis_cpu / n * 1e6}


def _redis_cpu(conn) -> float:
    """CPU seconds of the Redis main thread so far."""
    cpu = conn.info("cpu")
    return cpu.get("used_cpu_user_main_thread", cpu["used_cpu_user"]) + \
        cpu.get("used_cpu_sys_main_thread", cpu["used_cpu_sys"])


def build_deployment(conn, queues: int, workers: int) -> None:
    """queues x (3 queued, 2 failed, 2 finished jobs, counters of 3 functions), and
    ``workers`` registered workers listening on 2 queues each."""
    conn.flushdb()
    keys = Keys()
    for i in range(queues):
        q = Queue(f"q{i:03d}", connection=conn)
        q.enqueue_many([Queue.prepare_data(noop, ()) for _ in range(7)])
    for i in range(queues):  # 4 of the 7 jobs of every queue end: 2 finished, 2 failed
        SimpleWorker([Queue(f"q{i:03d}", connection=conn)], connection=conn,
                     name=f"filler-{i}").work(burst=True, max_jobs=4)
    pipe = conn.pipeline(transaction=False)
    for i in range(queues):
        for f in ("app.tasks.a", "app.tasks.b", "app.tasks.c"):
            pipe.hincrby(keys.metrics_jobs, f'["q{i:03d}","{f}","finished"]', 10)
    pipe.execute()
    for i in range(workers):
        name = f"w{i:02d}"
        conn.hset(keys.worker(name), mapping={
            "queues": f"q{i % queues:03d},q{(i + 1) % queues:03d}", "concurrency": 100,
            "state": "busy", "hostname": "bench", "pid": 1000 + i, "birth": time.time()})
        conn.sadd(keys.workers, name)


def scrape_cost(server, queues: int, workers: int, runs: int) -> dict:
    from prometheus_client import generate_latest

    from geventq.metrics.exposition import make_registry

    conn = connect(server)
    build_deployment(conn, queues, workers)
    registry, collector = make_registry(conn, Keys())
    usecs, commands, walls = [], [], []
    for _ in range(runs):
        conn.config_resetstat()
        t0 = time.perf_counter()
        text = generate_latest(registry)
        walls.append(time.perf_counter() - t0)
        stats = conn.info("commandstats")
        rows = [row for name, row in stats.items()
                if not name.startswith(("cmdstat_info", "cmdstat_config"))]
        usecs.append(sum(row["usec"] for row in rows))
        commands.append(sum(row["calls"] for row in rows))
    return {"redis_ms": median(usecs) / 1000, "commands": median(commands),
            "collector_commands": collector.last_commands, "wall_ms": median(walls) * 1000,
            "bytes": len(text)}


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000, help="no-op jobs per drain")
    args = parser.parse_args()
    n = 60 if args.quick else args.jobs
    runs = 1 if args.quick else args.runs
    queues, workers = (5, 3) if args.quick else (100, 50)
    with private_redis() as server:
        results = {True: [], False: []}
        for _ in range(runs):
            for on in (False, True):
                results[on].append(drain(server, n, on))
        off_rate = median([r["rate"] for r in results[False]])
        on_rate = median([r["rate"] for r in results[True]])
        print_table(f"(a) no-op jobs drained, {n} jobs, concurrency 100, median of {runs} "
                    f"(alternating)", ["metrics", "jobs/s", "worker CPU us/job",
                                       "Redis CPU us/job", "Redis commands/job"],
                    [[label, median([r["rate"] for r in results[on]]),
                      median([r["cpu_us"] for r in results[on]]),
                      median([r["redis_us"] for r in results[on]]),
                      median([r["cmds"] for r in results[on]])]
                     for label, on in (("off", False), ("on", True))])
        print("  each run, off/on jobs/s: " + ", ".join(
            f"{off['rate']:,.0f}/{on['rate']:,.0f}" for off, on in zip(results[False], results[True])))
        print(f"  on / off: {on_rate / off_rate:.1%} (target >= 95%)")
        cost = scrape_cost(server, queues, workers, 3 if args.quick else 10)
        print_table(f"(b) one scrape, {queues} queues and {workers} workers",
                    ["Redis time ms", "commands", "exporter wall ms", "text bytes"],
                    [[cost["redis_ms"], cost["commands"], cost["wall_ms"], cost["bytes"]]])
        print("  target: < 50 ms of Redis time")


if __name__ == "__main__":
    os.environ.setdefault("GEVENTQ_METRICS", "1")
    main()
