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

import redis
from celery import Celery

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
