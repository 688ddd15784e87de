"""Every page renders from the ledger; filters, cursors, groups and the chart count right."""

from __future__ import annotations

import re
import uuid
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.dashboard import queries
from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.models.job import JobAttempt
from tests.unit.dashboard.conftest import csrf_token

PAGES = {
    "/dashboard/": "Jobs finished per minute",
    "/dashboard/jobs": "created from",
    "/dashboard/failures": "grouped by task and error type",
    "/dashboard/datasets": "Datasets: documents",
    "/dashboard/mail": "SMTP reply",
    "/dashboard/generations": "text so far",
    "/dashboard/live": "Workers",
}


def _jobs(app: Flask, count: int, **values: Any) -> list[str]:
    with app.app_context():
        rows = [Job(task="tests.echo", queue="dataset", args={}, **values) for _ in range(count)]
        db.session.add_all(rows)
        db.session.commit()
        return [row.id for row in rows]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(dashboard: FlaskClient, path: str) -> None:
    response = dashboard.get(path)
    assert response.status_code == 200
    assert PAGES[path] in response.get_data(as_text=True)


def test_jobs_filter_by_time_and_page_with_cursors(app: Flask, dashboard: FlaskClient) -> None:
    base = datetime(2001, 1, 1, tzinfo=UTC)
    ids = [_jobs(app, 1, created_at=base + timedelta(seconds=i))[0] for i in range(3)]
    query = "task=tests.echo&since=2001-01-01T00:00:00&until=2001-01-01T00:00:02"
    with app.app_context():
        filters = queries.JobFilters(
            task="tests.echo", since=base, until=base + timedelta(seconds=2)
        )
        first, cursor = queries.jobs_page(filters, None, limit=1)
        second, last = queries.jobs_page(filters, cursor, limit=1)
        assert [j.id for j in first + second] == [ids[1], ids[0]]
        assert last is None
    page = dashboard.get(f"/dashboard/jobs?{query}").get_data(as_text=True)
    assert ids[0] in page and ids[1] in page and ids[2] not in page


@pytest.mark.parametrize(
    "query", ["state=exploded", "queue=nowhere", "since=yesterday", "cursor=%%%"]
)
def test_a_bad_filter_is_a_400_saying_what_is_wrong(dashboard: FlaskClient, query: str) -> None:
    response = dashboard.get(f"/dashboard/jobs?{query}")
    assert response.status_code == 400
    assert 'role="alert"' in response.get_data(as_text=True)


def test_an_unknown_job_is_a_404_page(dashboard: FlaskClient) -> None:
    assert dashboard.get("/dashboard/jobs/no-such-job").status_code == 404


def test_the_chart_counts_finishes_per_minute(app: Flask) -> None:
    now = utcnow().replace(second=30)
    with app.app_context():
        before = queries.finished_per_minute(now)
    _jobs(app, 3, state=JobState.SUCCEEDED, finished_at=now - timedelta(minutes=5))
    _jobs(app, 2, state=JobState.FAILED, finished_at=now - timedelta(minutes=10))
    _jobs(app, 4, state=JobState.SUCCEEDED, finished_at=now - timedelta(minutes=90))
    with app.app_context():
        after = queries.finished_per_minute(now)
    assert len(after.minutes) == 60 and after.minutes[-1] == int(now.timestamp()) // 60 * 60
    grew_ok = [a - b for a, b in zip(after.succeeded, before.succeeded, strict=True)]
    grew_failed = [a - b for a, b in zip(after.failed, before.failed, strict=True)]
    assert grew_ok[-6] == 3 and sum(grew_ok) == 3
    assert grew_failed[-11] == 2 and sum(grew_failed) == 2


def test_failures_are_grouped_and_a_group_retried(app: Flask, dashboard: FlaskClient) -> None:
    kind = f"DashboardTest{uuid.uuid4().hex[:8]}"
    failed = _jobs(
        app,
        3,
        state=JobState.FAILED,
        error_type=kind,
        error_message="boom",
        finished_at=utcnow(),
        attempts=1,
    )
    page = dashboard.get("/dashboard/failures").get_data(as_text=True)
    row = re.search(rf'data-group="tests.echo\|{kind}">(.*?)</tr>', page, re.S)
    assert row and '<td class="num">3</td>' in row.group(1) and "boom" in row.group(1)
    response = dashboard.post(
        "/dashboard/failures/retry",
        data={"task": "tests.echo", "error_type": kind, "csrf_token": csrf_token(dashboard)},
        follow_redirects=True,
    )
    assert "Retried 3 failed tests.echo job(s)" in response.get_data(as_text=True)
    with app.app_context():
        states = {db.session.get(Job, job_id).state for job_id in failed}  # type: ignore[union-attr]
    # Queued again (or already run by a worker of an earlier test module).
    assert JobState.FAILED not in states
    assert f"tests.echo|{kind}" not in dashboard.get("/dashboard/failures").get_data(as_text=True)


def test_job_page_shows_error_attempt_and_configured_links(
    app: Flask, dashboard: FlaskClient
) -> None:
    settings = app.config["SETTINGS"]
    (job_id,) = _jobs(
        app,
        1,
        state=JobState.FAILED,
        error_type="ValueError",
        error_message="bad input",
        worker="io-1@host",
        attempts=2,
        started_at=utcnow(),
        finished_at=utcnow(),
        trace_id="ab" * 16,
        sentry_event_id="cd" * 16,
    )
    with app.app_context():
        # The ledger keeps each attempt; the page lists them all, the lost one included.
        started = utcnow() - timedelta(minutes=1)
        db.session.add_all(
            [
                JobAttempt(
                    job_id=job_id,
                    number=1,
                    worker="cpu-9@host",
                    started_at=started,
                    finished_at=started,
                    outcome="lost",
                ),
                JobAttempt(
                    job_id=job_id,
                    number=2,
                    worker="io-1@host",
                    started_at=utcnow(),
                    finished_at=utcnow(),
                    outcome="failed",
                    error_type="ValueError",
                    error_message="bad input",
                ),
            ]
        )
        db.session.commit()
    original = (settings.dashboard.trace_url, settings.dashboard.sentry_url)
    settings.dashboard.trace_url = "http://jaeger.local/trace/"
    settings.dashboard.sentry_url = "http://sentry.local/events/{id}/"
    try:
        page = dashboard.get(f"/dashboard/jobs/{job_id}").get_data(as_text=True)
    finally:
        settings.dashboard.trace_url, settings.dashboard.sentry_url = original
    assert f'href="http://jaeger.local/trace/{"ab" * 16}"' in page
    assert f'href="http://sentry.local/events/{"cd" * 16}/"' in page
    assert "io-1@host" in page and "bad input" in page and ">Retry</button>" in page
    assert "cpu-9@host" in page and "lost" in page
    assert "data-events" not in page  # a finished job opens no event stream
