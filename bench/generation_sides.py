"""The two sides of bench/generation.py: what each submits, and how it counts and times it."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlalchemy import select

from bench.support import Services
from bench.support import say
from bench.support import tasklane_env
from tests.support.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]


def worker_env(services: Services, provider: FakeOpenAI, c: int, stats: Path) -> dict[str, str]:
    providers = {"bench": {"base_url": provider.base_url, "api_key": provider.api_key}}
    return tasklane_env(
        services,
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        TRACE_SINKS="",
        GENERATION_PROVIDERS=json.dumps({"bench": {**providers["bench"], "timeout": 120}}),
        WORKER_CONCURRENCY=str(c),
        WORKER_NAME=f"bench-io-{c}-{os.getpid()}@bench",
        # The ledger's pool has no overflow: hundreds of greenlets share these.
        SQLALCHEMY_POOL_SIZE="25",
        SQLALCHEMY_MAX_OVERFLOW="25",
        TASKLANE_EXTRA_TASK_MODULES="bench.statements",
        TASKLANE_BENCH_STATEMENTS=str(stats),
    )


class Side:
    """One side of a round: how to submit its work, start its worker, and count it."""

    name = ""
    queue = ""
    celery_app: object = None
    database_url = "sqlite://"  # CpuWindow also counts PostgreSQL's CPU when it is one

    def submit(self, n: int) -> None:
        raise NotImplementedError

    def counts(self) -> tuple[int, int, int]:
        """(finished, running, failed) of what was submitted so far."""
        raise NotImplementedError

    def span(self) -> float:
        """Seconds from the first start to the last finish of the measured work."""
        raise NotImplementedError

    def mark(self) -> None:
        """The measured work starts here: forget the warm-up's spans."""


class TasklaneSide(Side):
    name, queue = "tasklane", "generation"

    def __init__(self, app: Any) -> None:
        from app.services.generation import generations

        self.app, self.celery_app = app, app.extensions["celery"]
        self.database_url = app.config["SQLALCHEMY_DATABASE_URI"]
        with app.app_context():
            self.request = generations.build_request(
                app.config["SETTINGS"],
                {"provider": "bench", "model": "bench-model", "prompt": "hi"},
            )
        self.ids: list[str] = []
        self.measured: list[str] = []

    def submit(self, n: int) -> None:
        from app.services.generation import generations

        with self.app.app_context():
            for _ in range(n):
                job = generations.submit(self.celery_app, self.request, broker_timeout=5)
                self.ids.append(job.id)
                self.measured.append(job.id)

    def mark(self) -> None:
        self.measured = []

    def counts(self) -> tuple[int, int, int]:
        from app.extensions.ext_database import db
        from app.models import Job

        with self.app.app_context():
            rows = db.session.execute(
                select(Job.state, func.count()).where(Job.id.in_(self.ids)).group_by(Job.state)
            ).all()
            db.session.rollback()
        by_state = {str(getattr(k, "value", k)): int(v) for k, v in rows}
        failed = by_state.get("failed", 0) + by_state.get("cancelled", 0)
        return by_state.get("succeeded", 0), by_state.get("started", 0), failed

    def span(self) -> float:
        from app.extensions.ext_database import db
        from app.models import Job

        with self.app.app_context():
            first, last = db.session.execute(
                select(func.min(Job.started_at), func.max(Job.finished_at)).where(
                    Job.id.in_(self.measured)
                )
            ).one()
            db.session.rollback()
            spans = db.session.execute(
                select(Job.started_at, Job.finished_at).where(Job.id.in_(self.measured))
            ).all()
            db.session.rollback()
        in_task = statistics.median((end - begin).total_seconds() for begin, end in spans)
        say(f"    tasklane: median {in_task * 1000:.0f} ms from a job's start to its finish")
        return float((last - first).total_seconds())


class BareSide(Side):
    name = "bare"

    def __init__(self, services: Services) -> None:
        import redis

        os.environ.update(BENCH_BROKER_URL=services.redis_url)
        from bench import bare_generation_app as bare

        self.bare = bare
        self.queue, self.celery_app = bare.QUEUE, bare.app
        bare.app.conf.broker_url = services.redis_url
        self.redis = redis.Redis.from_url(services.redis_url)
        self.redis.delete(bare.COUNT_KEY, bare.FIRST_KEY, bare.LAST_KEY, bare.FAILED_KEY)
        # A stopped worker hands its unacknowledged messages back (a run counts itself
        # before its ack): left in the queue they would run, and count, in this round.
        # Its priority lists are named after it too (kombu's Redis transport).
        leftover = list(self.redis.scan_iter(match=f"{self.queue}*"))
        if leftover:
            self.redis.delete(*leftover)
        self.submitted = 0

    def submit(self, n: int) -> None:
        self.submitted += n
        self.redis.set(self.bare.JOBS_KEY, self.submitted)
        with self.bare.app.producer_or_acquire() as producer:
            for _ in range(n):
                self.bare.app.send_task(
                    self.bare.TASK_NAME, args=["hi"], queue=self.queue, producer=producer
                )

    def mark(self) -> None:
        self.redis.delete(self.bare.FIRST_KEY, self.bare.LAST_KEY)

    def counts(self) -> tuple[int, int, int]:
        count, failed = self.redis.mget(self.bare.COUNT_KEY, self.bare.FAILED_KEY)
        return int(count or 0), 0, int(failed or 0)

    def span(self) -> float:
        first, last = (
            float(v or 0) for v in self.redis.mget(self.bare.FIRST_KEY, self.bare.LAST_KEY)
        )
        return last - first
