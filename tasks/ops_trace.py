"""Trace shipping: every traced job's attempts end up here, off the traced work's path.

`ops_trace.ship` is a plain Celery task (`ledger=False`): its message is the only copy of
the record, with no job row. It is acknowledged after it ran and put back when its worker
process dies (a gevent worker's unacknowledged message comes back after the broker's
visibility timeout), and retried with the one backoff policy while a sink is down.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from app.services.retrying import backoff_delay
from app.services.tracing import export
from app.tasking import job_task
from config import current_settings

# The longest wait between two tries while a back end is down.
RETRY_MAX_DELAY = 300.0


@job_task(
    "ops_trace.ship",
    queue="ops_trace",
    soft_time_limit=60,
    time_limit=90,
    # A ceiling: TRACE_SHIP_MAX_ATTEMPTS (at most 20) is the limit applied.
    max_retries=19,
    ledger=False,
    acks_late=True,
    # No lease brings a ship message back: a lost worker must hand it back to the broker.
    reject_on_worker_lost=True,
)
def ship(self: Task, record: dict[str, Any], sinks: list[str] | None = None) -> None:
    settings = current_settings()
    try:
        export.ship(
            record, settings, sinks if sinks is not None else list[str](settings.tracing.sinks)
        )
    except export.ExportFailed as exc:
        delay = backoff_delay(
            self.request.retries,
            base=settings.tracing.ship_retry_delay,
            cap=min(RETRY_MAX_DELAY, settings.broker.task_max_countdown),
        )
        # Only the sinks that failed: the others have the record already.
        raise self.retry(
            exc=exc,
            countdown=delay,
            kwargs={"record": record, "sinks": list(exc.args[0])},
            max_retries=settings.tracing.ship_max_attempts - 1,
        ) from None
