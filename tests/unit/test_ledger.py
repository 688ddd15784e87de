"""Ledger transitions, without Celery: the rules a redelivered message meets."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from flask import Flask
from flask import current_app
from sqlalchemy import create_engine
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import SQLAlchemyError

from app.extensions.ext_database import db
from app.ledger import leases
from app.ledger import outbox
from app.ledger import states
from app.ledger import transitions as ledger
from app.ledger.execute import run_sql
from app.models import Job
from app.models import JobAttempt
from app.models import JobState
from app.models.base import utcnow
from tests.support.jobs import job_row


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def make_job(state: JobState = JobState.QUEUED, **values: object) -> str:
    job = job_row(state, **values)
    db.session.add(job)
    db.session.commit()
    return job.id


def begin(job_id: str, max_attempts: int = 5) -> int | None:
    return ledger.begin_attempt(
        job_id, task="tests.echo", queue="dataset", worker="w@h", args={}, max_attempts=max_attempts
    )


def load(job_id: str) -> Job:
    db.session.expire_all()
    job = db.session.get(Job, job_id)
    assert job is not None
    return job


def test_first_delivery_starts_the_job_records_the_attempt_and_takes_a_lease(ctx: None) -> None:
    job_id = make_job()
    assert begin(job_id) == 1
    job = load(job_id)
    assert (job.state, job.attempts, job.worker) == (JobState.STARTED, 1, "w@h")
    assert job.started_at is not None and job.published_at is not None
    assert job.lease_owner == leases.owner() and job.lease_expires_at is not None
    assert job.lease_expires_at > utcnow()
    [attempt] = job.attempt_log
    assert (attempt.number, attempt.worker, attempt.outcome) == (1, "w@h", None)
    ledger.record_success(job_id, {"ok": True}, 1)
    job = load(job_id)
    assert (job.state, job.lease_owner, job.lease_expires_at) == (JobState.SUCCEEDED, None, None)
    assert job.attempt_log[0].outcome == "succeeded" and job.attempt_log[0].finished_at


def attempt_rows(job_id: str) -> list[tuple[int, str | None, str | None]]:
    rows = db.session.execute(
        select(JobAttempt.number, JobAttempt.worker, JobAttempt.outcome)
        .where(JobAttempt.job_id == job_id)
        .order_by(JobAttempt.number)
    ).all()
    db.session.rollback()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_the_running_attempt_lives_in_the_job_row_and_its_row_is_written_when_it_ends(
    ctx: None,
) -> None:
    """The start writes one row (the job's), the end writes the attempt's: the API's log
    shows the running attempt either way."""
    job_id = make_job()
    assert begin(job_id) == 1
    assert attempt_rows(job_id) == []
    [running] = load(job_id).attempt_log
    assert (running.number, running.worker, running.outcome, running.started_at) == (
        1,
        "w@h",
        None,
        load(job_id).started_at,
    )
    assert ledger.record_retry(job_id, RuntimeError("again"), None, 1)
    assert attempt_rows(job_id) == [(1, "w@h", "retrying")]
    assert begin(job_id) == 2
    assert [(a.number, a.outcome) for a in load(job_id).attempt_log] == [(1, "retrying"), (2, None)]
    assert ledger.record_failure(job_id, ValueError("no"), 2)
    assert attempt_rows(job_id) == [(1, "w@h", "retrying"), (2, "w@h", "failed")]


@pytest.mark.parametrize(
    ("ending", "outcome", "row_outcome"),
    [("failure", "failed", "failed"), ("success", "succeeded", None)],
)
def test_an_attempt_row_an_older_worker_opened_at_start_is_finished_not_doubled(
    ctx: None, ending: str, outcome: str, row_outcome: str | None
) -> None:
    """Workers of the previous release wrote an open row at start. A failure of this one
    closes that row (ON CONFLICT); a success leaves it and the job row stands for it: the
    log shows the attempt once either way."""
    job_id = make_job()
    assert begin(job_id) == 1
    db.session.add(JobAttempt(job_id=job_id, number=1, worker="w@h", started_at=utcnow()))
    db.session.commit()
    assert len(load(job_id).attempt_log) == 1
    if ending == "failure":
        assert ledger.record_failure(job_id, ValueError("no"), 1)
    else:
        assert ledger.record_success(job_id, None, 1)
    [attempt] = load(job_id).attempt_log
    assert (attempt.outcome, attempt.finished_at is not None) == (outcome, True)
    assert attempt_rows(job_id) == [(1, "w@h", row_outcome)]


def test_a_success_keeps_its_attempt_in_the_job_row_and_writes_no_attempt_row(
    ctx: None,
) -> None:
    """Nothing leaves `succeeded`, so its attempt needs no row: the finish is one UPDATE,
    and the log still shows every attempt, the succeeded one from the job row."""
    job_id = make_job()
    assert begin(job_id) == 1
    assert ledger.record_retry(job_id, RuntimeError("again"), None, 1)
    assert begin(job_id) == 2
    assert ledger.record_success(job_id, {"ok": True}, 2)
    assert attempt_rows(job_id) == [(1, "w@h", "retrying")]
    job = load(job_id)
    assert [(a.number, a.worker, a.outcome) for a in job.attempt_log] == [
        (1, "w@h", "retrying"),
        (2, "w@h", "succeeded"),
    ]
    last = job.attempt_log[-1]
    assert (last.started_at, last.finished_at) == (job.started_at, job.finished_at)
    assert last.error_type is None and last.finished_at is not None


def test_a_job_that_did_not_come_through_the_api_gets_its_row(ctx: None) -> None:
    job_id = str(uuid.uuid4())
    assert begin(job_id, max_attempts=3) == 1
    job = load(job_id)
    assert (job.attempts, job.max_attempts, len(job.attempt_log)) == (1, 3, 1)


@pytest.mark.parametrize("state", [JobState.CANCELLED, JobState.SUCCEEDED, JobState.FAILED])
def test_finished_or_cancelled_jobs_never_run_again(ctx: None, state: JobState) -> None:
    job_id = make_job(state, attempts=1)
    assert begin(job_id) is None
    assert load(job_id).attempts == 1


def test_a_delivery_of_a_job_under_a_live_lease_does_not_run_it(ctx: None) -> None:
    job_id = make_job()
    assert begin(job_id) == 1
    assert begin(job_id) is None  # a duplicate message: the first attempt is running
    assert load(job_id).attempts == 1


def test_an_expired_lease_is_taken_over_as_the_next_attempt(ctx: None) -> None:
    job_id = make_job()
    assert begin(job_id) == 1
    db.session.execute(
        update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()
    assert begin(job_id) == 2
    job = load(job_id)
    assert [(a.number, a.outcome) for a in job.attempt_log] == [(1, "lost"), (2, None)]
    # The lost attempt's late finish is refused; the running one's is recorded.
    assert ledger.record_success(job_id, "late", 1) is False
    assert ledger.record_success(job_id, "mine", 2) is True
    assert load(job_id).result == "mine"


def test_a_job_delivered_too_often_is_failed_instead_of_run(ctx: None) -> None:
    job_id = make_job(JobState.RETRYING, attempts=3, max_attempts=3)
    assert begin(job_id) is None
    job = load(job_id)
    assert (job.state, job.error_type) == (JobState.FAILED, "TooManyAttempts")


def test_a_transition_not_in_the_table_is_refused_and_writes_nothing(ctx: None) -> None:
    assert not states.allowed(JobState.QUEUED, JobState.SUCCEEDED)
    job_id = make_job()
    before = load(job_id).updated_at
    assert ledger.record_success(job_id, {"ok": True}) is False
    assert ledger.record_failure(job_id, ValueError("no")) is False
    job = load(job_id)
    assert (job.state, job.result, job.error_type) == (JobState.QUEUED, None, None)
    assert job.updated_at == before


def test_the_schema_refuses_a_row_that_breaks_an_invariant(ctx: None) -> None:
    job_id = make_job()
    with pytest.raises(IntegrityError):
        # started without a lease or a start time
        db.session.execute(update(Job).where(Job.id == job_id).values(state=JobState.STARTED))
        db.session.flush()
    db.session.rollback()
    with pytest.raises(IntegrityError):
        db.session.add(job_row(JobState.QUEUED, attempts=5, max_attempts=5))
        db.session.flush()
        db.session.execute(update(Job).values(attempts=Job.max_attempts + 1))
        db.session.flush()
    db.session.rollback()


def test_progress_reports_a_requested_cancellation(ctx: None) -> None:
    job_id = make_job(JobState.STARTED)
    assert ledger.record_progress(job_id, 1, 10, "one") is False
    db.session.execute(update(Job).where(Job.id == job_id).values(cancel_requested_at=utcnow()))
    db.session.commit()
    assert ledger.record_progress(job_id, 2, 10, "two") is True
    assert ledger.cancel_requested(job_id) is True


def test_a_result_that_is_not_json_fails_the_job_clearly(ctx: None) -> None:
    job_id = make_job()
    number = begin(job_id)
    ledger.record_success(job_id, object(), number)
    job = load(job_id)
    assert job.state == JobState.FAILED and "not JSON" in (job.error_message or "")
    assert job.attempt_log[0].error_type == "TypeError"


def test_one_statement_renews_every_lease_of_a_process(ctx: None) -> None:
    engine = current_app.extensions["ledger_engine"]
    owner = f"renew-{uuid.uuid4().hex[:6]}:1"
    soon = utcnow() + timedelta(seconds=2)
    ids = [make_job(JobState.STARTED, lease_owner=owner, lease_expires_at=soon) for _ in range(3)]
    other = make_job(JobState.STARTED, lease_expires_at=soon)
    leases.renew(engine, owner, 600)
    assert all(load(i).lease_expires_at > utcnow() + timedelta(seconds=500) for i in ids)  # type: ignore[operator]
    assert load(other).lease_expires_at == soon


def test_recovery_sends_an_expired_job_back_or_fails_it_out_of_attempts(ctx: None) -> None:
    engine = current_app.extensions["ledger_engine"]
    gone = utcnow() - timedelta(seconds=1)
    again = make_job()
    assert begin(again) == 1
    db.session.execute(update(Job).where(Job.id == again).values(lease_expires_at=gone))
    spent = make_job(JobState.STARTED, attempts=2, max_attempts=2, lease_expires_at=gone)
    db.session.commit()
    moved = {job["id"]: job for job in leases.recover_expired(engine)}
    assert moved[again]["state"] == JobState.QUEUED and moved[spent]["state"] == JobState.FAILED
    requeued, failed = load(again), load(spent)
    assert (requeued.state, requeued.published_at, requeued.lease_owner) == (
        JobState.QUEUED,
        None,
        None,
    )
    assert requeued.attempt_log[0].outcome == "lost"
    assert (failed.state, failed.error_type) == (JobState.FAILED, "WorkerLost")
    assert again not in {job["id"] for job in leases.recover_expired(engine)}


def test_the_relay_claims_only_unconfirmed_intents_past_the_grace_and_each_once(
    ctx: None,
) -> None:
    engine = current_app.extensions["ledger_engine"]
    old = utcnow() - timedelta(minutes=5)
    due = make_job(updated_at=old, created_at=old)
    fresh = make_job()
    confirmed = make_job(updated_at=old, created_at=old)
    outbox.flush(engine, [confirmed])
    claimed = {job["id"] for job in outbox.claim_due(engine, grace=5)}
    assert due in claimed and fresh not in claimed and confirmed not in claimed
    assert due not in {job["id"] for job in outbox.claim_due(engine, grace=5)}


def test_a_database_that_does_not_answer_raises_sqlalchemy_errors_only(ctx: None) -> None:
    """The driver's own errors used to escape the task base's handler (issue 10)."""
    url = current_app.extensions["ledger_engine"].url
    if url.get_backend_name() != "postgresql":
        pytest.skip("PostgreSQL only")
    nowhere = create_engine(url.set(port=1), pool_pre_ping=False)
    with pytest.raises(SQLAlchemyError):
        run_sql(nowhere, "SELECT 1", {})


@pytest.fixture
def postgres(ctx: None) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only (set DATABASE_URL to a PostgreSQL server)")


def test_a_ledger_write_sets_synchronous_commit_for_its_own_statement_only(
    postgres: None,
) -> None:
    """Every job's start (and by default its finish) must not wait for an fsync; nothing
    else on the connection may inherit that (see app/ledger/transitions.py)."""
    from app.ledger.statements import _PG_SYNC

    job_id = make_job()
    engine = current_app.extensions["ledger_engine"]
    plain = (
        f"UPDATE jobs SET updated_at = now() WHERE id = %(id)s AND {_PG_SYNC} "
        "RETURNING current_setting('synchronous_commit')"
    )
    engine.dispose()  # one pooled connection, so the second query runs on the same one
    for sync in ("off", "on"):
        assert run_sql(engine, plain, {"id": job_id, "sync": sync}) == (sync,)
        assert run_sql(engine, "SELECT current_setting('synchronous_commit')", {}) == ("on",)


def test_a_connection_the_server_dropped_costs_no_transition(postgres: None) -> None:
    """After a database restart the first ledger write still lands (no pre-ping here)."""
    engine = current_app.extensions["ledger_engine"]
    engine.dispose()  # so the pool holds one connection: the one about to be dropped
    with engine.connect() as conn:
        backend = conn.execute(select(func.pg_backend_pid())).scalar()
    db.session.execute(select(func.pg_terminate_backend(backend)))
    db.session.commit()
    job_id = make_job()
    number = begin(job_id)
    assert number == 1
    ledger.record_success(job_id, {"ok": True}, number)
    job = load(job_id)
    assert (job.state, job.result) == (JobState.SUCCEEDED, {"ok": True})
