"""The bare Celery app `bench/throughput.py` compares Tasklane against: no Flask, no ledger.

Configured from the environment (the benchmark sets these for the worker it starts):

    BENCH_BROKER_URL   the broker (the same Redis URL Tasklane is given)
    BENCH_JOBS         how many jobs the run enqueues; the task that counts the last one
                       stamps the finish time

Worker: `uv run celery -A bench.bare_celery_app worker -P prefork -c 2 -Q dataset`.

It mirrors what Tasklane sets that matters per message: JSON only, acks_late, prefetch
multiplier 1, results ignored, same queue name. Everything else is Celery's default.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC
from datetime import datetime

import redis
from celery import Celery
from flask import Flask
from flask import request
from sqlalchemy import JSON
from sqlalchemy import Column
from sqlalchemy import DateTime
from sqlalchemy import MetaData
from sqlalchemy import String
from sqlalchemy import Table
from sqlalchemy import create_engine
from sqlalchemy import insert
from sqlalchemy.engine import Engine

QUEUE = "dataset"
TASK_NAME = "bench.noop"

# Keys the no-op task writes and the benchmark reads.
COUNT_KEY = "bench:bare:count"
FIRST_KEY = "bench:bare:first_started"
LAST_KEY = "bench:bare:last_finished"

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
JOBS = int(os.environ.get("BENCH_JOBS", "0"))

app = Celery("bare_bench", broker=BROKER_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    # One client per worker child, created after the fork.
    global _client
    if _client is None:
        _client = redis.Redis.from_url(BROKER_URL)
    return _client


@app.task(name=TASK_NAME, ignore_result=True)  # type: ignore[untyped-decorator]
def noop() -> None:
    """The bare side's per-task overhead: ONE pipelined Redis round trip.

    It records the first start (SET NX) and counts the run (INCR); only the run that
    brings the count to BENCH_JOBS makes a second call, stamping the finish time. This is
    cheaper than a result backend (no result document, no second key per task) and is the
    counterpart of the ledger's started_at / finished_at.
    """
    started = time.time()
    pipe = _redis().pipeline(transaction=False)
    pipe.set(FIRST_KEY, repr(started), nx=True)
    pipe.incr(COUNT_KEY)
    _, count = pipe.execute()
    if JOBS and int(count) >= JOBS:
        _redis().set(LAST_KEY, repr(time.time()))


# --- The bare submit endpoint `bench/submit.py` compares POST /api/v1/jobs against -------
# What a plain Flask + Celery service does: INSERT one row (BEGIN, INSERT, COMMIT on a
# pooled connection, no pre-ping), then `.delay()`. No auth, no ledger, no outbox.
# Served by the same gunicorn command as Tasklane: `gunicorn ... bench.bare_celery_app:api`.

BARE_TABLE = "bench_bare_jobs"
metadata = MetaData()
bare_jobs = Table(
    BARE_TABLE,
    metadata,
    Column("id", String(36), primary_key=True),
    Column("task", String(200), nullable=False),
    Column("args", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api = Flask("bare_submit")
_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        # Tasklane's defaults for the pool (SQLALCHEMY_POOL_SIZE 10, overflow 20).
        url = os.environ.get("BENCH_DATABASE_URL", "sqlite://")
        _engine = create_engine(url, pool_size=10, max_overflow=20)
        api.extensions["bench_engines"] = [_engine]
    return _engine


@api.post("/api/v1/jobs")
def submit() -> tuple[dict[str, str], int]:
    body = request.get_json()
    job_id = str(uuid.uuid4())
    with engine().begin() as conn:
        conn.execute(
            insert(bare_jobs).values(
                id=job_id, task=body["task"], args=body.get("args") or {}, created_at=_now()
            )
        )
    noop.delay()
    return {"id": job_id, "state": "queued"}, 202


@api.get("/api/v1/health")
def health() -> tuple[dict[str, str], int]:
    return {"status": "ok"}, 200


def _now() -> datetime:
    return datetime.now(UTC)


if os.environ.get("BENCH_DATABASE_URL"):
    # In the server: gunicorn's post_worker_init (bench/gunicorn_ready.py) counts its
    # statements, so the engine exists before the first request.
    engine()
