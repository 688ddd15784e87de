"""The job ledger: one row per submitted job, kept current by the shared task base."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import Enum
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import UTCDateTime
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


def new_job_id() -> str:
    return str(uuid.uuid4())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Newest-first listing and cursor pagination walk this index.
        Index("ix_jobs_created_at_id", "created_at", "id"),
        Index("ix_jobs_queue_state_created_at", "queue", "state", "created_at"),
        # A project's newest-first listing walks this one.
        Index("ix_jobs_project_id_created_at_id", "project_id", "created_at", "id"),
    )

    # The job id is also the Celery task id, so the broker message and the row share one key.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_job_id)
    task: Mapped[str] = mapped_column(String(200), index=True)
    queue: Mapped[str] = mapped_column(String(64))
    state: Mapped[JobState] = mapped_column(
        Enum(
            JobState, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]
        ),
        default=JobState.QUEUED,
        index=True,
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
    worker: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    api_key_id: Mapped[int | None]
    # The tenant; NULL for system jobs (beat, traces shipping), which only admin keys see.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)
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

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.task} {self.state}>"
