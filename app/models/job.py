"""The job ledger: one row per submitted job, kept current by the shared task base."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import CheckConstraint
from sqlalchemy import Enum
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import text
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from app.models.base import Base
from app.models.base import UTCDateTime
from app.models.base import new_id
from app.models.base import utcnow


class JobState(enum.StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
# Attempts a job gets when nothing else says (a task's max_retries + TASK_MAX_REDELIVERIES + 1).
DEFAULT_MAX_ATTEMPTS = 4

_STATES_SQL = ", ".join(f"'{state.value}'" for state in JobState)
_TERMINAL_SQL = ", ".join(f"'{state.value}'" for state in sorted(TERMINAL_STATES))


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Newest-first listing and cursor pagination walk this index.
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_queue_state_created_at", "queue", "state", "created_at"),
        # Running jobs only: the lease heartbeat (by owner) and the recovery sweep (by expiry).
        Index(
            "ix_jobs_lease",
            "lease_owner",
            "lease_expires_at",
            postgresql_where=text("state = 'started'"),
            sqlite_where=text("state = 'started'"),
        ),
        # The outbox: publish intents not confirmed yet; nearly every row leaves it at once.
        Index(
            "ix_jobs_unpublished",
            "updated_at",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
        # The invariants every transition keeps (app/ledger/states.py); a statement that
        # would break one fails whole instead of leaving a half-written row.
        CheckConstraint(f"state IN ({_STATES_SQL})", name="state_known"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts_positive"),
        CheckConstraint("attempts <= max_attempts", name="attempts_within_budget"),
        CheckConstraint(
            "state <> 'started' OR (attempts >= 1 AND started_at IS NOT NULL "
            "AND lease_expires_at IS NOT NULL)",
            name="started_has_attempt_and_lease",
        ),
        CheckConstraint(
            "state = 'started' OR (lease_owner IS NULL AND lease_expires_at IS NULL)",
            name="lease_only_while_started",
        ),
        CheckConstraint(
            f"state NOT IN ({_TERMINAL_SQL}) OR finished_at IS NOT NULL",
            name="finished_has_time",
        ),
        # The dashboard's per-minute chart: a range of finished_at within two states.
        Index("ix_jobs_state_finished_at", "state", "finished_at"),
        # The dashboard's failure groups (index-only count) and each group's latest failure.
        Index("ix_jobs_state_task_error_type", "state", "task", "error_type", "finished_at"),
        # A project's newest-first listing walks this one.
        Index("ix_jobs_project_id_created_at_id", "project_id", "created_at", "id"),
    )

    # The job id is also the Celery task id, so the broker message and the row share one key.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    task: Mapped[str] = mapped_column(String(200), index=True)
    queue: Mapped[str] = mapped_column(String(64))
    state: Mapped[JobState] = mapped_column(
        Enum(
            JobState, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        # No index of its own: ix_jobs_state_finished_at begins with it, and every transition
        # writes an entry into each index of this table (migration l1).
        default=JobState.QUEUED,
    )
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    priority: Mapped[int | None]
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime)

    progress_current: Mapped[int | None]
    progress_total: Mapped[int | None]
    progress_message: Mapped[str | None] = mapped_column(String(500))

    result: Mapped[Any | None] = mapped_column(JSON)
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)

    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(
        default=DEFAULT_MAX_ATTEMPTS, server_default=str(DEFAULT_MAX_ATTEMPTS)
    )
    worker: Mapped[str | None] = mapped_column(String(200))
    # The running attempt's lease: the process that runs it renews it (app/ledger/leases.py);
    # once it expires, the recovery loop publishes the job again as its next attempt.
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The outbox: NULL while the job's message may not have reached the broker; the relay
    # publishes such jobs (app/ledger/outbox.py).
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    api_key_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="SET NULL"), index=True
    )
    # The tenant; NULL for system jobs (beat, traces shipping), which only admin keys see.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    # Who gets the job_finished mail; NULL (nearly every job) costs nothing at publish or run.
    notify_to: Mapped[list[str] | None] = mapped_column(JSON)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Observability: the OpenTelemetry trace that submitted the job, and its last Sentry error.
    trace_id: Mapped[str | None] = mapped_column(String(32), index=True)
    sentry_event_id: Mapped[str | None] = mapped_column(String(32))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Every ended attempt, oldest first; loaded only where asked for (GET /jobs/{id}). The
    # running one lives in this row until it ends (app/ledger/statements.py): `attempt_log`.
    attempt_rows: Mapped[list[JobAttempt]] = relationship(
        order_by="JobAttempt.number", viewonly=True
    )

    @property
    def attempt_log(self) -> list[JobAttempt]:
        """Every attempt, oldest first: the ended ones' rows, then the one the job row holds
        (number, worker, start): the running attempt, or the one that succeeded, which never
        gets a row of its own (app/ledger/statements.py, KEEPS_ATTEMPT_ROW)."""
        held = self._held_attempt()
        if held is None:
            return list(self.attempt_rows)
        # A row an older release opened at start for the same attempt is this one.
        return [row for row in self.attempt_rows if row.number != held.number] + [held]

    def _held_attempt(self) -> JobAttempt | None:
        if self.started_at is None or self.attempts < 1:
            return None
        if self.state not in (JobState.STARTED, JobState.SUCCEEDED):
            return None
        succeeded = self.state == JobState.SUCCEEDED
        return JobAttempt(
            job_id=self.id,
            number=self.attempts,
            worker=self.worker,
            started_at=self.started_at,
            finished_at=self.finished_at if succeeded else None,
            outcome=JobState.SUCCEEDED.value if succeeded else None,
        )

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} {self.state}>"


class JobAttempt(Base):
    """One run of a job: who ran it, when, and how it ended (NULL outcome: still running)."""

    __tablename__ = "job_attempts"
    __table_args__ = (
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("(outcome IS NULL) = (finished_at IS NULL)", name="finished_has_outcome"),
    )

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    worker: Mapped[str | None] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # succeeded, failed, retrying, cancelled, or lost (its worker died; see leases).
    outcome: Mapped[str | None] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(String(200))
    error_message: Mapped[str | None] = mapped_column(Text)
