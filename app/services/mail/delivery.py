"""Delivering a stored mail exactly once in effect: one send attempt per job attempt.

The mail's job (app/ledger) says where the work is and runs one attempt at a time; the
mail keeps only what the server said. Each attempt logs itself (`MailSend`, numbered by
the job's attempt) and marks its log row `handed_over` right before the message goes to
the server. A delivery that finds the last log row `handed_over` and unfinished knows an
earlier attempt was stopped after handing the message over: the outbox can prove whether
the file is there; an SMTP server cannot be asked, so the mail is left `unconfirmed`
instead of risking a second copy.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from typing import cast

from flask import current_app
from sqlalchemy import CursorResult
from sqlalchemy import Update
from sqlalchemy import exists
from sqlalchemy import update
from sqlalchemy.orm import aliased

from app.extensions.ext_database import db
from app.models.base import utcnow
from app.models.mail import UNCONFIRMED_OUTCOME
from app.models.mail import Mail
from app.models.mail import MailSend
from app.models.mail import MailState
from app.services.mail.errors import DeliveryUnconfirmed
from app.services.mail.errors import PermanentSendError
from app.services.mail.errors import SendError
from app.services.mail.errors import Superseded
from app.services.mail.errors import TransientSendError
from app.services.mail.mails import get
from app.services.mail.transport import OutboxTransport
from app.services.mail.transport import Reply
from app.services.mail.transport import SmtpSettings
from app.services.mail.transport import SmtpTransport
from app.services.mail.transport import Transport
from app.services.retrying import backoff_delay
from app.settings import reveal
from config import Settings
from config import current_settings

CONNECTING = "connecting"
HANDED_OVER = "handed_over"


def _settings() -> Settings:
    settings: Settings = current_settings()
    return settings


def transport(settings: Settings) -> Transport:
    if not settings.mail.smtp_host:
        folder = settings.mail.outbox_dir or str(Path(current_app.instance_path) / "outbox")
        return OutboxTransport(Path(folder))
    return SmtpTransport(
        SmtpSettings(
            host=settings.mail.smtp_host,
            port=settings.mail.smtp_port,
            security=settings.mail.smtp_security,
            user=settings.mail.smtp_user,
            password=reveal(settings.mail.smtp_password),
            ca_file=settings.mail.smtp_ca_file,
            connect_timeout=settings.mail.smtp_connect_timeout,
            timeout=settings.mail.smtp_timeout,
        )
    )


def build_message(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["Subject"] = mail.subject
    message["From"] = sender
    message["To"] = ", ".join(mail.recipients)
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = mail.message_id
    message["X-Tasklane-Mail-Id"] = mail.id
    message.set_content(mail.text_body)
    message.add_alternative(mail.html_body, subtype="html")
    return message


def retry_delay(retries: int) -> float:
    """Exponential backoff with jitter, so retries of many mails don't arrive together."""
    settings = _settings()
    return backoff_delay(
        retries, base=settings.mail.retry_backoff, cap=settings.mail.retry_backoff_max
    )


def summary(mail: Mail) -> dict[str, Any]:
    """The job's result: what the delivery achieved (the job's own state says the rest)."""
    db.session.refresh(mail)
    return {
        "mail_id": mail.id,
        # Inside the attempt the job is still running; the result says what it did.
        "state": MailState.SENT.value if mail.sent_at is not None else mail.state.value,
        "message_id": mail.message_id,
        "smtp_code": mail.smtp_code,
        "smtp_response": mail.smtp_response,
    }


def _finish(mail: Mail, log: MailSend, outcome: str, **values: Any) -> None:
    now = utcnow()
    for name, value in values.items():
        setattr(mail, name, value)
    log.outcome = outcome
    log.smtp_code = mail.smtp_code
    log.smtp_response = mail.smtp_response
    log.finished_at = now
    if outcome == "accepted":
        mail.sent_at = now
    db.session.commit()


def _close_interrupted(mail: Mail) -> None:
    for entry in mail.log:
        if entry.finished_at is None:
            entry.outcome = "interrupted"
            entry.finished_at = utcnow()


