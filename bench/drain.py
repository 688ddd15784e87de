"""The Tasklane side of a drain benchmark: N canary jobs enqueued, then one worker drains them.

bench/throughput.py compares it with a bare Celery drain; bench/tracing_overhead.py runs it
with tracing off and on.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from sqlalchemy import func
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.services.jobs import Submission
from app.services.jobs import submit
from bench.cpu import CpuWindow
from bench.support import CANARY
from bench.support import BenchError
from bench.support import Progress
from bench.support import Services
from bench.support import celery_worker
from bench.support import flush_redis
from bench.support import phase
from bench.support import poll
from bench.support import say
from bench.support import tail
from bench.support import tasklane_env


@dataclass
class DrainResult:
    label: str
    jobs: int
    enqueue_seconds: float
    startup_seconds: float  # worker spawn -> first task started (excluded from the rate)
    span_seconds: float  # first task started -> last task finished
    cpu: str
    cpu_ms_per_job: float | None = None

    @property
    def rate(self) -> float:
        return self.jobs / self.span_seconds if self.span_seconds > 0 else float("inf")


def enqueue(jobs: int, send: Callable[[], object]) -> float:
    """Call `send` `jobs` times with progress shown; the seconds it took."""
    progress = Progress("enqueued", jobs)
    started = time.perf_counter()
    for i in range(jobs):
        send()
        if i % 100 == 99:
            progress.update(i + 1)
    progress.update(jobs)
    progress.finish()
    seconds = time.perf_counter() - started
    say(f"    enqueued {jobs} in {seconds:.2f}s ({jobs / seconds:.0f} jobs/s)")
    return seconds


def drain_tasklane(
    app: Flask,
    services: Services,
    *,
    jobs: int,
    pool: str,
    concurrency: int,
    queues: str,
    log_dir: Path,
    label: str = "tasklane (ledger on)",
    prefetch: int | None = None,
    **worker_env: str,
) -> DrainResult:
    """N canary jobs through `jobs.submit` with no worker running, then a worker drains them.

    Rate = N / (first ledger `started_at` -> last `finished_at`): worker start-up is excluded.
    """
    celery_app, settings = app.extensions["celery"], app.config["SETTINGS"]
    flush_redis(app)
    phase(f"{label}: enqueueing {jobs} {CANARY} jobs through jobs.submit (no worker running)")
    ours = (Job.task == CANARY) & (Job.created_at >= utcnow())
    with app.app_context():
        enqueue_seconds = enqueue(
            jobs,
            lambda: submit(
                celery_app,
                Submission(task=CANARY, args={}),
                broker_timeout=settings.broker.submit_timeout,
            ),
        )

    def counts() -> dict[str, int]:
        with app.app_context():
            rows = db.session.execute(
                select(Job.state, func.count()).where(ours).group_by(Job.state)
            ).all()
            db.session.rollback()
        return {str(JobState(state).value): int(count) for state, count in rows}

    env = tasklane_env(services, **worker_env)
    worker = celery_worker(
        "app.celery",
        "tasklane",
        pool=pool,
        concurrency=concurrency,
        queues=queues,
        env=env,
        log_dir=log_dir,
        prefetch=prefetch,
    )
    phase(f"{label}: starting worker: {' '.join(worker.command[1:])}")
    spawned = time.time()
    worker.spawn()
    assert worker.process is not None
    progress = Progress("succeeded", jobs)
    cpu = CpuWindow(worker.process.pid, services.database_url, jobs)
    try:

        def drained() -> bool:
            state = counts()
            if state.get("failed", 0) + state.get("cancelled", 0):
                raise BenchError(f"Tasklane jobs did not succeed: {state}; {tail(worker)}")
            if worker.process is not None and worker.process.poll() is not None:
                raise BenchError(f"the Tasklane worker exited; {tail(worker)}")
            progress.update(state.get("succeeded", 0))
            cpu.observe(progress.done, state.get("started", 0))
            return progress.done >= jobs

        poll(drained, progress, lambda: f"{counts()}; {tail(worker)}")
        cpu.close()
    finally:
        worker.stop()
    with app.app_context():
        rows = db.session.execute(select(Job.started_at, Job.finished_at).where(ours)).all()
        db.session.rollback()
    spans = [(begin, end) for begin, end in rows if begin and end]
    if len(spans) != jobs:
        raise BenchError("the ledger holds succeeded jobs without started_at/finished_at")
    in_task = [(end - begin).total_seconds() for begin, end in spans]
    first, last = min(begin for begin, _ in spans), max(end for _, end in spans)
    say(
        f"    ledger started_at -> finished_at per job: mean {statistics.fmean(in_task) * 1e3:.2f}"
        f" ms, p50 {statistics.median(in_task) * 1e3:.2f} ms"
    )
    return DrainResult(
        label,
        jobs,
        enqueue_seconds,
        first.timestamp() - spawned,
        (last - first).total_seconds(),
        cpu.describe(),
        cpu.worker_ms_per_job(),
    )


def drain_as_asked(
    app: Flask,
    services: Services,
    args: argparse.Namespace,
    *,
    queues: str,
    log_dir: Path,
    label: str,
    **worker_env: str,
) -> DrainResult:
    """`drain_tasklane` with the jobs, pool and concurrency the benchmark's options give."""
    return drain_tasklane(
        app,
        services,
        jobs=args.jobs,
        pool=args.pool,
        concurrency=args.concurrency,
        queues=queues,
        log_dir=log_dir,
        label=label,
        prefetch=getattr(args, "prefetch", None),
        **worker_env,
    )
