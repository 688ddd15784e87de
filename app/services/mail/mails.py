"""Queueing mail and delivering it exactly once in effect.

A mail row (stable id, Message-ID, rendered parts) commits before its send job is
published. Each attempt claims the row (compare-and-set on `attempts`), logs itself, and
marks the row `sending` right before the message goes to the server. A delivery that finds
its mail `sending` knows an earlier attempt was stopped after handing the message over:
the outbox can prove whether the file is there; an SMTP server cannot be asked, so the
mail is left `unconfirmed` instead of risking a second copy.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from email.utils import getaddresses
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from typing import cast

from celery import Celery
from flask import current_app
from marshmallow import ValidationError
from marshmallow.validate import Email
from sqlalchemy import CursorResult
from sqlalchemy import Update
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from app.extensions.ext_database import db
from app.models.base import utcnow
from app.models.mail import Mail
from app.models.mail import MailSend
from app.models.mail import MailState
from app.models.mail import new_mail_id
from app.services import jobs
from app.services.jobs import Submission
from app.services.mail import templates
from app.services.mail.errors import DeliveryUnconfirmed
from app.services.mail.errors import InvalidRecipient
from app.services.mail.errors import MailNotFound
from app.services.mail.errors import PermanentSendError
from app.services.mail.errors import SendError
from app.services.mail.errors import Superseded
from app.services.mail.errors import TransientSendError
from app.services.mail.transport import OutboxTransport
from app.services.mail.transport import Reply
from app.services.mail.transport import SmtpSettings
from app.services.mail.transport import SmtpTransport
from app.services.mail.transport import Transport
from app.services.retrying import backoff_delay
from config import Settings
from config import current_settings
from settings import reveal

SEND_TASK = "mail.send"
MAX_RECIPIENTS = 50
FINAL_STATES = frozenset({MailState.SENT, MailState.FAILED, MailState.UNCONFIRMED})
_validate_email = Email()
# The addresses Tasklane takes, stated as this pattern in the OpenAPI document too: a
# dot-atom local part and a dotted domain (or localhost), every match also passes Email().
ADDRESS_PATTERN = (
    "^[A-Za-z0-9_+-]+(\\.[A-Za-z0-9_+-]+)*@"
    "(([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]{2,63}|localhost)$"
)
MAX_ADDRESS_CHARS = 254
_ADDRESS = re.compile(ADDRESS_PATTERN.removeprefix("^").removesuffix("$"))


def _settings() -> Settings:
    settings: Settings = current_settings()
    return settings


def check_recipients(recipients: list[str]) -> list[str]:
    if not recipients:
        raise InvalidRecipient("give at least one recipient in 'to'")
    if len(recipients) > MAX_RECIPIENTS:
        raise InvalidRecipient(f"at most {MAX_RECIPIENTS} recipients per mail")
    for address in recipients:
        try:
            if len(address) > MAX_ADDRESS_CHARS or not _ADDRESS.fullmatch(address):
                raise ValidationError("not an address")
            _validate_email(address)
        except ValidationError:
            raise InvalidRecipient(f"{address!r} is not a valid e-mail address") from None
    return list(recipients)


def split_addresses(value: str | None) -> list[str]:
    """Addresses from a comma-separated setting such as ALERT_EMAIL_TO."""
    return [address for _name, address in getaddresses([value or ""]) if address]


def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "tasklane.invalid"


def create_mail(
    *,
    template: str,
    to: list[str],
    context: dict[str, Any],
    dedup_key: str | None = None,
) -> tuple[Mail, bool]:
    """Render and store a mail; returns it and whether it is new (see `queue_mail`)."""
    if dedup_key:
        existing = db.session.scalar(select(Mail).where(Mail.dedup_key == dedup_key))
        if existing is not None:
            return existing, False
    recipients = check_recipients(to)
    rendered = templates.render(template, context)
    mail = Mail(
        id=new_mail_id(),
        template=template,
        recipients=recipients,
        context=context,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        dedup_key=dedup_key,
        state=MailState.QUEUED,
        created_at=utcnow(),
    )
    # Derived from the mail id: the same on every attempt, and traceable in server logs.
    mail.message_id = f"<{mail.id}@{_domain(_settings().mail.from_address)}>"
    db.session.add(mail)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = db.session.scalar(select(Mail).where(Mail.dedup_key == dedup_key))
        if existing is None:
            raise
        return existing, False
    return mail, True


def queue_mail(
    celery_app: Celery,
    *,
    template: str,
    to: list[str],
    context: dict[str, Any],
    dedup_key: str | None = None,
    api_key_id: int | None = None,
    project_id: int | None = None,
) -> tuple[Mail, bool]:
    """Render, store, then queue a mail; returns it and whether it is new.

    With a `dedup_key`, a second call with the same key returns the first mail unsent.
    """
    mail, created = create_mail(template=template, to=to, context=context, dedup_key=dedup_key)
    if not created:
        return mail, False
    try:
        job, _ = jobs.submit(
            celery_app,
            Submission(
                task=SEND_TASK,
                args={"mail_id": mail.id},
                api_key_id=api_key_id,
                project_id=project_id,
            ),
            broker_timeout=_settings().broker.submit_timeout,
        )
    except jobs.BrokerUnavailable:
        db.session.delete(mail)
        db.session.commit()
        raise
    mail.job_id = job.id
    db.session.commit()
    return mail, True


def get(mail_id: str) -> Mail:
    mail = db.session.get(Mail, mail_id)
    if mail is None:
        raise MailNotFound(f"no mail with id {mail_id!r}")
    return mail


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


def _finish(mail: Mail, log: MailSend, state: MailState, outcome: str, **values: Any) -> None:
    now = utcnow()
    mail.state = state
    for name, value in values.items():
        setattr(mail, name, value)
    log.outcome = outcome
    log.smtp_code = mail.smtp_code
    log.smtp_response = mail.smtp_response
    log.finished_at = now
    if state == MailState.SENT:
        mail.sent_at = now
    db.session.commit()


def summary(mail: Mail) -> dict[str, Any]:
    return {
        "mail_id": mail.id,
        "state": mail.state.value,
        "message_id": mail.message_id,
        "smtp_code": mail.smtp_code,
        "smtp_response": mail.smtp_response,
    }


def _close_interrupted(mail: Mail) -> None:
    for entry in mail.log:
        if entry.finished_at is None:
            entry.outcome = "interrupted"
            entry.finished_at = utcnow()


def _settle_handed_over(mail: Mail, carrier: Transport) -> dict[str, Any]:
    """An earlier attempt stopped after handing the message over: decide without resending."""
    proof = carrier.delivered(mail.id)
    log = mail.log[-1]
    if proof is not None:
        _finish(
            mail, log, MailState.SENT, "accepted", smtp_code=proof.code, smtp_response=proof.text
        )
        return summary(mail)
    _finish(
        mail,
        log,
        MailState.UNCONFIRMED,
        "unconfirmed",
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


def deliver(mail_id: str, *, worker: str | None) -> dict[str, Any]:
    """One send attempt; raises TransientSendError when a retry may succeed."""
    settings = _settings()
    carrier = transport(settings)
    mail = get(mail_id)
    if mail.state in FINAL_STATES:
        # A redelivered or retried job of a finished mail: nothing more to send.
        return summary(mail)
    if mail.state == MailState.SENDING:
        return _settle_handed_over(mail, carrier)
    attempt = mail.attempts + 1
    claimed = _changed(
        update(Mail)
        .where(Mail.id == mail.id, Mail.attempts == mail.attempts, Mail.state == mail.state)
        .values(attempts=attempt, transport=carrier.name, updated_at=utcnow())
    )
    if not claimed:
        # Another delivery of this job claimed the attempt; it records the outcome.
        db.session.rollback()
        return summary(get(mail_id))
    _close_interrupted(mail)
    log = MailSend(mail_id=mail.id, attempt=attempt, worker=worker, outcome="connecting")
    db.session.add(log)
    db.session.commit()
    db.session.refresh(mail)

    def before_data() -> bool:
        # The point of no return is recorded before it is passed.
        marked = _changed(
            update(Mail)
            .where(Mail.id == mail.id, Mail.attempts == attempt)
            .values(state=MailState.SENDING, updated_at=utcnow())
        )
        log.outcome = "handed_over"
        db.session.commit()
        return bool(marked)

    try:
        reply: Reply = carrier.send(
            build_message(mail, settings.mail.from_address),
            _sender(settings),
            mail.recipients,
            before_data,
        )
    except Superseded:
        db.session.rollback()
        log.outcome = "superseded"
        log.finished_at = utcnow()
        db.session.commit()
        return summary(get(mail_id))
    except TransientSendError as exc:
        _failed_attempt(mail, log, MailState.RETRYING, "deferred", exc)
        raise
    except DeliveryUnconfirmed as exc:
        _failed_attempt(mail, log, MailState.UNCONFIRMED, "unconfirmed", exc)
        raise
    except PermanentSendError as exc:
        _failed_attempt(mail, log, MailState.FAILED, "rejected", exc)
        raise
    _finish(
        mail,
        log,
        MailState.SENT,
        "accepted",
        smtp_code=reply.code,
        smtp_response=reply.text,
        error=None,
    )
    return summary(mail)


def _sender(settings: Settings) -> str:
    return parseaddr(settings.mail.from_address)[1]


def _failed_attempt(
    mail: Mail, log: MailSend, state: MailState, outcome: str, exc: SendError
) -> None:
    db.session.rollback()
    db.session.refresh(mail)
    _finish(mail, log, state, outcome, smtp_code=exc.code, smtp_response=exc.reply, error=str(exc))


def give_up(mail_id: str, exc: BaseException) -> None:
    """Retries are used up: the mail is failed with the last reason."""
    mail = get(mail_id)
    if mail.state == MailState.RETRYING:
        mail.state = MailState.FAILED
        mail.error = f"gave up after {mail.attempts} attempts; last: {exc}"
        db.session.commit()
