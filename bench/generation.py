"""Generation benchmark: one `worker io` process against a bare Celery gevent task.

Run from the project root:

    uv run python bench/generation.py                       # C = 100 and 500, 3 rounds
    uv run python bench/generation.py --concurrency 100 --rounds 5 --waves 3

Both sides make the same streaming chat-completions call against the same local
OpenAI-compatible server (tests/support/fake_openai.py), which holds every request 200 ms
and then streams a short answer with usage:

- **tasklane**: C x WAVES generations submitted through the real service
  (`generations.submit`: row, ledger row, broker message), then ONE worker started as
  operators start it, `./entrypoint.sh worker io` with WORKER_CONCURRENCY=C, drains them:
  ledger start and finish, the row read once and written once, the text in Redis while
  streaming, through the `openai` client. Traces off (TRACE_SINKS empty): the ops_trace
  hand-off is measured by bench/tracing_overhead.py.
- **bare**: C x WAVES messages for `bench/bare_generation_app.py`, a plain Celery gevent
  task that streams the same call with httpx2 (the `openai` package's client, which
  Tasklane streams through) and counts itself in Redis; `celery worker -P gevent -c C`,
  the io profile's prefetch multiplier.

Rounds interleave the two sides (ABBA), each with a fresh worker; each side's rate is
generations / (first start -> last finish), worker start-up excluded, and the table shows
medians over rounds. Worker CPU ms per generation is the worker process's CPU (/proc)
over that window. Statements per generation count every PostgreSQL round trip of the
Tasklane worker at the driver (bench/statements.py, loaded only here through
TASKLANE_EXTRA_TASK_MODULES): BEGIN, COMMIT, ROLLBACK and each statement, start-up and lease
heartbeats included, divided by the generations drained.

Services come from tests/support (TASKLANE_TEST_PG_ADMIN / REDIS_URL choose as for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cpu import CpuWindow  # noqa: E402
from bench.generation_sides import BareSide  # noqa: E402
from bench.generation_sides import Side  # noqa: E402
from bench.generation_sides import TasklaneSide  # noqa: E402
from bench.generation_sides import worker_env  # noqa: E402
from bench.support import BenchError  # noqa: E402
from bench.support import Progress  # noqa: E402
from bench.support import Services  # noqa: E402
from bench.support import build_app  # noqa: E402
from bench.support import celery_worker  # noqa: E402
from bench.support import poll  # noqa: E402
from bench.support import say  # noqa: E402
from bench.support import start_services  # noqa: E402
from bench.support import tail  # noqa: E402
from bench.support import tasklane_env  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.fake_openai import Reply  # noqa: E402
from tests.support.waiting import wait_for  # noqa: E402
from tests.support.workers import WorkerProcess  # noqa: E402

PROVIDER_DELAY = 0.2
ANSWER = "a short answer of eight words from here"
PREFETCH = "4"  # the io profile's (app/queues.py)
# Generations a fresh worker runs before the measured ones: its connections open, the
# `openai` package is imported (Tasklane imports it at first use).
WARM_UP = 100


@dataclass
class Round:
    side: str
    concurrency: int
    jobs: int
    seconds: float
    cpu_ms: float | None
    statements: Counter[str]

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds if self.seconds > 0 else float("inf")


def run_round(side: Side, worker: WorkerProcess, c: int, total: int, stats: Path | None) -> Round:
    """Warm the worker up (connections, lazy imports), pause it, queue the measured work,
    resume it, and measure that drain alone."""
    from celery import Celery

    app = side.celery_app
    assert isinstance(app, Celery)
    warm = min(c, WARM_UP)
    worker.spawn()
    try:
        worker.wait_ready(app)
        assert worker.process is not None
        side.submit(warm)
        _wait(side, worker, warm, Progress(f"{side.name} c={c} warm-up", warm))
        app.control.cancel_consumer(side.queue, destination=[worker.hostname], reply=True)
        # The reply comes before the consumer is gone: wait until the worker says so.
        wait_for(
            lambda: not _consumes(app, worker.hostname, side.queue),
            what=f"{worker.hostname} to stop consuming {side.queue}",
        )
        before = _statements(worker, stats)
        side.mark()
        side.submit(total)
        cpu = CpuWindow(worker.process.pid, side.database_url, total)
        cpu.observe(0, 1)  # the window opens now, as the worker resumes
        app.control.add_consumer(side.queue, destination=[worker.hostname], reply=True)
        _wait(side, worker, warm + total, Progress(f"{side.name} c={c}", warm + total))
        cpu.close()
        after = _statements(worker, stats)
    finally:
        worker.stop(timeout=60)
    after.subtract(before)
    return Round(side.name, c, total, side.span(), cpu.worker_ms_per_job(), +after)


def _consumes(app: Any, hostname: str, queue: str) -> bool:
    active = app.control.inspect(destination=[hostname], timeout=2.0).active_queues() or {}
    return any(q["name"] == queue for q in active.get(hostname, ()))


def _wait(side: Side, worker: WorkerProcess, target: int, progress: Progress) -> None:
    def done() -> bool:
        finished, _running, failed = side.counts()
        if failed:
            raise BenchError(f"{failed} {side.name} generations failed; {tail(worker)}")
        if worker.process is not None and worker.process.poll() is not None:
            raise BenchError(f"the {side.name} worker exited; {tail(worker)}")
        progress.update(finished)
        return finished >= target

    poll(done, progress, lambda: tail(worker))


def _statements(worker: WorkerProcess, stats: Path | None) -> Counter[str]:
    """The Tasklane worker's statement counts so far (it writes them on SIGUSR2)."""
    if stats is None or worker.process is None:
        return Counter()
    stats.unlink(missing_ok=True)
    worker.process.send_signal(signal.SIGUSR2)
    wait_for(stats.exists, what="the worker's statement counts")
    return Counter(json.loads(stats.read_text()))


