"""Queueing mail: render, store, submit its send job (delivery: app/services/mail/delivery.py).

A mail row (stable id, Message-ID, rendered parts) commits before its send job is
published; the mail's state and attempts are its job's (app/models/mail.py).
"""

from __future__ import annotations

import re
from email.utils import getaddresses
from email.utils import parseaddr
from typing import Any

from celery import Celery
from marshmallow import ValidationError
from marshmallow.validate import Email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.extensions.ext_database import db
from app.models.base import new_id
from app.models.base import utcnow
from app.models.mail import Mail
from app.models.mail import MailState
from app.services import jobs
from app.services.jobs import Submission
from app.services.mail import templates
from app.services.mail.errors import InvalidRecipient
from app.services.mail.errors import MailNotFound
from config import Settings
from config import current_settings

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
        id=new_id(),
        template=template,
        recipients=recipients,
        context=context,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        dedup_key=dedup_key,
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
    mail.job_id = job.id
    db.session.commit()
    return mail, True


def get(mail_id: str) -> Mail:
    mail = db.session.get(Mail, mail_id)
    if mail is None:
        raise MailNotFound(f"no mail with id {mail_id!r}")
    return mail
