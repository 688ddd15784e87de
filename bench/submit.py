"""Submission benchmark: POST /api/v1/jobs against a bare Flask endpoint, and POST /jobs/batch.

    uv run python bench/submit.py                 # 3 rounds, 2000 requests, 16 and 64 clients
    uv run python bench/submit.py --quick         # smoke run
    uv run python bench/throughput.py --skip-drain  # the same, from the throughput bench

Two servers run side by side, started by the same gunicorn command (`-k gevent -w 2`, no
other setting): Tasklane (`app:create_app()`, production settings) and the bare endpoint of
`bench/bare_celery_app.py` (one INSERT in BEGIN/COMMIT, then `.delay()`). Each round drives
Tasklane then bare at 16 clients, then both at 64 (keep-alive connections over 127.0.0.1),
so a drift in the machine's speed hits both alike; ratios are medians over the rounds.
Then one client POSTs batches of --batch-size jobs to /jobs/batch (jobs accepted per s).

Statements per request are counted in each server (bench/gunicorn_ready.py, SQLAlchemy
events incl. the driver's BEGIN/COMMIT and pre-pings) and printed with the figures; the
ledger check compares the rows written with the 202s answered.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402
from sqlalchemy import func  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.extensions.ext_database import db  # noqa: E402
from app.models import Job  # noqa: E402
from app.services import api_keys  # noqa: E402
from bench import support  # noqa: E402
from bench.submit_load import BATCH_PATH  # noqa: E402
from bench.submit_load import SUBMIT_PATH  # noqa: E402
from bench.submit_load import SubmitResult  # noqa: E402
from bench.submit_load import batch_rate  # noqa: E402
from bench.submit_load import drive  # noqa: E402
from bench.support import BenchError  # noqa: E402
from bench.support import say  # noqa: E402
from tests.support.services import free_port  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

API_WORKERS = 2
API_START_TIMEOUT = 120.0
TARGET_RATIO = 0.8
TARGET_TAIL = 3.0  # p99 at 64 clients <= 3 x p50
TARGET_BATCH_RATE = 5000.0


@dataclass
class Server:
    label: str
    process: WorkerProcess
    port: int
    stats_dir: Path

    def statements(self) -> dict[str, int]:
        """Summed over its workers; read after the server stopped (written at worker exit)."""
        total: dict[str, int] = {}
        for path in self.stats_dir.glob("*.json"):
            for key, value in json.loads(path.read_text()).items():
                total[key] = total.get(key, 0) + int(value)
        return total


def start_server(label: str, target: str, env: dict[str, str], tmp: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", str(API_WORKERS)]
    command += ["-b", f"127.0.0.1:{port}", "--no-control-socket", target]
    # Only hooks: a readiness marker per worker, and the statement counter (see that file).
    command += ["-c", str(ROOT / "bench" / "gunicorn_ready.py")]
    ready, stats = tmp / f"{label}-ready", tmp / f"{label}-stats"
    ready.mkdir()
    stats.mkdir()
    support.phase(f"{label}: starting " + " ".join(command[1:]))
    env = {**env, "BENCH_READY_DIR": str(ready), "BENCH_STATS_DIR": str(stats)}
    process = WorkerProcess(f"gunicorn-{label}", command, env=env, log_dir=tmp)
    started = time.monotonic()
    process.spawn()
    deadline = started + API_START_TIMEOUT
    while not (len(list(ready.iterdir())) >= API_WORKERS and support.api_healthy(port)):
        if (process.process and process.process.poll() is not None) or time.monotonic() > deadline:
            process.stop()
            raise BenchError(f"{label} gunicorn did not come up; {support.tail(process)}")
        time.sleep(support.POLL_INTERVAL)
    say(f"    {API_WORKERS} workers ready after {time.monotonic() - started:.1f}s")
    return Server(label, process, port, stats)


def run(app: Flask, services: support.Services, args: argparse.Namespace, tmp: Path) -> None:
    support.flush_redis(app)
    with app.app_context():
        key, token = api_keys.create("bench")
        key_id = key.id
    from bench import bare_celery_app as bare

    bare_engine = create_engine(services.database_url)
    bare.metadata.create_all(bare_engine)
    env = support.tasklane_env(services)
    bare_env = {**env, "BENCH_BROKER_URL": services.redis_url}
    bare_env["BENCH_DATABASE_URL"] = services.database_url
    servers = [start_server("tasklane", "app:create_app()", env, tmp)]
    results: dict[tuple[str, int], list[SubmitResult]] = {}
    batches: list[float] = []
    accepted = {"tasklane": 0, "bare": 0}
    try:
        servers.append(start_server("bare", "bench.bare_celery_app:api", bare_env, tmp))
        for server in servers:
            support.phase(f"{server.label}: warm-up, {args.clients * 2} requests (not counted)")
            warm = drive(server.port, token, max(args.client_counts) * 2, max(args.client_counts))
            if warm.non_202:
                raise BenchError(f"{server.label} warm-up got {warm.statuses}")
            accepted[server.label] += warm.requests
        for number in range(1, args.rounds + 1):
            for clients in args.client_counts:
                for server in servers:
                    support.phase(
                        f"round {number}/{args.rounds}: {server.label}, POST {SUBMIT_PATH} x "
                        f"{args.requests}, {clients} keep-alive clients"
                    )
                    result = drive(server.port, token, args.requests, clients)
                    results.setdefault((server.label, clients), []).append(result)
                    accepted[server.label] += result.statuses.get("202", 0)
            support.phase(f"round {number}: POST {BATCH_PATH}, {args.batches} x {args.batch_size}")
            rate, count = batch_rate(servers[0].port, token, args.batch_size, args.batches)
            batches.append(rate)
            accepted["tasklane"] += count
    finally:
        for server in servers:
            server.process.stop()
    with app.app_context():
        rows = db.session.scalar(
            select(func.count()).select_from(Job).where(Job.api_key_id == key_id)
        )
        db.session.rollback()
    with bare_engine.connect() as conn:
        bare_rows = conn.scalar(select(func.count()).select_from(bare.bare_jobs))
    bare_engine.dispose()
    report(args, results, batches, servers, accepted, {"tasklane": rows, "bare": bare_rows})


def report(
    args: argparse.Namespace,
    results: dict[tuple[str, int], list[SubmitResult]],
    batches: list[float],
    servers: list[Server],
    accepted: dict[str, int],
    rows: dict[str, int | None],
) -> None:
    say("")
    say(
        f"Submission: POST {SUBMIT_PATH} ({support.CANARY}), gunicorn -k gevent -w {API_WORKERS}, "
        f"{args.requests} requests per run, {args.rounds} interleaved round(s), medians"
    )
    say(f"  {'':<10} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-202':>8}")
    for clients in args.client_counts:
        rates = {}
        for label in ("tasklane", "bare"):
            runs = results.get((label, clients), [])
            rates[label] = statistics.median(r.rate for r in runs)
            p50 = statistics.median(r.quantile(50) for r in runs) * 1e3
            p99 = statistics.median(r.quantile(99) for r in runs) * 1e3
            bad = sum(r.non_202 for r in runs)
            say(f"  {label:<10} {clients:>7} {rates[label]:8.1f} {p50:8.1f} {p99:8.1f} {bad:>8}")
        ratios = [
            t.rate / b.rate
            for t, b in zip(results[("tasklane", clients)], results[("bare", clients)], strict=True)
        ]
        ratio = statistics.median(ratios)
        verdict = "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"
        say(
            f"  ratio tasklane/bare at {clients} clients: {ratio:.2f}x (rounds: "
            f"{', '.join(f'{r:.2f}' for r in ratios)})  target >= {TARGET_RATIO}x -> {verdict}"
        )
    most = max(args.client_counts)
    tails = [r.quantile(99) / r.quantile(50) for r in results[("tasklane", most)]]
    tail = statistics.median(tails)
    verdict = "OK" if tail <= TARGET_TAIL else "ABOVE TARGET"
    say(f"  tasklane p99/p50 at {most} clients: {tail:.2f}  target <= {TARGET_TAIL} -> {verdict}")
    for server in servers:
        counts = server.statements()
        requests = counts.get("requests", 0)
        if requests:
            per = counts.get("request_statements", 0) / requests
            background = counts.get("background_statements", 0) / max(1, accepted[server.label])
            say(
                f"  statements per request, {server.label}: {per:.2f} in the request "
                f"(+{background:.3f} per accepted job in the background: relay, confirmations)"
                f" over {requests} requests"
            )
        else:
            say(f"  statements per request, {server.label}: not recorded (worker exit hook)")
    for label in ("tasklane", "bare"):
        say(f"  ledger check, {label}: {rows[label]} rows for {accepted[label]} accepted jobs")
    rate = statistics.median(batches)
    verdict = "OK" if rate >= TARGET_BATCH_RATE else "BELOW TARGET"
    say(
        f"Batch: POST {BATCH_PATH}, {args.batch_size} jobs per request, one client: "
        f"{rate:,.0f} jobs/s accepted (rounds: {', '.join(f'{b:,.0f}' for b in batches)})  "
        f"target >= {TARGET_BATCH_RATE:,.0f} -> {verdict}"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=2000, help="POST /jobs requests per run")
    parser.add_argument(
        "--client-counts", default="16,64", help="keep-alive client counts, comma-separated"
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="jobs per batch request")
    parser.add_argument("--batches", type=int, default=5, help="batch requests per round")


def main(argv: list[str]) -> int:
    import contextlib
    import os
    import shutil
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round, 300 requests")
    parser.add_argument("--keep-logs", action="store_true")
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.client_counts = [int(c) for c in args.client_counts.split(",")]
    args.clients = max(args.client_counts)
    if args.quick:
        args.rounds, args.requests, args.batches = 1, 300, 2
    load = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="tasklane-submit-bench-"))
    failed = True
    try:
        with contextlib.ExitStack() as stack:
            services = support.start_services(stack, tmp)
            app = support.build_app(services)
            stack.callback(support.dispose, app)
            run(app, services, args, tmp)
            failed = False
    except BenchError as exc:
        say(f"\nerror: {exc}")
        return 1
    finally:
        end = os.getloadavg()[0]
        say(f"  load average (1 min): {load:.2f} at start, {end:.2f} at end")
        if failed or args.keep_logs:
            say(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
