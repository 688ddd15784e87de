"""Job metrics: started, succeeded, failed and retried per queue and task; run and wait time;
queue depth. Recorded from Celery's signals and the after-run hook, so no task needs any
code for them.

Instruments come from the global meter provider, which is a no-op until OpenTelemetry is
started; the handlers are connected only when it is enabled.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from celery import Celery
from celery.signals import before_task_publish
from celery.signals import task_postrun
from celery.signals import task_prerun
from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions
from opentelemetry.metrics import Observation

from app.hooks import Outcome
from app.models import JobState
from app.services.operations import queue_status

PUBLISHED_AT_HEADER = "tasklane_published_at"

meter = metrics.get_meter("tasklane")
STARTED = meter.create_counter("tasklane.jobs.started", unit="{job}", description="Task runs begun")
SUCCEEDED = meter.create_counter(
    "tasklane.jobs.succeeded", unit="{job}", description="Runs that succeeded"
)
FAILED = meter.create_counter("tasklane.jobs.failed", unit="{job}", description="Runs that failed")
RETRIED = meter.create_counter(
    "tasklane.jobs.retried", unit="{job}", description="Runs that asked for a retry"
)
RUN_TIME = meter.create_histogram("tasklane.jobs.run_time", unit="s", description="Time a run took")
WAIT_TIME = meter.create_histogram(
    "tasklane.jobs.wait_time", unit="s", description="Time from publish (or ETA) to start"
)

# Start times of runs in progress, by task id (a gevent worker runs many at once).
_started: dict[str, float] = {}


def _labels(task: Any) -> dict[str, str]:
    request = getattr(task, "request", None)
    delivery = getattr(request, "delivery_info", None) or {}
    queue = delivery.get("routing_key") or getattr(task, "tasklane_queue", None) or ""
    return {"queue": str(queue), "task": str(getattr(task, "name", "unknown"))}


def _stamp_publish(headers: dict[str, Any] | None = None, **_kw: Any) -> None:
    if headers is not None:
        headers.setdefault(PUBLISHED_AT_HEADER, time.time())


def _on_prerun(task_id: str = "", task: Any = None, **_kw: Any) -> None:
    now = time.time()
    _started[task_id] = time.monotonic()
    labels = _labels(task)
    STARTED.add(1, labels)
    request = getattr(task, "request", None)
    published = getattr(request, PUBLISHED_AT_HEADER, None)
    if isinstance(published, int | float):
        eta = getattr(request, "eta", None)
        due = published
        if isinstance(eta, str):
            due = max(published, datetime.fromisoformat(eta).timestamp())
        WAIT_TIME.record(max(0.0, now - due), labels)


_COUNTERS: dict[JobState, Any] = {
    JobState.SUCCEEDED: SUCCEEDED,
    JobState.FAILED: FAILED,
    JobState.RETRYING: RETRIED,
}


def after_run(outcome: Outcome) -> None:
    """After-run hook (app/hooks.py): the run's outcome counter and its run time."""
    labels = _labels(outcome.task)
    counter = _COUNTERS.get(outcome.state)
    if counter is not None:
        counter.add(1, labels)
    began = _started.pop(outcome.job_id, None)
    if began is not None:
        RUN_TIME.record(time.monotonic() - began, labels)


def _on_postrun(task_id: str = "", **_kw: Any) -> None:
    # A run that recorded no outcome (a skipped duplicate) leaves no start time behind.
    _started.pop(task_id, None)


def connect_task_signals() -> None:
    """Before-run measurements; the outcome ones are the `after_run` hook."""
    before_task_publish.connect(_stamp_publish, weak=False)
    task_prerun.connect(_on_prerun, weak=False)
    task_postrun.connect(_on_postrun, weak=False)


def observe_queue_depth(celery_app: Celery) -> None:
    """A gauge of messages waiting per queue, read from the broker at collection time."""

    def collect(_options: CallbackOptions) -> Iterable[Observation]:
        for queue, count in queue_status.waiting_counts(celery_app).items():
            if count is not None:
                yield Observation(count, {"queue": queue})

    metrics.get_meter("tasklane").create_observable_gauge(
        "tasklane.queue.depth",
        callbacks=[collect],
        unit="{message}",
        description="Messages waiting",
    )
