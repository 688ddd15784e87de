"""The daily report and the queue monitor, on the real session database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sentry_sdk
from flask import Flask
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import JobState
from app.models.base import utcnow
from app.models.mail import Mail
from app.services.operations import daily_report
from app.services.operations import queue_monitor
from tests.conftest import make_settings
from tests.support.jobs import stored_job
from tests.support.sentry_receiver import sentry_receiver


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


def test_percentile_is_a_real_value() -> None:
    assert daily_report.percentile([], 0.5) is None
    assert daily_report.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert daily_report.percentile([float(n) for n in range(1, 101)], 0.95) == 95.0


def test_daily_report_counts_jobs_failures_and_run_times_per_queue(ctx: Flask) -> None:
    # A future window, so no other test's jobs fall into it.
    until = utcnow() + timedelta(days=400)
    end = until - timedelta(hours=1)
    for seconds in (1, 2, 3, 4):
        stored_job(
            task="tests.echo",
            state=JobState.SUCCEEDED,
            started_at=end - timedelta(seconds=seconds),
            finished_at=end,
        )
    stored_job(
        JobState.FAILED,
        task="tests.fail",
        queue="generation",
        error_type="ValueError",
        started_at=end - timedelta(seconds=10),
        finished_at=end,
    )

    report = daily_report.build(until)

    assert report["queues"] == [
        {"queue": "dataset", "finished": 4, "failed": 0, "p50": 2.0, "p95": 4.0},
        {"queue": "generation", "finished": 1, "failed": 1, "p50": 10.0, "p95": 10.0},
    ]
    assert report["total"] == {"finished": 5, "failed": 1}
    assert report["failures"] == [{"task": "tests.fail", "error_type": "ValueError", "count": 1}]


def test_queue_monitor_alerts_by_mail_and_sentry_once_per_cooldown(
    app: Flask, base_settings: dict[str, Any]
) -> None:
    settings = make_settings(
        base_settings,
        ALERT_EMAIL_TO="ops@example.org",
        QUEUE_ALERT_MAX_AGE=3600,
        QUEUE_ALERT_COOLDOWN=3600,
    )
    with app.app_context(), sentry_receiver() as sentry, sentry_sdk.isolation_scope() as scope:
        client = sentry_sdk.Client(dsn=sentry.dsn, default_integrations=False)
        scope.set_client(client)
        # A job waiting for two hours on the ops_trace queue, which nothing else uses here.
        job = stored_job(task="tests.echo", state=JobState.QUEUED)
        job.queue = "ops_trace"
        job.created_at = utcnow() - timedelta(hours=2)
        db.session.commit()
        celery_app = app.extensions["celery"]
        redis_client = app.extensions["redis"]

        try:
            first = queue_monitor.monitor_queues(celery_app, redis_client, settings)
            again = queue_monitor.monitor_queues(celery_app, redis_client, settings)
            client.flush(timeout=5)
        finally:
            # Leave no waiting job behind for other tests' queue figures.
            job.state, job.finished_at = JobState.CANCELLED, utcnow()
            db.session.commit()

        alert = next(a for a in first if a["queue"] == "ops_trace")
        assert alert["oldest_age_seconds"] >= 7200
        assert not [a for a in again if a["queue"] == "ops_trace"]
        mail = db.session.scalar(select(Mail).where(Mail.id == alert["mail_id"]))
        assert mail is not None and mail.template == "queue_alert"
        assert mail.recipients == ["ops@example.org"]
        assert "ops_trace" in mail.subject
        events = [e for e in sentry.events() if "queue ops_trace" in e.get("message", "")]
        assert len(events) == 1
        assert events[0]["level"] == "warning"
