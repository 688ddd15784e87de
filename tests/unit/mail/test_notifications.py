"""The job_finished mail on request: only for jobs that asked, only once they are final."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator

import pytest
from celery import Task
from celery.exceptions import TimeLimitExceeded
from flask import Flask
from sqlalchemy import select

from app.extensions.ext_database import db
from app.hooks import Outcome
from app.ledger.publishing import NOTIFY_HEADER
from app.models import Job
from app.models import JobState
from app.models.mail import Mail
from app.services.mail import notifications
from tests.support.jobs import stored_job

TO = ["owner@example.org"]


def new_job(state: JobState, notify_to: list[str] | None = TO) -> Job:
    # job_row gives a finished job its finish time (the CHECK constraint wants one).
    return stored_job(state, attempts=1, notify_to=notify_to)


def mail_of(job: Job) -> Mail | None:
    return db.session.scalar(select(Mail).where(Mail.dedup_key == f"job-finished:{job.id}"))


@pytest.fixture
def echo(mail_app: Flask) -> Task:
    task: Task = mail_app.extensions["celery"].tasks["tests.echo"]
    return task


@pytest.fixture
def running_as(echo: Task) -> Iterator[Callable[..., None]]:
    """Run the postrun handler as a worker would: with the job's request on the task."""
    pushed = 0

    def push(job: Job, **headers: object) -> None:
        nonlocal pushed
        echo.push_request(id=job.id, called_directly=False, **headers)
        pushed += 1

    yield push
    for _ in range(pushed):
        echo.pop_request()


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_a_final_job_that_asked_is_mailed_once(mail_app: Flask, state: JobState) -> None:
    job = new_job(state)
    celery_app = mail_app.extensions["celery"]

    first = notifications.notify_if_finished(celery_app, job.id)
    again = notifications.notify_if_finished(celery_app, job.id)

    assert first is not None and again is not None and again.id == first.id
    assert first.recipients == TO
    assert first.subject == f"Tasklane job tests.echo {state.value}"


@pytest.mark.parametrize("state", [JobState.QUEUED, JobState.STARTED, JobState.RETRYING])
def test_a_job_not_yet_final_is_not_mailed(mail_app: Flask, state: JobState) -> None:
    job = new_job(state)
    assert notifications.notify_if_finished(mail_app.extensions["celery"], job.id) is None
    assert mail_of(job) is None


def test_a_job_that_did_not_ask_is_not_mailed(mail_app: Flask) -> None:
    job = new_job(JobState.SUCCEEDED, notify_to=None)
    assert notifications.notify_if_finished(mail_app.extensions["celery"], job.id) is None
    assert mail_of(job) is None


def test_the_hook_acts_on_the_header_only(
    mail_app: Flask, echo: Task, running_as: Callable[..., None]
) -> None:
    without_header = new_job(JobState.SUCCEEDED)
    running_as(without_header)
    notifications.after_run(Outcome(echo, without_header.id, JobState.SUCCEEDED))
    assert mail_of(without_header) is None

    with_header = new_job(JobState.SUCCEEDED)
    running_as(with_header, **{NOTIFY_HEADER: True})
    notifications.after_run(Outcome(echo, with_header.id, JobState.SUCCEEDED))
    mail = mail_of(with_header)
    assert mail is not None and mail.recipients == TO


def test_hook_errors_never_reach_the_worker_or_the_job(
    mail_app: Flask, echo: Task, running_as: Callable[..., None]
) -> None:
    job = new_job(JobState.SUCCEEDED, notify_to=["not an address"])
    running_as(job, **{NOTIFY_HEADER: True})

    notifications.after_run(Outcome(echo, job.id, JobState.SUCCEEDED))

    assert mail_of(job) is None
    db.session.refresh(job)
    assert job.state == JobState.SUCCEEDED


def test_a_hard_time_limit_failure_is_mailed_without_a_header(mail_app: Flask, echo: Task) -> None:
    killed = new_job(JobState.FAILED)
    raised = new_job(JobState.FAILED)

    notifications.after_run(
        Outcome(echo, killed.id, JobState.FAILED, TimeLimitExceeded(3), in_main_process=True)
    )
    notifications.after_run(
        Outcome(echo, raised.id, JobState.FAILED, ValueError("x"), in_main_process=True)
    )

    mail = mail_of(killed)
    assert mail is not None and mail.subject == "Tasklane job tests.echo failed"
    # Ordinary failures are left to task_postrun, which knows from the header who asked.
    assert mail_of(raised) is None
