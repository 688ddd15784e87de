"""With no SMTP host, mail is written to the outbox as .eml files, exactly once."""

from __future__ import annotations

import uuid
from email import message_from_bytes
from email import policy
from pathlib import Path

import pytest
from flask import Flask

from app.extensions.ext_database import db
from app.models import JobState
from app.models.base import utcnow
from app.models.mail import Mail
from app.models.mail import MailState
from app.services.mail import delivery
from app.services.mail import mails
from app.services.mail import notifications
from app.services.mail.errors import DeliveryUnconfirmed
from tests.support.jobs import job_row
from tests.support.jobs import stored_job

JOB = {
    "id": "j1",
    "task": "dataset.ingest",
    "state": "succeeded",
    "queue": "dataset",
    "attempts": 1,
    "finished_at": "now",
    "error": None,
}


def new_mail() -> Mail:
    mail, created = mails.create_mail(
        template="job_finished", to=["someone@example.org"], context={"job": JOB}
    )
    assert created
    return mail


def test_mail_is_written_as_an_eml_with_both_parts(mail_app: Flask, outbox: Path) -> None:
    mail = new_mail()

    outcome = delivery.deliver(mail.id, worker="unit")

    assert outcome["state"] == "sent"
    message = message_from_bytes((outbox / f"{mail.id}.eml").read_bytes(), policy=policy.default)
    assert message["Message-ID"] == mail.message_id == f"<{mail.id}@example.net>"
    assert message["From"] == "Ops <ops@example.net>"
    assert message["To"] == "someone@example.org"
    assert message["Subject"] == "Tasklane job dataset.ingest succeeded"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    db.session.refresh(mail)
    assert mail.transport == "outbox" and mail.sent_at is not None
    assert mail.state == MailState.SENT
    assert [entry.outcome for entry in mail.log] == ["accepted"]


def test_delivering_a_sent_mail_again_writes_nothing(mail_app: Flask, outbox: Path) -> None:
    mail = new_mail()
    delivery.deliver(mail.id, worker="unit")
    path = outbox / f"{mail.id}.eml"
    path.write_bytes(b"marker")

    assert delivery.deliver(mail.id, worker="unit")["state"] == "sent"

    assert path.read_bytes() == b"marker"
    db.session.refresh(mail)
    assert len(mail.log) == 1


def _interrupted_after_handover(mail: Mail) -> None:
    """As if the attempt died after the server took the message: its log row is open."""
    mail.sent_at = None
    [entry] = mail.log
    entry.outcome, entry.finished_at = delivery.HANDED_OVER, None
    db.session.commit()


def test_interrupted_outbox_write_that_landed_is_recorded_as_sent(
    mail_app: Flask, outbox: Path
) -> None:
    mail = new_mail()
    delivery.deliver(mail.id, worker="unit")
    _interrupted_after_handover(mail)

    assert delivery.deliver(mail.id, worker="unit")["state"] == "sent"
    db.session.refresh(mail)
    assert "found in the outbox" in (mail.smtp_response or "")


def test_interrupted_handover_without_proof_is_unconfirmed_not_resent(
    mail_app: Flask, outbox: Path
) -> None:
    mail = new_mail()
    delivery.deliver(mail.id, worker="unit")
    (outbox / f"{mail.id}.eml").unlink()
    _interrupted_after_handover(mail)

    with pytest.raises(DeliveryUnconfirmed, match="not sent again"):
        delivery.deliver(mail.id, worker="unit")

    assert not (outbox / f"{mail.id}.eml").exists()
    db.session.refresh(mail)
    assert mail.state == MailState.UNCONFIRMED


def test_same_dedup_key_gives_the_first_mail(mail_app: Flask) -> None:
    first, created = mails.create_mail(
        template="job_finished", to=["a@example.org"], context={"job": JOB}, dedup_key="k-1"
    )
    again, created_again = mails.create_mail(
        template="job_finished", to=["a@example.org"], context={"job": JOB}, dedup_key="k-1"
    )
    assert created and not created_again
    assert again.id == first.id


def test_comma_separated_setting_gives_addresses() -> None:
    assert mails.split_addresses("Ops <ops@example.org>, dev@example.org") == [
        "ops@example.org",
        "dev@example.org",
    ]
    assert mails.split_addresses(None) == []


def test_job_finished_notification_is_queued_once_per_job(mail_app: Flask) -> None:
    job = stored_job(
        JobState.FAILED,
        task="dataset.close_batch",
        attempts=1,
        error_type="ValueError",
        error_message="bad <input>",
    )
    celery_app = mail_app.extensions["celery"]

    first = notifications.notify_job_finished(celery_app, job, ["owner@example.org"])
    again = notifications.notify_job_finished(celery_app, job, ["owner@example.org"])

    assert again.id == first.id and first.job_id
    assert first.subject == "Tasklane job dataset.close_batch failed"
    assert "bad &lt;input&gt;" in first.html_body


@pytest.mark.parametrize(
    ("job_state", "attempts", "shown"),
    [
        (JobState.QUEUED, 0, MailState.QUEUED),
        (JobState.STARTED, 1, MailState.SENDING),
        (JobState.RETRYING, 2, MailState.RETRYING),
        (JobState.FAILED, 3, MailState.FAILED),
        (JobState.CANCELLED, 0, MailState.CANCELLED),
    ],
)
def test_a_mail_shows_its_jobs_state_and_attempts(
    mail_app: Flask, job_state: JobState, attempts: int, shown: MailState
) -> None:
    mail = new_mail()
    job = job_row(job_state, id=str(uuid.uuid4()), task=mails.SEND_TASK, attempts=attempts)
    db.session.add(job)
    mail.job_id = job.id
    db.session.commit()

    assert (mail.state, mail.attempts) == (shown, attempts)

    # The job moves on; the mail follows with nothing written to it.
    job.state, job.finished_at = JobState.SUCCEEDED, utcnow()
    job.lease_owner = job.lease_expires_at = None
    db.session.commit()
    assert mail.state == MailState.SENT


def test_what_the_server_said_outranks_the_job(mail_app: Flask, outbox: Path) -> None:
    mail = new_mail()
    job = job_row(JobState.STARTED, id=str(uuid.uuid4()), task=mails.SEND_TASK)
    db.session.add(job)
    mail.job_id = job.id
    db.session.commit()
    assert mail.state == MailState.SENDING

    delivery.deliver(mail.id, worker="unit")

    # Accepted while its job is still running: the mail is sent.
    db.session.refresh(mail)
    assert mail.state == MailState.SENT and [e.attempt for e in mail.log] == [1]
