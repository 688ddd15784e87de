"""Mail and its send log: one row per mail, one log row per attempt to hand it to a server."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any
from typing import cast

from sqlalchemy import JSON
from sqlalchemy import Enum
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import case
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import type_coerce
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import column_property
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from app.models.base import Base
from app.models.base import UTCDateTime
from app.models.base import new_id
from app.models.base import utcnow
from app.models.job import Job
from app.models.job import JobState

# The outcome of a log entry whose attempt stopped after the server had the message.
UNCONFIRMED_OUTCOME = "unconfirmed"


class MailState(enum.StrEnum):
    """How a mail stands, derived from its job and its send log (never stored)."""

    QUEUED = "queued"
    # Its job is running an attempt.
    SENDING = "sending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    # The sender stopped while the server had the message; it may or may not have arrived.
    UNCONFIRMED = "unconfirmed"
    CANCELLED = "cancelled"


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])


class Mail(Base):
    __tablename__ = "mails"
    # Newest first on the dashboard.
    __table_args__ = (Index("ix_mails_created_at_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    template: Mapped[str] = mapped_column(String(100))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Rendered once at creation, so every attempt sends the very same message.
    subject: Mapped[str] = mapped_column(String(998))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    # Internal senders (alerts, reports, notifications) pass one so a repeat sends nothing.
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    if TYPE_CHECKING:
        # Derived from the job (below the class), never stored: see `Mail.state`.
        state: Mapped[MailState]
        attempts: Mapped[int]
    # The SMTP facts of the mail; where its work is (state, attempts) is its job's.
    transport: Mapped[str | None] = mapped_column(String(16))
    smtp_code: Mapped[int | None]
    smtp_response: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    log: Mapped[list[MailSend]] = relationship(
        back_populates="mail", order_by="MailSend.id", cascade="all, delete-orphan"
    )


class MailSend(Base):
    """The mail log: one row per attempt, written before the server sees the message."""

    __tablename__ = "mail_sends"

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[str] = mapped_column(ForeignKey("mails.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int]
    worker: Mapped[str | None] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(16))
    smtp_code: Mapped[int | None]
    smtp_response: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    mail: Mapped[Mail] = relationship(back_populates="log")


def _state(value: MailState) -> Any:
    return literal(value.value)


_BY_JOB_STATE = {
    JobState.STARTED.value: _state(MailState.SENDING),
    JobState.RETRYING.value: _state(MailState.RETRYING),
    JobState.SUCCEEDED.value: _state(MailState.SENT),
    JobState.FAILED.value: _state(MailState.FAILED),
    JobState.CANCELLED.value: _state(MailState.CANCELLED),
}

# Read-only, computed by the database on every load: the job's state in the mail's words,
# after what only the mail knows (the server accepted it; an attempt left it unconfirmed).
Mail.state = column_property(
    type_coerce(
        case(
            (Mail.sent_at.isnot(None), _state(MailState.SENT)),
            (
                exists().where(
                    MailSend.mail_id == Mail.id, MailSend.outcome == UNCONFIRMED_OUTCOME
                ),
                _state(MailState.UNCONFIRMED),
            ),
            else_=case(
                _BY_JOB_STATE,
                value=select(Job.state).where(Job.id == Mail.job_id).scalar_subquery(),
                else_=_state(MailState.QUEUED),
            ),
        ),
        # The enum's type gives loaded values back as MailState.
        cast(Any, _enum(MailState)),
    )
)
Mail.attempts = column_property(
    func.coalesce(select(Job.attempts).where(Job.id == Mail.job_id).scalar_subquery(), 0)
)
