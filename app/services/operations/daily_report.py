"""The daily report: jobs finished per queue in the last 24 hours, failures, p50/p95 run time."""

from __future__ import annotations

from collections import Counter
from collections import defaultdict
from datetime import datetime
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import TERMINAL_STATES
from app.models import Job
from app.models import JobState
from app.services.mail import mails
from config import Settings

PERIOD = timedelta(days=1)
TOP_FAILURES = 10


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile: always a run time that really occurred."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def build(until: datetime) -> dict[str, Any]:
    """The report over the 24 hours before `until`, as the daily_report template's context."""
    since = until - PERIOD
    rows = db.session.execute(
        select(
            Job.queue, Job.task, Job.state, Job.error_type, Job.started_at, Job.finished_at
        ).where(Job.state.in_(TERMINAL_STATES), Job.finished_at >= since, Job.finished_at < until)
    ).all()
    db.session.rollback()
    finished: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    run_times: dict[str, list[float]] = defaultdict(list)
    failures: Counter[tuple[str, str]] = Counter()
    for queue, task, state, error_type, started_at, finished_at in rows:
        finished[queue] += 1
        if state == JobState.FAILED:
            failed[queue] += 1
            failures[(task, error_type or "unknown")] += 1
        if started_at is not None and finished_at is not None:
            run_times[queue].append((finished_at - started_at).total_seconds())
    per_queue = [
        {
            "queue": queue,
            "finished": finished[queue],
            "failed": failed[queue],
            "p50": _seconds(percentile(run_times[queue], 0.50)),
            "p95": _seconds(percentile(run_times[queue], 0.95)),
        }
        for queue in sorted(finished)
    ]
    return {
        "day": since.date().isoformat(),
        "since": since.isoformat(),
        "until": until.isoformat(),
        "queues": per_queue,
        "total": {"finished": sum(finished.values()), "failed": sum(failed.values())},
        "failures": [
            {"task": task, "error_type": error_type, "count": count}
            for (task, error_type), count in failures.most_common(TOP_FAILURES)
        ],
    }


def send(celery_app: Celery, settings: Settings, until: datetime) -> dict[str, Any]:
    """Build the report and mail it to DAILY_REPORT_TO, once per day whatever the retries."""
    report = build(until)
    recipients = mails.split_addresses(settings.operations.daily_report_to)
    if not recipients:
        return {"mailed": False, "reason": "DAILY_REPORT_TO is not set", **report}
    # One mail per day, however many times the task runs.
    once_a_day = f"daily-report:{until.date().isoformat()}"
    mail, _ = mails.queue_mail(
        celery_app, template="daily_report", to=recipients, context=report, dedup_key=once_a_day
    )
    return {"mailed": True, "mail_id": mail.id, **report}
