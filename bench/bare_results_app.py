"""The bare Celery side of `bench/results.py`: `.delay().get()` of a no-op, nothing else.

Configured from the environment (the benchmark sets it for the worker it starts):

    BENCH_BROKER_URL   the broker and the result backend (the Redis URL Tasklane is given)

Worker: `uv run celery -A bench.bare_results_app worker -P prefork -c 1 -Q dataset`.

What a bare Celery user does to see a result without polling: a Redis result backend, which
`.get()` follows on pub/sub. JSON, acks_late and prefetch 1 as Tasklane sets them.
"""

from __future__ import annotations

import os

from celery import Celery

QUEUE = "dataset"
TASK_NAME = "bench.echo"

BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")

app = Celery("bare_results_bench", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
def echo(token: str = "") -> dict[str, str]:
    """A no-op with a result, the counterpart of Tasklane's `system.canary`."""
    return {"token": token}
