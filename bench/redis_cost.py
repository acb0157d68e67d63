"""Redis CPU per job, and the jobs/s one Redis core (one cluster shard) can carry.

Each phase runs alone against a private redis-server, after ``CONFIG RESETSTAT``, so
``INFO commandstats`` holds that phase's commands only and EVALSHA is the phase's own
script(s):

- ``enqueue single``: ``q.enqueue(noop, i, "payload")`` one at a time (enqueue_batch.lua);
- ``enqueue bulk``: ``q.enqueue_many`` of all the jobs at once (enqueue_batch.lua);
- ``claim``, ``start``, ``end``: what a busy GeventWorker sends, run in-process in
  batches of 50 (claim.lua; start.lua; end_batch.lua with the worker's counters);
- ``busy workers``: real ``geventq worker --burst`` processes draining no-op jobs
  (claim + start + end mixed, heartbeats included), minus an empty run.

Per job it reports the scripts' execution time (EVALSHA, which includes the commands
the scripts run), the plain commands' (those no geventq script runs), and the Redis
main thread's CPU (``INFO cpu``: execution plus reading, parsing and replying) from
which the capacity of one core is computed. See bench/README.md.

With ``--cluster`` the server is a one-node Redis Cluster (``cluster-enabled yes``, all
16384 slots on it) reached through geventq's cluster client and ``geventq worker
--cluster`` (prefix ``{geventq}:``): a cluster shard's own cost per job, to compare
with the standalone figures of another run.

    python bench/redis_cost.py                 # 20,000 jobs per phase, 2 workers
    python bench/redis_cost.py --cluster       # the same on a one-node cluster
    python bench/redis_cost.py --quick         # a few hundred jobs: checks it works
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from _common import ROOT, base_parser, connect, fmt, print_table, private_redis, worker_env

from bench.jobs import noop
from geventq import Queue, lifecycle
from geventq.connection import get_connection
from geventq.execution import execute
from geventq.keys import Keys
from geventq.testing import RedisServer, free_cluster_port

BATCH = 50  # jobs per claim, start and end call, as a busy GeventWorker sends them
WORKER = "bench-cost"
SCRIPT_COMMANDS = ("evalsha", "eval", "evalsha_ro", "eval_ro")


def commands_run_by_scripts() -> set[str]:
    """Lower-case names of the commands geventq's Lua scripts call."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "geventq", "lua", "*.lua")):
        with open(path) as fh:
            names |= {m.lower() for m in re.findall(r"redis\.p?call\(\s*['\"](\w+)['\"]", fh.read())}
    return names


def snapshot(conn) -> tuple[dict, float]:
    """(commandstats, main-thread CPU seconds) of the server now."""
    cpu = conn.info("cpu")
    seconds = cpu.get("used_cpu_user_main_thread", cpu["used_cpu_user"]) + \
        cpu.get("used_cpu_sys_main_thread", cpu["used_cpu_sys"])
    return conn.info("commandstats"), seconds


def measure(conn, action: Callable[[], None]) -> tuple[dict[str, dict], float]:
    """Reset the statistics, run ``action``: (commandstats by command, main-thread CPU s)."""
    conn.config_resetstat()
    _, cpu0 = snapshot(conn)
    action()
    stats, cpu1 = snapshot(conn)
    by_command = {name.removeprefix("cmdstat_"): row for name, row in stats.items()
                  if not name.startswith(("cmdstat_info", "cmdstat_config"))}
    return by_command, cpu1 - cpu0


def minus(stats: dict[str, dict], base: dict[str, dict]) -> dict[str, dict]:
    """commandstats of a run minus those of an empty run."""
    out = {}
    for name, row in stats.items():
        calls = row["calls"] - base.get(name, {}).get("calls", 0)
        usec = row["usec"] - base.get(name, {}).get("usec", 0)
        if calls > 0:
            out[name] = {"calls": calls, "usec": usec, "usec_per_call": usec / calls}
    return out


