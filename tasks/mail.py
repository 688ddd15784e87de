"""The mail queue's task: one delivery attempt of one stored mail."""

from __future__ import annotations

from typing import Any

from celery import Task

from app.services.mail import delivery
from app.services.mail.errors import TransientSendError
from app.tasking import job_task


@job_task(
    "mail.send",
    queue="mail",
    # gevent cannot enforce these; the SMTP connect and reply timeouts bound each attempt.
    soft_time_limit=120,
    time_limit=150,
    max_retries=6,
)
def send(self: Task, mail_id: str) -> dict[str, Any]:
    """Hand the mail to the server; a transient failure retries with backoff and jitter."""
    try:
        return delivery.deliver(mail_id, worker=self.request.hostname)
    except TransientSendError as exc:
        if self.request.retries >= self.max_retries:
            delivery.give_up(mail_id, exc)
            raise
        raise self.retry(exc=exc, countdown=delivery.retry_delay(self.request.retries)) from None
