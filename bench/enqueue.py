"""Enqueue rates: single ``q.enqueue`` and bulk ``enqueue_many``, geventq vs python-rq.

Both libraries run in the same process against the same private redis-server
(geventq in db 0, rq in db 1, each flushed before every measurement), with the
same job function and arguments. Bulk includes building the job descriptions
(``prepare_data``) on both sides; rq's bulk is ``enqueue_many`` in one pipeline.

    python bench/enqueue.py            # 3 runs, medians
    python bench/enqueue.py --quick    # a few dozen jobs: only checks it works
"""

from __future__ import annotations

from _common import (  # first: it puts the repository on sys.path for bench.jobs
    base_parser,
    connect,
    have_rq,
    median,
    print_table,
    private_redis,
    ratio,
    server_stats,
    timed,
)

from bench.jobs import noop
from geventq import Queue


def geventq_single(conn, n: int) -> float:
    q = Queue("bench", connection=conn)
    enqueue = q.enqueue
    return n / timed(lambda: [enqueue(noop, i, "payload") for i in range(n)])


def geventq_bulk(conn, n: int) -> float:
    q = Queue("bench", connection=conn)
    prepare = Queue.prepare_data
    return n / timed(lambda: q.enqueue_many([prepare(noop, (i, "payload")) for i in range(n)]))


def rq_single(conn, n: int) -> float:
    import rq

    q = rq.Queue("bench", connection=conn)
    enqueue = q.enqueue
    return n / timed(lambda: [enqueue(noop, i, "payload") for i in range(n)])


def rq_bulk(conn, n: int) -> float:
    import rq

    q = rq.Queue("bench", connection=conn)
    prepare = rq.Queue.prepare_data

    def run():
        with conn.pipeline() as pipe:
            q.enqueue_many([prepare(noop, (i, "payload")) for i in range(n)], pipeline=pipe)
            pipe.execute()
    return n / timed(run)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=3000, help="jobs enqueued one at a time")
    parser.add_argument("--bulk", type=int, default=20000, help="jobs per enqueue_many call")
    opts = parser.parse_args()
    if opts.quick:
        opts.runs, opts.single, opts.bulk = 1, 30, 50
    use_rq = have_rq() and not opts.no_rq
    results: dict[str, list[float]] = {}
    with private_redis() as server:
        ours, theirs = connect(server, 0), connect(server, 1)
        per_job: dict[str, float] = {}
        for _ in range(opts.runs):
            cases = [("geventq single", lambda: geventq_single(ours, opts.single), ours),
                     ("geventq bulk", lambda: geventq_bulk(ours, opts.bulk), ours)]
            if use_rq:
                cases += [("rq single", lambda: rq_single(theirs, opts.single), theirs),
                          ("rq bulk", lambda: rq_bulk(theirs, opts.bulk), theirs)]
            for name, case, conn in cases:
                conn.flushdb()
                before = server_stats(conn)
                results.setdefault(name, []).append(case())
                after = server_stats(conn)
                jobs = opts.single if "single" in name else opts.bulk
                per_job[name] = (after["reads"] - before["reads"] - 1) / jobs
    rows = []
    for kind in ("single", "bulk"):
        mine = median(results[f"geventq {kind}"])
        peer = median(results[f"rq {kind}"]) if use_rq else float("nan")
        rows.append([kind, mine, peer, ratio(mine, peer), per_job[f"geventq {kind}"],
                     per_job.get(f"rq {kind}", float("nan"))])
    print_table(f"enqueue rate, jobs/s (median of {opts.runs} run(s); "
                f"{opts.single} single, {opts.bulk} bulk)",
                ["mode", "geventq", "rq", "ratio", "geventq rt/job", "rq rt/job"], rows)


if __name__ == "__main__":
    main()
