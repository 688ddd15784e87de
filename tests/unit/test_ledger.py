"""Ledger transitions, without Celery: the rules a redelivered message meets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask import current_app
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.services import ledger


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def make_job(state: JobState = JobState.QUEUED, attempts: int = 0) -> str:
    job = Job(task="tests.echo", queue="dataset", args={}, state=state, attempts=attempts)
    db.session.add(job)
    db.session.commit()
    return job.id


def begin(job_id: str, max_attempts: int = 5) -> bool:
    return ledger.begin_attempt(
        job_id, task="tests.echo", queue="dataset", worker="w@h", args={}, max_attempts=max_attempts
    )


def test_first_delivery_starts_the_job_and_counts_the_attempt(ctx: None) -> None:
    job_id = make_job()
    assert begin(job_id) is True
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    assert (job.state, job.attempts, job.worker) == (JobState.STARTED, 1, "w@h")
    assert job.started_at is not None


def test_a_job_that_did_not_come_through_the_api_gets_its_row(ctx: None) -> None:
    job_id = str(uuid.uuid4())
    assert begin(job_id) is True
    job = db.session.get(Job, job_id)
    assert job is not None and job.attempts == 1


@pytest.mark.parametrize("state", [JobState.CANCELLED, JobState.SUCCEEDED, JobState.FAILED])
def test_finished_or_cancelled_jobs_never_run_again(ctx: None, state: JobState) -> None:
    job_id = make_job(state, attempts=1)
    assert begin(job_id) is False
    db.session.expire_all()
    assert db.session.get(Job, job_id).attempts == 1  # type: ignore[union-attr]


def test_a_job_delivered_too_often_is_failed_instead_of_run(ctx: None) -> None:
    job_id = make_job(JobState.STARTED, attempts=3)
    assert begin(job_id, max_attempts=3) is False
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None and job.state == JobState.FAILED
    assert job.error_type == "TooManyAttempts"


def test_progress_reports_a_requested_cancellation(ctx: None) -> None:
    job_id = make_job(JobState.STARTED, attempts=1)
    assert ledger.record_progress(job_id, 1, 10, "one") is False
    db.session.get(Job, job_id).cancel_requested_at = db.func.now()  # type: ignore[union-attr]
    db.session.commit()
    assert ledger.record_progress(job_id, 2, 10, "two") is True


def test_a_result_that_is_not_json_fails_the_job_clearly(ctx: None) -> None:
    job_id = make_job(JobState.STARTED, attempts=1)
    ledger.record_success(job_id, object())
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None and job.state == JobState.FAILED
    assert "not JSON" in (job.error_message or "")


@pytest.fixture
def postgres(ctx: None) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (set DATABASE_URL to a PostgreSQL server)")


def test_a_ledger_write_sets_synchronous_commit_for_its_own_statement_only(
    postgres: None,
) -> None:
    """Every job's start (and by default its finish) must not wait for an fsync; nothing
    else on the connection may inherit that (see the ledger module's doc)."""
    job_id = make_job()
    engine = current_app.extensions["ledger_engine"]
    # The clause the plain-SQL start and success statements carry.
    plain = (
        f"UPDATE jobs SET updated_at = now() WHERE id = %(p_id)s AND {ledger._PG_SYNC} "
        "RETURNING current_setting('synchronous_commit')"
    )
    for sync in ("off", "on"):
        assert ledger._run_sql(engine, plain, {"p_id": job_id, "p_sync": sync}) == (sync,)
    # ...and the one SQLAlchemy statements get (progress, failures, retries, cancels).
    statement = ledger._asynchronous_commit(
        update(Job)
        .where(Job.id == ledger._param("id"))
        .values(updated_at=ledger._param("updated_at"))
        .returning(func.current_setting("synchronous_commit")),
        "postgresql",
    )
    with engine.connect() as conn:
        inside = conn.execute(statement, {"p_id": job_id, "p_updated_at": utcnow()}).scalar()
        after = conn.execute(select(func.current_setting("synchronous_commit"))).scalar()
    assert (inside, after) == ("off", "on")


def test_a_connection_the_server_dropped_costs_no_transition(postgres: None) -> None:
    """After a database restart the first ledger write still lands (no pre-ping here)."""
    engine = current_app.extensions["ledger_engine"]
    engine.dispose()  # so the pool holds one connection: the one about to be dropped
    with engine.connect() as conn:
        backend = conn.execute(select(func.pg_backend_pid())).scalar()
    db.session.execute(select(func.pg_terminate_backend(backend)))
    db.session.commit()
    job_id = make_job()
    assert begin(job_id) is True
    ledger.record_success(job_id, {"ok": True})
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None and (job.state, job.result) == (JobState.SUCCEEDED, {"ok": True})
