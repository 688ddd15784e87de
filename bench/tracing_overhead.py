"""What OpenTelemetry tracing costs a worker: drain rate with tracing on against off.

Run from the project root:

    uv run python bench/tracing_overhead.py            # 1000 jobs per drain, 2 rounds
    uv run python bench/tracing_overhead.py --quick    # 200 jobs, 1 round
    uv run python bench/tracing_overhead.py --jobs 2000 --rounds 3 --pool gevent --concurrency 20

Each drain is bench/throughput.py's Tasklane drain (N `system.canary` jobs submitted with
no worker running, then a worker started; rate = N / first start -> last finish in the
ledger). Rounds alternate off/on so a change in machine load hits both sides; the medians
and their ratio are printed next to the target (on/off >= 0.9).

"On" is tracing as shipped: OTEL_ENABLED=true with the default sampling
(OTEL_TRACES_SAMPLE_RATE's default), spans and metrics exported over OTLP/HTTP to a local
receiver that decodes them (tests/support/otlp_receiver.py), as a collector would.
Redis is a private redis-server unless --redis-url is given.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import throughput as tp  # noqa: E402 - needs the project root on sys.path
from config import Settings  # noqa: E402
from tests.support.otlp_receiver import otlp_receiver  # noqa: E402

TARGET_RATIO = 0.9
CPU_PER_JOB = re.compile(r"worker CPU ([\d.]+) ms/job")
OTEL_KEYS = ("OTEL_ENABLED", "OTEL_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs (default 2)")
    ours, rest = parser.parse_known_args(argv)
    jobs_given = any(arg.startswith("--jobs") for arg in rest)
    if not any(arg.startswith("--redis-url") for arg in rest):
        # A redis-server of its own: throughput.py's default Redis db is shared with any
        # other benchmark running on this machine, whose workers would take our jobs.
        rest.append("--redis-url=private")
    args = tp.parse_args(rest + ["--skip-submit"])
    if not jobs_given:
        args.jobs = 200 if args.quick else 1000
    args.rounds = 1 if args.quick else max(1, ours.rounds)
    return args


def drain(
    label: str, flask_app: object, services: tp.Services, args: argparse.Namespace, tmp: Path
) -> tuple[float, float | None]:
    """Jobs/s, and the worker's CPU ms per job when throughput.py could measure it."""
    procs: list[tp.Proc] = []
    try:
        result = tp.drain_tasklane(flask_app, services, args, tmp, procs)  # type: ignore[arg-type]
    finally:
        for proc in procs:
            proc.stop()
    tp.flush_redis(services.redis_url)
    tp.say(f"    {label}: {result.rate:.1f} jobs/s ({result.cpu})")
    cpu = CPU_PER_JOB.search(result.cpu)
    return result.rate, float(cpu.group(1)) if cpu else None


def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="tasklane-tracing-bench-"))
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        with contextlib.ExitStack() as stack:
            receiver = stack.enter_context(otlp_receiver())
            services = tp.setup_database(args, stack, tmp)
            tp.setup_redis(args, services, stack, tmp)
            tp.say(f"    database: {services.database_note}")
            tp.say(f"    redis:    {services.redis_note}")
            for key in OTEL_KEYS:
                os.environ.pop(key, None)
            # The submitting process stays untraced: only the worker's cost is measured.
            flask_app = tp.build_app(services)
            stack.callback(tp._dispose_engine, flask_app)
            for round_ in range(1, args.rounds + 1):
                for side in ("off", "on"):
                    if side == "on":
                        os.environ.update(
                            OTEL_ENABLED="true",
                            OTEL_EXPORTER="otlp_http",
                            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                        )
                    else:
                        for key in OTEL_KEYS:
                            os.environ.pop(key, None)
                    tp.phase(f"round {round_}/{args.rounds}: tracing {side}")
                    rate, ms = drain(f"tracing {side}", flask_app, services, args, tmp)
                    rates[side].append(rate)
                    if ms is not None:
                        cpu[side].append(ms)
            spans = len(receiver.spans)
    except tp.BenchError as exc:
        tp.say(f"\nerror: {exc}\nlogs kept in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = on / off
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    tp.say("")
    tp.say(
        f"tracing overhead ({args.jobs} jobs per drain, {args.pool} x{args.concurrency}, "
        f"{args.rounds} round(s), load at start {args.load_at_start:.1f})"
    )
    default = Settings.model_fields["OTEL_TRACES_SAMPLE_RATE"].default
    sampling = os.environ.get("OTEL_TRACES_SAMPLE_RATE") or f"{default} (the default)"
    tp.say(f"  sampling: OTEL_TRACES_SAMPLE_RATE={sampling}")
    tp.say(
        f"  tracing off: {off:8.1f} jobs/s  (runs: {', '.join(f'{r:.1f}' for r in rates['off'])})"
    )
    tp.say(f"  tracing on:  {on:8.1f} jobs/s  (runs: {', '.join(f'{r:.1f}' for r in rates['on'])})")
    tp.say(f"  on/off ratio: {ratio:.3f}  ({verdict} the target >= {TARGET_RATIO})")
    if cpu["off"] and cpu["on"]:
        # Worker CPU per job barely moves with other load on the machine; jobs/s does.
        cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
        tp.say(
            f"  worker CPU per job: off {cpu_off:.2f} ms, on {cpu_on:.2f} ms "
            f"(off/on {cpu_off / cpu_on:.3f})"
        )
    tp.say(f"  spans received by the local OTLP receiver: {spans}")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args(sys.argv[1:])))
