"""Results without polling: `?wait=` against bare Celery `.delay().get()`, and SSE followers.

Run from the project root:

    uv run python bench/results.py              # 3 rounds x 200 jobs; 1,000 followers
    uv run python bench/results.py --quick      # 3 rounds x 50 jobs; 200 followers

1. Submit -> result visible, sequential no-op jobs, one client, in its two forms. Tasklane:
   `POST /api/v1/jobs` (`system.canary`), then `GET /api/v1/jobs/{id}?wait=10` on the same
   keep-alive connection; and the one request `POST /api/v1/jobs` with `Prefer: wait=10`
   (RFC 7240: it answers once the job ended); one gunicorn gevent worker and a `worker`
   prefork -c 1 on `dataset`. Bare Celery (bench/bare_results_app.py): `echo.delay().get()`
   with a Redis result backend, prefork -c 1 on the same Redis. Rounds interleave the sides;
   per round the p50 of each and their ratios; the median of the rounds is printed against
   the targets (p50 <= 5 ms, <= 1.5x).
2. F concurrent `GET /api/v1/jobs/{id}/events` followers on ONE gunicorn gevent worker, while
   J jobs (`tests.io_steps`) write progress every 0.5 s. The API process counts what it sends
   PostgreSQL (bench/gunicorn_stats.py); printed: statements/s while the jobs progress
   (after every follower got its first event, before any job ended) next to the same
   process with no follower, the notifications in and SSE events out meanwhile, and
   statements per follower over the whole run (connect; the end, once the jobs are
   cancelled). Followers connect in batches (--connect-batch), as clients arrive.

Services are the test suite's (tests/support/services.py), as for bench/throughput.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402

from app.services import api_keys  # noqa: E402
from bench import support  # noqa: E402
from bench.api_process import Client  # noqa: E402
from bench.api_process import api_stats  # noqa: E402
from bench.api_process import start_api  # noqa: E402
from bench.sse_followers import Followers  # noqa: E402
from bench.support import BenchError  # noqa: E402
from bench.support import say  # noqa: E402

API_START_TIMEOUT = 120.0
EXTRA_TASKS = {"TASKLANE_EXTRA_TASK_MODULES": "tests.integration.tasks"}
WAIT = 10
STEP_INTERVAL = 0.5


def tasklane_latencies(port: int, token: str, jobs: int) -> tuple[list[float], list[float]]:
    """Submit -> final answer of each job, and the POST's share of it."""
    client = Client(port, token)  # a fresh keep-alive connection: the last one idled out
    took, posts = [], []
    for _ in range(jobs):
        began = time.perf_counter()
        job_id = client.submit(support.CANARY, {"token": "bench"})
        posts.append(time.perf_counter() - began)
        job = client.call("GET", f"/api/v1/jobs/{job_id}?wait={WAIT}")
        took.append(time.perf_counter() - began)
        if job["state"] != "succeeded":
            raise BenchError(f"job {job_id} is {job['state']} after ?wait={WAIT}: {job}")
    client.close()
    return took, posts


def tasklane_prefer_latencies(port: int, token: str, jobs: int) -> list[float]:
    """Submit -> final answer in ONE request: `POST /jobs` with `Prefer: wait`."""
    client = Client(port, token)
    took = []
    prefer = {"Prefer": f"wait={WAIT}"}
    body = {"task": support.CANARY, "args": {"token": "bench"}}
    for _ in range(jobs):
        began = time.perf_counter()
        job = client.call("POST", "/api/v1/jobs", body, headers=prefer)
        took.append(time.perf_counter() - began)
        if job["state"] != "succeeded":
            raise BenchError(f"job {job['id']} is {job['state']} after Prefer: wait={WAIT}")
    client.close()
    return took


