"""What OpenTelemetry tracing costs a worker: drain rate with tracing on against off.

Run from the project root:

    uv run python bench/tracing_overhead.py            # 1000 jobs per drain, 2 rounds
    uv run python bench/tracing_overhead.py --quick    # 200 jobs, 1 round
    uv run python bench/tracing_overhead.py --jobs 2000 --rounds 3 --pool gevent --concurrency 20

Each drain is the Tasklane drain of bench/support.py that bench/throughput.py also runs (N
`system.canary` jobs submitted with no worker running, then a worker started; rate = N /
first start -> last finish in the ledger). Rounds alternate off/on so a change in machine
load hits both sides; the medians and their ratio are printed next to the target (on/off >= 0.9).

"On" is tracing as shipped: OTEL_ENABLED=true with the default sampling
(OTEL_TRACES_SAMPLE_RATE's default), spans and metrics exported over OTLP/HTTP to a local
receiver that decodes them (tests/support/otlp_receiver.py), as a collector would.
Services are the test suite's (tests/support/services.py), as for bench/throughput.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.settings import ObservabilitySettings  # noqa: E402
from bench import support  # noqa: E402 - needs the project root on sys.path
from bench.drain import drain_as_asked  # noqa: E402
from tests.support.otlp_receiver import otlp_receiver  # noqa: E402

TARGET_RATIO = 0.9


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--jobs", type=int, help="jobs per drain (default 1000, --quick 200)")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs (default 2)")
    parser.add_argument("--pool", default="prefork", help="worker pool")
    parser.add_argument("--concurrency", type=int, default=2, help="worker concurrency")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 jobs, 1 round")
    args = parser.parse_args(argv)
    args.jobs = args.jobs or (200 if args.quick else 1000)
    args.rounds = 1 if args.quick else max(1, args.rounds)
    args.load_at_start = os.getloadavg()[0]
    return args


def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="tasklane-tracing-bench-"))
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        with contextlib.ExitStack() as stack:
            receiver = stack.enter_context(otlp_receiver())
            services = support.start_services(stack, tmp)
            support.say(f"    {services.describe()}")
            # The submitting process stays untraced: only the worker's cost is measured.
            app = support.build_app(services)
            stack.callback(support.dispose, app)
            on = {
                "OTEL_ENABLED": "true",
                "OTEL_EXPORTER": "otlp_http",
                "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            }
            for round_ in range(1, args.rounds + 1):
                for side in ("off", "on"):
                    support.phase(f"round {round_}/{args.rounds}: tracing {side}")
                    result = drain_as_asked(
                        app,
                        services,
                        args,
                        queues="dataset",
                        log_dir=tmp,
                        label=f"tracing {side}",
                        **(on if side == "on" else {}),
                    )
                    support.say(f"    tracing {side}: {result.rate:.1f} jobs/s ({result.cpu})")
                    rates[side].append(result.rate)
                    if result.cpu_ms_per_job is not None:
                        cpu[side].append(result.cpu_ms_per_job)
            spans = len(receiver.spans)
    except support.BenchError as exc:
        support.say(f"\nerror: {exc}\nlogs kept in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    off, on_rate = statistics.median(rates["off"]), statistics.median(rates["on"])
    ratio = on_rate / off
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    say = support.say
    say("")
    say(
        f"tracing overhead ({args.jobs} jobs per drain, {args.pool} x{args.concurrency}, "
        f"{args.rounds} round(s), load at start {args.load_at_start:.1f})"
    )
    default = ObservabilitySettings.model_fields["otel_traces_sample_rate"].default
    sampling = os.environ.get("OTEL_TRACES_SAMPLE_RATE") or f"{default} (the default)"
    say(f"  sampling: OTEL_TRACES_SAMPLE_RATE={sampling}")
    for side, rate in (("off", off), ("on", on_rate)):
        runs = ", ".join(f"{r:.1f}" for r in rates[side])
        say(f"  tracing {side + ':':<4} {rate:8.1f} jobs/s  (runs: {runs})")
    say(f"  on/off ratio: {ratio:.3f}  ({verdict} the target >= {TARGET_RATIO})")
    if cpu["off"] and cpu["on"]:
        # Worker CPU per job barely moves with other load on the machine; jobs/s does.
        cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
        say(
            f"  worker CPU per job: off {cpu_off:.2f} ms, on {cpu_on:.2f} ms "
            f"(off/on {cpu_off / cpu_on:.3f})"
        )
    say(f"  spans received by the local OTLP receiver: {spans}")
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args(sys.argv[1:])))
