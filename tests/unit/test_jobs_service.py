"""Listing, cursors, cancel and retry rules of the jobs service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.services import jobs
from app.services import pagination
from tests.support.jobs import job_row


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def test_listing_is_newest_first_and_cursor_walks_every_job_once(ctx: None) -> None:
    task = f"tests.listing-{uuid.uuid4().hex[:8]}"
    now = utcnow()
    made = []
    for i in range(7):
        job = Job(task=task, queue="dataset", args={}, created_at=now - timedelta(seconds=i))
        db.session.add(job)
        made.append(job)
    db.session.commit()
    expected = [job.id for job in made]

    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = jobs.list_jobs(task=task, limit=3, cursor=cursor)
        seen += [job.id for job in page]
        if cursor is None:
            break
    assert seen == expected


def test_listing_filters_by_state_and_queue(ctx: None) -> None:
    task = f"tests.filter-{uuid.uuid4().hex[:8]}"
    db.session.add_all(
        [
            job_row(JobState.FAILED, task=task, queue="mail"),
            job_row(JobState.FAILED, task=task, queue="dataset"),
            job_row(JobState.SUCCEEDED, task=task, queue="mail"),
        ]
    )
    db.session.commit()
    page, _ = jobs.list_jobs(task=task, state="failed", queue="mail")
    assert [(j.queue, j.state) for j in page] == [("mail", JobState.FAILED)]


def test_a_cursor_this_api_did_not_issue_is_refused(ctx: None) -> None:
    with pytest.raises(pagination.InvalidCursor):
        jobs.list_jobs(cursor="bm90IGEgY3Vyc29y")


def test_cancel_of_queued_job_is_final_and_of_running_job_is_a_request(ctx: None) -> None:
    queued = Job(task="tests.echo", queue="dataset", args={})
    running = job_row(JobState.STARTED)
    db.session.add_all([queued, running])
    db.session.commit()

    assert jobs.cancel(queued.id).state == JobState.CANCELLED
    after = jobs.cancel(running.id)
    assert after.state == JobState.STARTED and after.cancel_requested_at is not None
    with pytest.raises(jobs.InvalidTransition):
        jobs.cancel(queued.id)


def test_only_failed_or_cancelled_jobs_can_be_retried(app: Flask, ctx: None) -> None:
    job = job_row(JobState.SUCCEEDED)
    db.session.add(job)
    db.session.commit()
    with pytest.raises(jobs.InvalidTransition):
        jobs.retry(app.extensions["celery"], job.id, broker_timeout=1)


def test_check_arguments_uses_the_task_signature(app: Flask) -> None:
    echo = app.extensions["celery"].tasks["tests.echo"]
    jobs.check_arguments(echo, {"value": 1})
    with pytest.raises(jobs.InvalidArguments, match="unexpected keyword"):
        jobs.check_arguments(echo, {"nope": 1})