def bare_latencies(bare: Any, jobs: int) -> list[float]:
    took = []
    for _ in range(jobs):
        began = time.perf_counter()
        bare.echo.apply_async(("bench",), queue=bare.QUEUE).get(timeout=WAIT)
        took.append(time.perf_counter() - began)
    return took


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def wait_benchmark(
    app: Flask, services: support.Services, args: argparse.Namespace, tmp: Path, token: str
) -> list[tuple[float, float, float]]:
    """Per round (tasklane POST + ?wait= p50, bare p50, tasklane POST Prefer: wait p50), in s."""
    os.environ["BENCH_BROKER_URL"] = services.redis_url
    from bench import bare_results_app as bare

    env = support.tasklane_env(services, **EXTRA_TASKS)
    ours = support.celery_worker(
        "app.celery",
        "tasklane",
        pool="prefork",
        concurrency=1,
        queues="dataset",
        env=env,
        log_dir=tmp,
    )
    theirs = support.celery_worker(
        "bench.bare_results_app",
        "bare",
        pool="prefork",
        concurrency=1,
        queues="dataset",
        env={**os.environ},
        log_dir=tmp,
    )
    api, port, _ = start_api(services, tmp, EXTRA_TASKS)
    rounds: list[tuple[float, float, float]] = []
    try:
        # The bare worker consumes `dataset` too: only one side's worker runs at a time.
        for number in range(1, args.rounds + 1):
            support.phase(f"wait round {number} of {args.rounds}: tasklane, then bare celery")
            ours.start(app.extensions["celery"])
            tasklane_latencies(port, token, args.warmup)
            mine, posts = tasklane_latencies(port, token, args.jobs)
            tasklane_prefer_latencies(port, token, args.warmup)
            single = tasklane_prefer_latencies(port, token, args.jobs)
            ours.stop()
            theirs.start(bare.app)
            bare_latencies(bare, args.warmup)
            other = bare_latencies(bare, args.jobs)
            theirs.stop()
            say(
                f"    tasklane POST + ?wait=: p50 {_ms(mine, 0.5):.2f} ms (POST alone "
                f"{_ms(posts, 0.5):.2f}), p90 {_ms(mine, 0.9):.2f} ms | tasklane POST Prefer: "
                f"wait: p50 {_ms(single, 0.5):.2f} ms, p90 {_ms(single, 0.9):.2f} ms | bare "
                f".delay().get(): p50 {_ms(other, 0.5):.2f} ms, p90 {_ms(other, 0.9):.2f} ms | "
                f"ratios {_ms(mine, 0.5) / _ms(other, 0.5):.2f}x, "
                f"{_ms(single, 0.5) / _ms(other, 0.5):.2f}x"
            )
            rounds.append(
                (statistics.median(mine), statistics.median(other), statistics.median(single))
            )
    finally:
        ours.stop()
        theirs.stop()
        api.stop()
    return rounds


def follower_benchmark(
    services: support.Services, args: argparse.Namespace, tmp: Path, token: str
) -> dict[str, float]:
    env = support.tasklane_env(services, **EXTRA_TASKS)
    worker = support.celery_worker(
        "app.celery",
        "tasklane-io",
        pool="gevent",
        concurrency=max(10, args.progress_jobs),
        queues="generation",
        env=env,
        log_dir=tmp,
    )
    api, port, stats_dir = start_api(services, tmp, EXTRA_TASKS)
    followers: Followers | None = None
    try:
        client = Client(port, token)
        steps = int(args.progress_seconds / STEP_INTERVAL)
        marker_dir = tmp / "markers"
        marker_dir.mkdir(exist_ok=True)
        body = {"count": steps, "interval": STEP_INTERVAL, "marker_dir": str(marker_dir)}
        # Queued with no worker yet: the followers connect before the jobs run, so the jobs'
        # time limit (tests.io_steps: 60 s) is spent progressing, not waiting for them.
        job_ids = [client.submit("tests.io_steps", body) for _ in range(args.progress_jobs)]
        client.close()
        support.phase(f"followers: none yet, {args.window:.0f} s of the idle API process")
        idle_from = api_stats(stats_dir)
        time.sleep(args.window)
        before_connect = api_stats(stats_dir)
        support.phase(f"followers: {args.followers} on {len(job_ids)} queued jobs, one API process")
        followers = Followers(port, token)
        wanted = [job_ids[i % len(job_ids)] for i in range(args.followers)]
        # In batches, as clients arrive: connecting costs each one an API-key check and a
        # read, and a thousand at once would only measure the pool's queue.
        for start in range(0, len(wanted), args.connect_batch):
            followers.connect(wanted[start : start + args.connect_batch])
            deadline = time.monotonic() + API_START_TIMEOUT
            while followers.first_events() < min(len(wanted), start + args.connect_batch):
                if time.monotonic() > deadline:
                    raise BenchError(f"only {followers.first_events()} followers got an event")
                time.sleep(0.05)
        connected = api_stats(stats_dir)
        say(
            f"    connected: {connected['followers']} followers; connecting cost "
            f"{connected['statements'] - before_connect['statements']} statements, "
            f"{connected['checkouts'] - before_connect['checkouts']} pool checkouts"
        )
        support.phase(f"followers: starting worker {' '.join(worker.command[3:])}")
        worker.spawn()
        # Every job's `started` reached the API (one notification each, fanned out).
        deadline = time.monotonic() + API_START_TIMEOUT
        while followers.events() < args.followers * 3:  # queued, started, a progress
            if time.monotonic() > deadline:
                raise BenchError(f"the jobs did not start; {support.tail(worker)}")
            time.sleep(0.1)
        connected = api_stats(stats_dir)
        events_before = followers.events()
        time.sleep(args.window)  # the measured window: the jobs progress, nobody ends
        window = api_stats(stats_dir)
        events_in_window = followers.events() - events_before
        ended_early = followers.ended()
        if window["received"] == connected["received"]:
            raise BenchError("no notification reached the API in the window: jobs not running?")
        support.phase("followers: cancelling the jobs; each follower reads its job once more")
        client = Client(port, token)
        for job_id in job_ids:
            client.call("POST", f"/api/v1/jobs/{job_id}/cancel", ok=(409,))
        client.close()
        deadline = time.monotonic() + API_START_TIMEOUT
        while followers.ended() < args.followers:
            if time.monotonic() > deadline:
                raise BenchError(f"only {followers.ended()} followers saw their job end")
            time.sleep(0.2)
        done = api_stats(stats_dir)
    finally:
        if followers is not None:
            followers.close()
        worker.stop()
        api.stop()
    seconds = window["at"] - connected["at"]

    def rate(key: str, begin: dict[str, Any], end: dict[str, Any]) -> float:
        return float(end[key] - begin[key]) / (end["at"] - begin["at"])

    return {
        "idle_statements_per_s": rate("statements", idle_from, before_connect),
        "idle_ends_per_s": rate("ends", idle_from, before_connect),
        "ends_per_s": rate("ends", connected, window),
        "followers": args.followers,
        "jobs": len(job_ids),
        "window_s": seconds,
        "statements_per_s": (window["statements"] - connected["statements"]) / seconds,
        "checkouts_per_s": (window["checkouts"] - connected["checkouts"]) / seconds,
        "notifications_per_s": (window["received"] - connected["received"]) / seconds,
        "events_per_s": events_in_window / seconds,
        "ended_in_window": ended_early,
        "statements_per_follower": (done["statements"] - before_connect["statements"])
        / args.followers,
        "poller_statements_per_s": args.followers / 0.25,
    }


