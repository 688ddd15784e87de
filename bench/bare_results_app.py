"""The bare Celery side of `bench/results.py`: `.delay().get()` of a no-op, nothing else.

bench/bare_celery_app.py's app (JSON, acks_late, prefetch 1 as Tasklane sets them; its
broker from BENCH_BROKER_URL) with a Redis result backend on the same server, which `.get()`
follows on pub/sub: what a bare Celery user does to see a result without polling.

Worker: `uv run celery -A bench.bare_results_app worker -P prefork -c 1 -Q dataset`.
"""

from __future__ import annotations

from bench.bare_celery_app import BROKER_URL
from bench.bare_celery_app import QUEUE
from bench.bare_celery_app import app

__all__ = ["QUEUE", "app", "echo"]

TASK_NAME = "bench.echo"

app.conf.result_backend = BROKER_URL


@app.task(name=TASK_NAME, ignore_result=False)  # type: ignore[untyped-decorator]
def echo(token: str = "") -> dict[str, str]:
    """A no-op with a result, the counterpart of Tasklane's `system.canary`."""
    return {"token": token}