def _settle_handed_over(mail: Mail, log: MailSend, carrier: Transport) -> dict[str, Any]:
    """An earlier attempt stopped after handing the message over: decide without resending."""
    proof = carrier.delivered(mail.id)
    if proof is not None:
        _finish(mail, log, "accepted", smtp_code=proof.code, smtp_response=proof.text)
        return summary(mail)
    _finish(
        mail,
        log,
        UNCONFIRMED_OUTCOME,
        error=(
            "the sender stopped after handing the message to the server and before recording "
            "its answer; it was not sent again so no one gets it twice. Look for Message-ID "
            f"{mail.message_id} in the server's log."
        ),
    )
    raise DeliveryUnconfirmed(str(mail.error))


def _changed(statement: Update) -> int:
    """Rows an UPDATE changed: how a compare-and-set learns whether it won."""
    result = cast(CursorResult[Any], db.session.execute(statement))
    return result.rowcount


def _hand_over(log: MailSend) -> bool:
    """Mark the point of no return, unless a newer attempt of the mail logged itself since."""
    newer = aliased(MailSend)
    marked = _changed(
        update(MailSend)
        .where(
            MailSend.id == log.id,
            MailSend.outcome == CONNECTING,
            ~exists().where(newer.mail_id == log.mail_id, newer.id > log.id),
        )
        .values(outcome=HANDED_OVER)
    )
    db.session.commit()
    return bool(marked)


def deliver(mail_id: str, *, worker: str | None) -> dict[str, Any]:
    """One send attempt; raises TransientSendError when a retry may succeed."""
    settings = _settings()
    carrier = transport(settings)
    mail = get(mail_id)
    if mail.sent_at is not None:
        # A redelivered or retried job of a sent mail: nothing more to send.
        return summary(mail)
    last = mail.log[-1] if mail.log else None
    if last is not None and last.outcome == UNCONFIRMED_OUTCOME:
        # Retried by hand: still nobody can say whether it arrived, so it is not resent.
        raise DeliveryUnconfirmed(str(mail.error))
    if last is not None and last.outcome == HANDED_OVER and last.finished_at is None:
        return _settle_handed_over(mail, last, carrier)
    _close_interrupted(mail)
    # The job's attempt number (the ledger runs one at a time); the log's own count when
    # the mail has no job (delivered directly, as the unit tests and bench/mail.py do).
    attempt = max(mail.attempts, len(mail.log) + 1)
    mail.transport = carrier.name
    log = MailSend(mail_id=mail.id, attempt=attempt, worker=worker, outcome=CONNECTING)
    db.session.add(log)
    db.session.commit()
    try:
        reply: Reply = carrier.send(
            build_message(mail, settings.mail.from_address),
            parseaddr(settings.mail.from_address)[1],
            mail.recipients,
            lambda: _hand_over(log),
        )
    except Superseded:
        db.session.rollback()
        log.outcome = "superseded"
        log.finished_at = utcnow()
        db.session.commit()
        return summary(mail)
    except TransientSendError as exc:
        _failed_attempt(mail, log, "deferred", exc)
        raise
    except DeliveryUnconfirmed as exc:
        _failed_attempt(mail, log, UNCONFIRMED_OUTCOME, exc)
        raise
    except PermanentSendError as exc:
        _failed_attempt(mail, log, "rejected", exc)
        raise
    _finish(mail, log, "accepted", smtp_code=reply.code, smtp_response=reply.text, error=None)
    return summary(mail)


def _failed_attempt(mail: Mail, log: MailSend, outcome: str, exc: SendError) -> None:
    db.session.rollback()
    db.session.refresh(mail)
    _finish(mail, log, outcome, smtp_code=exc.code, smtp_response=exc.reply, error=str(exc))


def give_up(mail_id: str, exc: BaseException) -> None:
    """Retries are used up: the job fails with this reason; the mail keeps it too."""
    mail = get(mail_id)
    if mail.sent_at is None:
        mail.error = f"gave up after {len(mail.log)} attempts; last: {exc}"
        db.session.commit()