def report(rounds: list[tuple[float, float, float]], follow: dict[str, float] | None) -> None:
    load = os.getloadavg()
    say("")
    say(f"Results without polling (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})")
    if rounds:
        mine = statistics.median(r[0] for r in rounds) * 1e3
        other = statistics.median(r[1] for r in rounds) * 1e3
        single = statistics.median(r[2] for r in rounds) * 1e3
        ratio = statistics.median(r[0] / r[1] for r in rounds)
        single_ratio = statistics.median(r[2] / r[1] for r in rounds)
        say(
            f"  submit -> result visible, sequential (targets p50 <= 5 ms, <= 1.5x bare), "
            f"medians of {len(rounds)} interleaved rounds: bare .delay().get() p50 "
            f"{other:.2f} ms; tasklane POST + GET ?wait= p50 {mine:.2f} ms ({ratio:.2f}x); "
            f"tasklane POST with Prefer: wait p50 {single:.2f} ms ({single_ratio:.2f}x)"
        )
    if follow:
        say(
            f"  {follow['followers']:.0f} SSE followers on {follow['jobs']:.0f} progressing jobs, "
            f"one API process, {follow['window_s']:.1f} s window: "
            f"{follow['statements_per_s']:.1f} statements/s + {follow['ends_per_s']:.1f} "
            f"COMMIT/ROLLBACK/s, {follow['checkouts_per_s']:.1f} pool checkouts/s (the same "
            f"process with no follower: {follow['idle_statements_per_s']:.1f} + "
            f"{follow['idle_ends_per_s']:.1f}); "
            f"{follow['notifications_per_s']:.0f} notifications/s in, "
            f"{follow['events_per_s']:.0f} SSE events/s out"
        )
        say(
            f"    whole run: {follow['statements_per_follower']:.1f} statements per follower "
            "(connecting: key lookup, access check, one read; the end: one read); the "
            "replaced 0.25 s poller: "
            f"{follow['poller_statements_per_s']:.0f} SELECTs/s for as many followers"
        )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=200, help="timed jobs per side per round")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--progress-jobs", type=int, default=20)
    # Under tests.io_steps' 60 s time limit; the jobs are cancelled after the window.
    parser.add_argument("--progress-seconds", type=float, default=50.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--connect-batch", type=int, default=50)
    parser.add_argument("--skip-wait", action="store_true")
    parser.add_argument("--skip-followers", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.warmup, args.followers, args.window = 50, 10, 200, 5.0
        args.progress_jobs = 10
    return args


def run(args: argparse.Namespace) -> int:
    def body(tmp: Path) -> None:
        with contextlib.ExitStack() as stack:
            services, app = support.services_and_app(stack, tmp)
            with app.app_context():
                _key, token = api_keys.create("bench-results")
            rounds = [] if args.skip_wait else wait_benchmark(app, services, args, tmp, token)
            follow = None if args.skip_followers else follower_benchmark(services, args, tmp, token)
            report(rounds, follow)

    return support.run_in_tmp("tasklane-bench-results-", args.keep_logs, body)


if __name__ == "__main__":
    sys.exit(run(parse_args(sys.argv[1:])))