def summarize(phase: str, jobs: int, stats: dict[str, dict], cpu: float,
              in_scripts: set[str]) -> dict:
    script = [row for name, row in stats.items() if name in SCRIPT_COMMANDS]
    plain = [row for name, row in stats.items()
             if name not in SCRIPT_COMMANDS and name.split("|")[0] not in in_scripts]
    calls = sum(r["calls"] for r in script)
    script_usec = sum(r["usec"] for r in script)
    return {"phase": phase, "jobs": jobs, "jobs_per_evalsha": jobs / calls if calls else float("nan"),
            "usec_per_evalsha": script_usec / calls if calls else float("nan"),
            "script_us": script_usec / jobs, "plain_us": sum(r["usec"] for r in plain) / jobs,
            "cpu_us": cpu * 1e6 / jobs, "stats": stats}


# -- the phases ---------------------------------------------------------------------------
def enqueue_single(queue: Queue, n: int) -> Callable[[], None]:
    return lambda: [queue.enqueue(noop, i, "payload") for i in range(n)]


def enqueue_bulk(queue: Queue, n: int) -> Callable[[], None]:
    prepare = Queue.prepare_data
    return lambda: queue.enqueue_many([prepare(noop, (i, "payload")) for i in range(n)])


def claim_all(queue: Queue, claimed: list) -> Callable[[], None]:
    def run() -> None:
        while True:
            batch = lifecycle.claim(queue.connection, queue.keys, [queue.name], WORKER, BATCH)
            if not batch:
                return
            claimed.append(batch)
    return run


def start_all(queue: Queue, claimed: list, started: list) -> Callable[[], None]:
    def run() -> None:
        for batch in claimed:
            started.append(lifecycle.start(queue.connection, queue.keys, WORKER, batch))
    return run


def end_all(queue: Queue, endings: list) -> Callable[[], None]:
    def run() -> None:
        worker_key = queue.keys.worker(WORKER)
        for batch in endings:
            counters = [("HINCRBY", worker_key, "successful", len(batch)),
                        ("HINCRBYFLOAT", worker_key, "working_time", "0.001")]
            lifecycle.end_jobs(queue.connection, queue.keys, WORKER, batch, extra_commands=counters)
    return run


@contextmanager
def one_node_cluster() -> Iterator[RedisServer]:
    """A redis-server in cluster mode owning every slot: a cluster of one shard."""
    server = RedisServer(port=free_cluster_port(),  # its bus port (+10000) must be valid too
                         args=["--cluster-enabled", "yes", "--cluster-config-file",
                               "nodes.conf"]).start()
    try:
        conn = connect(server)
        conn.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 30
        while b"cluster_state:ok" not in conn.execute_command("CLUSTER", "INFO"):
            if time.monotonic() > deadline:
                raise RuntimeError("the one-node cluster did not reach cluster_state:ok in 30 s")
            time.sleep(0.05)
        yield server
    finally:
        server.close()


