"""Tasklane throughput benchmark: worker drain rate against bare Celery, and API submissions.

Run from the project root:

    uv run python bench/throughput.py              # N=2000 jobs, 2000 requests, 16 clients
    uv run python bench/throughput.py --quick      # smoke run: 200 jobs, 200 requests
    uv run python bench/throughput.py --skip-submit --synchronous-commit   # durable finishes
    uv run python bench/throughput.py --jobs 5000 --pool prefork --concurrency 2

What it measures (it is not a test; it prints figures):

1. Drain throughput. N jobs are enqueued with no worker running, then a worker is started
   and drains them.
   a) Tasklane, ledger on, production settings: jobs are submitted through
      `app.services.jobs.submit` (each gets its ledger row), a `celery -A app.celery`
      worker runs `system.canary`. Rate = N / (first ledger `started_at` -> last
      `finished_at`), so worker start-up is excluded.
   b) Bare Celery (`bench/bare_celery_app.py`): same broker, JSON, acks_late, prefetch 1,
      same pool, concurrency and queue, a no-op task. Rate = N / (first task start -> the
      finish of the task that counted the N-th run).
   Both run back to back in each of --rounds rounds (default 3), so a drift in the machine's
   speed hits both sides alike; the median of the rounds' ratios Tasklane/bare is printed
   next to its target (>= 0.8x).
2. Submission: bench/submit.py (POST /api/v1/jobs against a bare INSERT-then-.delay()
   endpoint under the same gunicorn, at 16 and 64 clients, interleaved rounds; statements
   per request; POST /jobs/batch jobs/s). `--skip-drain` runs only this part.

Services are the test suite's (tests/support/services.py): a claimed database index of the
Redis at 127.0.0.1:6379 or an embedded redis-server, and a fresh PostgreSQL database or a
temporary SQLite file, all removed at the end; REDIS_URL, DATABASE_URL,
TASKLANE_TEST_PG_ADMIN and TASKLANE_TEST_EMBEDDED=1 choose others, as for the tests.

Each drain also prints who used the CPU while it ran (worker, its PostgreSQL backends,
Redis) and the worker's CPU ms per job, which moves far less than jobs/s when other work
shares the machine. The submission run is preceded by 2 x C uncounted warm-up requests,
and starts only once every gunicorn worker has loaded the app (bench/gunicorn_ready.py).
Worker and API logs go to a temporary directory, kept (and named) when the run fails
(or with --keep-logs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# `python bench/throughput.py` puts bench/ on sys.path, not the project root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from bench import submit  # noqa: E402
from bench import support  # noqa: E402
from bench.cpu import CpuWindow  # noqa: E402
from bench.drain import DrainResult  # noqa: E402
from bench.drain import drain_as_asked  # noqa: E402
from bench.drain import enqueue  # noqa: E402
from bench.support import BenchError  # noqa: E402
from bench.support import Progress  # noqa: E402
from bench.support import say  # noqa: E402

TARGET_RATIO = 0.8
SUBMIT_PATH = "/api/v1/jobs"
API_WORKERS = 2
API_START_TIMEOUT = 120.0
REQUEST_TIMEOUT = 30.0


def drain_bare(services: support.Services, args: argparse.Namespace, tmp: Path) -> DrainResult:
    n: int = args.jobs
    client = redis.Redis.from_url(services.redis_url, socket_connect_timeout=2)
    client.flushdb()
    os.environ.update(BENCH_BROKER_URL=services.redis_url, BENCH_JOBS=str(n))
    from bench import bare_celery_app as bare

    if bare.BROKER_URL != services.redis_url:
        raise BenchError("bench.bare_celery_app was imported before its broker was configured")
    support.phase(f"bare celery: enqueueing {n} {bare.TASK_NAME} jobs (no worker running)")
    queue = args.queues.split(",")[0]
    enqueue_seconds = enqueue(n, lambda: bare.noop.apply_async(queue=queue))

    worker = support.celery_worker(
        "bench.bare_celery_app",
        "bare",
        pool=args.pool,
        concurrency=args.concurrency,
        queues=args.queues,
        env=dict(os.environ),
        log_dir=tmp,
        prefetch=args.prefetch,
    )
    support.phase(f"bare celery: starting worker: {' '.join(worker.command[1:])}")
    spawned = time.time()
    worker.spawn()
    assert worker.process is not None
    progress = Progress("ran", n)
    cpu = CpuWindow(worker.process.pid, services.database_url, n)

    def drained() -> bool:
        if worker.process is not None and worker.process.poll() is not None:
            raise BenchError(f"the bare worker exited; {support.tail(worker)}")
        count = int(client.get(bare.COUNT_KEY) or 0)
        progress.update(count)
        cpu.observe(count)
        return count >= n and client.get(bare.LAST_KEY) is not None

    try:
        support.poll(drained, progress, lambda: support.tail(worker))
        cpu.close()
        first = float(client.get(bare.FIRST_KEY) or 0)
        last = float(client.get(bare.LAST_KEY) or 0)
    finally:
        worker.stop()
        client.close()
    return DrainResult(
        "bare celery", n, enqueue_seconds, first - spawned, last - first, cpu.describe()
    )


def report(
    args: argparse.Namespace,
    services: support.Services,
    drains: list[tuple[DrainResult, DrainResult]],
) -> None:
    say("")
    say("=" * 78)
    say("Tasklane throughput")
    say(f"  services: {services.describe()}")
    say(f"  code: {code_version()}  cpus: {os.cpu_count()}  python {sys.version.split()[0]}")
    # The end value includes this run's own processes; only the start says who else ran.
    say(
        f"  load average (1 min): {args.load_at_start:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end"
    )
    if args.load_at_start > (os.cpu_count() or 1) / 2:
        say("  WARNING: other work was running on this machine; the figures below are noisy")
    if drains:
        say("")
        say(
            f"Drain: {args.jobs} no-op jobs, worker -P {args.pool} -c {args.concurrency} "
            f"-Q {args.queues} (rate = jobs / first start -> last finish)"
        )
        for number, pair in enumerate(drains, start=1):
            say(f"  round {number}")
            for result in pair:
                say(
                    f"  {result.label:<22} {result.rate:8.1f} jobs/s   "
                    f"span {result.span_seconds:6.2f}s   (enqueue {result.enqueue_seconds:5.2f}s, "
                    f"worker start-up {result.startup_seconds:4.1f}s, excluded)"
                )
                say(f"    {result.cpu}")
            say(f"  {'ratio tasklane/bare':<22} {pair[0].rate / pair[1].rate:8.2f}x")
        # Each round's two drains run back to back, so the machine's speed, which drifts
        # on a shared host, is about the same for both; the median round is the figure.
        ratio = statistics.median(tasklane.rate / bare.rate for tasklane, bare in drains)
        verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
        say(
            f"  median ratio over {len(drains)} round(s): {ratio:.2f}x   "
            f"(tasklane {statistics.median(t.rate for t, _ in drains):.1f} jobs/s, "
            f"bare {statistics.median(b.rate for _, b in drains):.1f} jobs/s)   "
            f"target >= {TARGET_RATIO:.2f}x  -> {verdict}"
        )
    say("=" * 78)


def code_version() -> str:
    """The checked-out commit (read-only: no `git status`, which may rewrite the index)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown commit"
    return f"commit {done.stdout.strip()} (plus any uncommitted changes)"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Tasklane drain throughput vs bare Celery, and API submission throughput.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=2000, help="jobs to drain per side (N)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="tasklane/bare drain pairs; the median ratio counts"
    )
    submit.add_arguments(parser)
    parser.add_argument("--pool", default="prefork", help="worker pool, both sides")
    parser.add_argument("--concurrency", type=int, default=2, help="worker concurrency")
    parser.add_argument("--queues", default="dataset", help="queue(s) the workers consume")
    parser.add_argument(
        "--prefetch",
        type=int,
        help="prefetch multiplier, both sides (default: each app's own, 1 on both)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 jobs, 200 requests")
    parser.add_argument(
        "--synchronous-commit",
        action="store_true",
        help="Tasklane worker with LEDGER_SYNCHRONOUS_COMMIT=true (an fsync per finished job)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep worker and API logs")
    parser.add_argument("--skip-drain", action="store_true", help="only the submission run")
    parser.add_argument("--skip-submit", action="store_true", help="only the drains")
    args = parser.parse_args(argv)
    args.load_at_start = os.getloadavg()[0]
    args.client_counts = [int(c) for c in args.client_counts.split(",")]
    if args.quick:
        args.jobs, args.requests, args.rounds, args.batches = 200, 300, 1, 2
    if min(args.jobs, args.requests, *args.client_counts, args.concurrency, args.rounds) < 1:
        parser.error("--jobs, --requests, --client-counts, --concurrency, --rounds: positive")
    if args.queues.split(",")[0] != "dataset":
        parser.error("the canary is submitted to its declared queue `dataset`; include it first")
    return args


def run(args: argparse.Namespace) -> int:
    def body(tmp: Path) -> None:
        with contextlib.ExitStack() as stack:
            services, app = support.services_and_app(stack, tmp)
            drains: list[tuple[DrainResult, DrainResult]] = []
            extra = {"LEDGER_SYNCHRONOUS_COMMIT": "true"} if args.synchronous_commit else {}
            label = "tasklane (sync commit)" if args.synchronous_commit else "tasklane (ledger on)"
            for number in range(1, (0 if args.skip_drain else args.rounds) + 1):
                support.phase(f"drain round {number} of {args.rounds}")
                tasklane = drain_as_asked(
                    app, services, args, queues=args.queues, log_dir=tmp, label=label, **extra
                )
                drains.append((tasklane, drain_bare(services, args, tmp)))
            report(args, services, drains)
            if not args.skip_submit:
                support.phase("submission (bench/submit.py)")
                submit.run(app, services, args, tmp)

    return support.run_in_tmp("tasklane-bench-", args.keep_logs, body)


def main(argv: list[str]) -> int:
    # A SIGTERM to the benchmark cleans up like Ctrl-C does.
    def on_term(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
