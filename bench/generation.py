"""Generation benchmark: one gevent worker process against a provider that answers in 200 ms.

Run from the project root:

    uv run python bench/generation.py                    # concurrency 10, 100, 500
    uv run python bench/generation.py --concurrency 10 100 --waves 3
    uv run python bench/generation.py --prefetch 4       # worker reserves 4 x C messages

For each concurrency C: C x WAVES generation jobs are submitted through the real service
(`app.services.generation.generations.submit`: row, ledger row, broker message), then ONE worker
process starts (`celery -A app.celery worker -P gevent -c C -Q generation`) and drains
them against a local OpenAI-compatible server (tests/support/fake_openai.py) that holds
every request 200 ms before streaming a short answer. The rate is jobs / (first ledger
`started_at` -> last `finished_at`), so worker start-up is excluded, and it is printed
next to the ideal, C / 0.2 s, as a ratio. Every job goes through the full path: ledger
transitions, the generation row, streamed progress and usage. Traces are off
(TRACE_SINKS empty) so only the generation queue is measured. If under 1% of a level's
jobs never start (a message lost to a broker error stays unacknowledged until the
visibility timeout), the level is measured over the jobs that ran and says so; failed
jobs are listed with their error and not counted.

Services: PostgreSQL at 127.0.0.1:5432 (a fresh database, dropped after) and Redis at
127.0.0.1:6379 (a claimed, flushed database index) when they answer, else a private
redis-server and a SQLite file (see tests/support/services.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import services  # noqa: E402
from tests.support.fake_openai import FakeOpenAI  # noqa: E402
from tests.support.fake_openai import Reply  # noqa: E402

PROVIDER_DELAY = 0.2
ANSWER = "a short answer of eight words from here"
STALL_SECONDS = 20


def environment(
    redis_url: str, database_url: str, provider: FakeOpenAI, prefetch: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "WORKER_"))}
    env.update(
        TASKLANE_ENV="production",
        SECRET_KEY="bench",
        LOG_LEVEL="WARNING",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TRACE_SINKS="",
        # Greenlets share the engine's pool; 50 connections stay under PostgreSQL's 100.
        SQLALCHEMY_POOL_SIZE="25",
        SQLALCHEMY_MAX_OVERFLOW="25",
        GENERATION_PROVIDERS=(
            f'{{"bench": {{"base_url": "{provider.base_url}", '
            f'"api_key": "{provider.api_key}", "timeout": 120}}}}'
        ),
        TASKLANE_EXTRA_TASK_MODULES="",
        WORKER_PREFETCH_MULTIPLIER=str(prefetch),
    )
    return env


def run_level(
    c: int,
    args: argparse.Namespace,
    redis_url: str,
    database_url: str,
    provider: FakeOpenAI,
    tmp: Path,
) -> tuple[int, float]:
    from app import create_app
    from app.extensions.ext_database import db
    from app.models import Job
    from app.services.generation import generations
    from config import Settings

    # No flush between levels: each level drains its queue, and flushing a claimed Redis
    # database would also drop its claim (tests/support/services.py).
    env = environment(redis_url, database_url, provider, args.prefetch)
    os.environ.update(env)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    app = create_app(settings)
    total = c * args.waves
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(revision="heads")
        request = generations.build_request(
            settings, {"provider": "bench", "model": "bench-model", "prompt": "benchmark"}
        )
        started = time.monotonic()
        ids = [
            generations.submit(app.extensions["celery"], request, broker_timeout=5).id
            for _ in range(total)
        ]
        print(f"  c={c}: {total} jobs submitted in {time.monotonic() - started:.1f}s", flush=True)
    log = tmp / f"worker-{c}.log"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "app.celery",
        "worker",
        "-P",
        "gevent",
        "-c",
        str(c),
        "-Q",
        "generation",
        "--hostname",
        f"bench-{c}@%h",
        "--loglevel",
        "WARNING",
    ]
    with open(log, "ab") as out:
        worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120 + total * 0.2
        last_done, last_change = -1, time.monotonic()
        with app.app_context():
            while True:
                done = (
                    db.session.scalar(
                        select(func.count()).where(Job.id.in_(ids), Job.finished_at.is_not(None))
                    )
                    or 0
                )
                db.session.rollback()
                if done != last_done:
                    last_done, last_change = done, time.monotonic()
                if done == total:
                    break
                if done >= 0.99 * total and time.monotonic() - last_change > STALL_SECONDS:
                    # A message the worker could not take or ack (broker errors in its log)
                    # comes back only after the visibility timeout: measure the rest.
                    print(f"  c={c}: {total - done} jobs never started; measuring {done}")
                    break
                if worker.poll() is not None or time.monotonic() > deadline:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                    raise SystemExit(f"worker did not drain c={c} ({done}/{total}):\n{tail}")
                time.sleep(0.5)
            finished = (Job.id.in_(ids), Job.finished_at.is_not(None))
            first, last = db.session.execute(
                select(func.min(Job.started_at), func.max(Job.finished_at)).where(*finished)
            ).one()
            failures = db.session.execute(
                select(Job.error_type, Job.error_message, func.count())
                .where(*finished, Job.state != "succeeded")
                .group_by(Job.error_type, Job.error_message)
            ).all()
            for error_type, message, count in failures:
                print(f"  c={c}: {count} failed with {error_type}: {(message or '')[:160]}")
            succeeded = done - sum(count for _type, _message, count in failures)
        return succeeded, (last - first).total_seconds()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument("--waves", type=int, default=4, help="jobs per level = C x WAVES")
    parser.add_argument(
        "--prefetch", type=int, default=1, help="WORKER_PREFETCH_MULTIPLIER of the worker"
    )
    args = parser.parse_args()
    # Stop like Ctrl-C, so the worker and the services are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gen-")))
        redis_url = stack.enter_context(services.redis_server(tmp / "redis"))
        database_url = stack.enter_context(services.database(tmp / "db"))
        provider = stack.enter_context(FakeOpenAI.running(Reply(delay=PROVIDER_DELAY, text=ANSWER)))
        where = database_url.split("@")[-1]
        print(
            f"provider answers after {PROVIDER_DELAY * 1000:.0f} ms; database {where}; "
            f"worker prefetch multiplier {args.prefetch}"
        )
        for c in args.concurrency:
            total, span = run_level(c, args, redis_url, database_url, provider, tmp)
            rate = total / span
            ideal = c / PROVIDER_DELAY
            rows.append((c, total, span, rate, ideal))
    print()
    print("| concurrency | jobs | seconds | generations/s | ideal (C / 0.2 s) | ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c, total, span, rate, ideal in rows:
        print(f"| {c} | {total} | {span:.2f} | {rate:.1f} | {ideal:.0f} | {rate / ideal:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