def drain_with_workers(server, conn, workers: int, concurrency: int, cluster: bool = False) -> None:
    cmd = [sys.executable, "-m", "geventq", "worker", "--burst", "--logging-level", "WARNING",
           "--url", server.url, "-n", str(concurrency), *(["--cluster"] if cluster else []),
           "bench"]
    procs = [subprocess.Popen(cmd, env=worker_env(server), cwd=ROOT, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(workers)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"a worker exited {proc.returncode}: {err.decode()[-2000:]}")


def run_phases(server, n: int, workers: int, concurrency: int, cluster: bool = False) -> list[dict]:
    conn = connect(server)  # statistics and FLUSHDB: keyless commands, any client will do
    in_scripts = commands_run_by_scripts()
    if cluster:  # the jobs go through the cluster client, as in production
        queue = Queue("bench", connection=get_connection(server.url, cluster=True))
    else:
        queue = Queue("bench", connection=conn, keys=Keys())
    results = []

    def phase(name: str, action: Callable[[], None], jobs: int = n) -> None:
        stats, cpu = measure(conn, action)
        results.append(summarize(name, jobs, stats, cpu, in_scripts))

    conn.flushdb()
    queue.enqueue(noop)  # load the scripts before anything is measured
    for script in ("claim", "start", "end_batch"):
        conn.script_load(_script_text(script))
    conn.flushdb()
    phase("enqueue single", enqueue_single(queue, n))
    conn.flushdb()
    phase("enqueue bulk", enqueue_bulk(queue, n))
    claimed: list = []
    phase(f"claim (batches of {BATCH})", claim_all(queue, claimed))
    started: list = []
    phase(f"start (batches of {BATCH})", start_all(queue, claimed, started))
    endings = [[execute(job) for job in batch] for batch in started]
    phase(f"end (batches of {BATCH})", end_all(queue, endings))
    # real worker processes: an empty run first, whose cost (start-up, shutdown) is subtracted
    conn.flushdb()
    base, base_cpu = measure(conn, lambda: drain_with_workers(server, conn, workers, concurrency,
                                                              cluster))
    conn.flushdb()
    enqueue_bulk(queue, n)()
    stats, cpu = measure(conn, lambda: drain_with_workers(server, conn, workers, concurrency,
                                                          cluster))
    if len(queue) or queue.finished_job_registry.count != n:
        raise RuntimeError(f"the workers left {len(queue)} jobs queued and finished "
                           f"{queue.finished_job_registry.count} of {n}")
    results.append(summarize(f"busy workers ({workers} x GeventWorker -n {concurrency})", n,
                             minus(stats, base), cpu - base_cpu, in_scripts))
    return results


def _script_text(name: str) -> str:
    from geventq import scripts

    return scripts.source(name)[1]


def report(results: list[dict], version: str, cluster: bool = False) -> None:
    rows = [[r["phase"], r["jobs"], r["jobs_per_evalsha"], r["usec_per_evalsha"], r["script_us"],
             r["plain_us"], r["cpu_us"], 1e6 / r["cpu_us"] if r["cpu_us"] > 0 else float("nan")]
            for r in results]
    mode = ", a one-node Redis Cluster" if cluster else ""
    print_table(f"Redis cost per no-op job (redis-server {version}{mode}, one phase at a time)",
                ["phase", "jobs", "jobs/EVALSHA", "us/EVALSHA", "scripts us/job",
                 "plain cmds us/job", "Redis CPU us/job", "jobs/s per core"], rows)
    by = {r["phase"].split(" (")[0]: r for r in results}
    worker = results[-1]
    lines = []
    for mode in ("enqueue single", "enqueue bulk"):
        total = by[mode]["cpu_us"] + worker["cpu_us"]
        lines.append([f"{mode.split()[1]} enqueue + busy workers", total, 1e6 / total])
    print_table("Whole life of a job on one shard (enqueue + claim + start + end)",
                ["path", "Redis CPU us/job", "jobs/s per core"], lines)
    for r in results:
        top = sorted(r["stats"].items(), key=lambda kv: -kv[1]["usec"])[:6]
        detail = ", ".join(f"{name} {fmt(row['calls'] / r['jobs'])}/job x {fmt(row['usec_per_call'])} us"
                           for name, row in top)
        print(f"  {r['phase']}: {detail}")


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per phase")
    parser.add_argument("--workers", type=int, default=2, help="worker processes in the last phase")
    parser.add_argument("--concurrency", type=int, default=100, help="-n of each worker")
    parser.add_argument("--cluster", action="store_true",
                        help="run on a one-node Redis Cluster through the cluster client")
    opts = parser.parse_args()
    if opts.quick:
        opts.jobs, opts.workers = 300, 1
    with (one_node_cluster() if opts.cluster else private_redis()) as server:
        conn = connect(server)
        version = conn.info("server")["redis_version"]
        started = time.perf_counter()
        results = run_phases(server, opts.jobs, opts.workers, opts.concurrency, opts.cluster)
        report(results, version, opts.cluster)
        print(f"\n({opts.jobs} jobs per phase, {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
