"""One row per generation request: what was asked, the text it got, usage and timings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlalchemy import Float
from sqlalchemy import Index
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from app.models.base import Base
from app.models.base import UTCDateTime
from app.models.base import new_id
from app.models.base import utcnow
from app.models.job import Job

# What a generation's job state says of the generation, in the words the API always used.
STATUS_BY_JOB_STATE = {
    "queued": "pending",
    "started": "streaming",
    "retrying": "retrying",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


class Generation(Base):
    __tablename__ = "generations"
    # Newest first on the dashboard.
    __table_args__ = (Index("ix_generations_created_at_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # Set once the job is submitted; the row exists first so the task can always load it.
    job_id: Mapped[str | None] = mapped_column(String(36), unique=True)
    provider: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The whole text so far; the job's progress message only holds its tail.
    text: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(50))
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    # True when the provider sent no usage and the counts are Tasklane's estimate.
    usage_estimated: Mapped[bool] = mapped_column(default=False)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Where the work is comes from the job alone (loaded with the row), so the two can never
    # disagree; no foreign key: the row exists before its job.
    job: Mapped[Job | None] = relationship(
        primaryjoin="foreign(Generation.job_id) == Job.id", viewonly=True, lazy="joined"
    )

    @property
    def status(self) -> str:
        """pending -> streaming -> succeeded | failed | cancelled (retrying between tries)."""
        if self.job is None:
            return "pending"
        return STATUS_BY_JOB_STATE.get(self.job.state.value, self.job.state.value)