def tasklane_round(
    app: Any, services: Services, provider: FakeOpenAI, c: int, waves: int, tmp: Path
) -> Round:
    stats = tmp / f"statements-{c}-{time.monotonic_ns()}.json"
    env = worker_env(services, provider, c, stats)
    command = ["./entrypoint.sh", "worker", "io"]
    worker = WorkerProcess(env["WORKER_NAME"], command, env=env, log_dir=tmp)
    return run_round(TasklaneSide(app), worker, c, c * waves, stats)


def bare_round(services: Services, provider: FakeOpenAI, c: int, waves: int, tmp: Path) -> Round:
    side = BareSide(services)
    env = {
        **tasklane_env(services),
        "PYTHONPATH": str(ROOT),
        "BENCH_BROKER_URL": services.redis_url,
        "BENCH_PROVIDER_URL": provider.base_url,
        "BENCH_PROVIDER_KEY": provider.api_key,
        "BENCH_PREFETCH": PREFETCH,
    }
    worker = celery_worker(
        "bench.bare_generation_app",
        f"bare-{c}",
        pool="gevent",
        concurrency=c,
        queues=side.queue,
        env=env,
        log_dir=tmp,
    )
    return run_round(side, worker, c, c * waves, None)


def _median(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else float("nan")


def report(rounds: list[Round], levels: list[int]) -> None:
    say(
        "\n| concurrency | tasklane gen/s | bare Celery gen/s | ratio | worker CPU ms/gen "
        "tasklane / bare | statements/gen |"
    )
    say("|---:|---:|---:|---:|---:|---:|")
    for c in levels:
        ours = [r for r in rounds if r.concurrency == c and r.side == "tasklane"]
        bare = [r for r in rounds if r.concurrency == c and r.side == "bare"]
        ratios = [o.rate / b.rate for o, b in zip(ours, bare, strict=False)]
        per_gen = [sum(r.statements.values()) / r.jobs for r in ours]
        say(
            f"| {c} | {_median([r.rate for r in ours]):.0f} | {_median([r.rate for r in bare]):.0f}"
            f" | **{_median(ratios):.2f}×** | {_median([r.cpu_ms for r in ours]):.1f} / "
            f"{_median([r.cpu_ms for r in bare]):.1f} | {_median(per_gen):.2f} |"
        )
    kinds: Counter[str] = Counter()
    jobs = 0
    for r in rounds:
        if r.side == "tasklane":
            kinds.update(r.statements)
            jobs += r.jobs
    if jobs:
        say(
            "\nstatements per generation by kind (all Tasklane rounds): "
            + ", ".join(f"{kind} {n / jobs:.2f}" for kind, n in kinds.most_common())
        )
    say(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--waves", type=int, default=3, help="generations per round = C x WAVES")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds: list[Round] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gen-")))
        services = start_services(stack, tmp)
        provider = stack.enter_context(FakeOpenAI.running(Reply(delay=PROVIDER_DELAY, text=ANSWER)))
        os.environ.update(
            GENERATION_PROVIDERS=json.dumps(
                {"bench": {"base_url": provider.base_url, "api_key": provider.api_key}}
            ),
            TRACE_SINKS="",
        )
        app = build_app(services)
        say(f"provider holds each request {PROVIDER_DELAY * 1000:.0f} ms; {services.describe()}")
        for n in range(args.rounds):
            for c in args.concurrency:
                # ABBA: neither side always runs first, on a machine whose load drifts.
                sides = ("tasklane", "bare") if n % 2 == 0 else ("bare", "tasklane")
                for side in sides:
                    if side == "tasklane":
                        result = tasklane_round(app, services, provider, c, args.waves, tmp)
                    else:
                        result = bare_round(services, provider, c, args.waves, tmp)
                    rounds.append(result)
                    say(
                        f"  round {n + 1} c={c} {side}: {result.rate:.0f} gen/s, "
                        f"worker CPU {result.cpu_ms or float('nan'):.2f} ms/gen, "
                        f"{sum(result.statements.values()) / result.jobs:.2f} statements/gen"
                    )
    report(rounds, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
