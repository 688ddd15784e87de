"""`notify`: the job_finished mail reaches a real SMTP server once the job (or upload) finished.

Jobs run on the session's real workers; a gevent mail worker delivers to the module's
loopback SMTP server (STARTTLS + AUTH). Each test mails its own fresh address, so what the
server holds for that address is exactly what the test caused.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.extensions.ext_database import db
from app.models import Job
from app.models.mail import Mail
from app.services.dataset import batches
from tests.fixtures.dataset.api import DatasetApi
from tests.support.api import Api
from tests.support.smtp_server import Received
from tests.support.smtp_server import SmtpServer
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess


@pytest.fixture
def api(
    client: FlaskClient,
    auth: dict[str, str],
    workers: dict[str, WorkerProcess],
    mail_worker: WorkerProcess,
) -> Api:
    """The REST API with the session's workers and the SMTP mail worker behind it.

    `workers` (session scope) start before `mail_worker`, which stops their mail consumer so
    every mail of this module goes to the SMTP server rather than the io worker's outbox.
    """
    return Api(client, auth)


@pytest.fixture
def datasets(api: Api) -> Iterator[DatasetApi]:
    helper = DatasetApi(api.client, api.auth)
    yield helper
    helper.cleanup()


def recipient() -> str:
    return f"notify-{uuid.uuid4().hex[:10]}@example.org"


def job_mail(app: Flask, job_id: str) -> dict[str, Any] | None:
    """The job_finished mail row of a job, if one was created."""
    with app.app_context():
        mail = db.session.scalar(select(Mail).where(Mail.dedup_key == f"job-finished:{job_id}"))
        if mail is None:
            return None
        return {"id": mail.id, "state": mail.state.value, "recipients": mail.recipients}


def delivered_once(app: Flask, smtp: SmtpServer, job_id: str, to: str) -> Received:
    """Wait until the job's mail has been sent, then return the one message `to` got."""
    wait_for(
        lambda: (mail := job_mail(app, job_id)) is not None and mail["state"] == "sent",
        timeout=30,
        what=f"the job_finished mail of job {job_id} to be sent",
    )
    [received] = smtp.handler.to(to)
    return received


def text_of(received: Received) -> str:
    part = received.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_job_with_notify_mails_once_and_a_job_without_mails_nothing(
    app: Flask, api: Api, smtp: SmtpServer
) -> None:
    to = recipient()
    quiet = api.submit("system.canary", args={"token": "quiet"})
    loud = api.submit("system.canary", args={"token": "loud"}, notify=[to])

    assert quiet["notify"] is None
    assert loud["notify"] == [to] == api.job(loud["id"])["notify"]
    assert api.wait(quiet["id"])["state"] == "succeeded"
    assert api.wait(loud["id"])["state"] == "succeeded"
    received = delivered_once(app, smtp, loud["id"], to)

    assert received.message["Subject"] == "Tasklane job system.canary succeeded"
    assert loud["id"] in text_of(received)
    assert received.message.get_body(("html",)) is not None
    # The quiet job finished first and its worker had no header to act on; by the time the
    # loud job's mail has crossed the mail queue and the SMTP server, nothing can follow.
    assert job_mail(app, quiet["id"]) is None
    assert not any(quiet["id"] in text_of(message) for message in smtp.handler.received)


def test_a_retried_job_mails_once_with_its_final_state(
    app: Flask, api: Api, smtp: SmtpServer
) -> None:
    to = recipient()
    job = api.submit("tests.flaky", args={"failures": 1}, notify=to)

    done = api.wait(job["id"])
    received = delivered_once(app, smtp, job["id"], to)

    assert done["state"] == "succeeded" and done["attempts"] == 2
    # The retrying attempt sent nothing, and the retry's message still carried the header.
    assert received.message["Subject"] == "Tasklane job tests.flaky succeeded"
    assert "Attempts: 2" in text_of(received)


def test_a_failed_job_mails_its_error(app: Flask, api: Api, smtp: SmtpServer) -> None:
    to = recipient()
    job = api.submit("tests.fail", args={"message": "the input was odd"}, notify=[to])

    assert api.wait(job["id"])["state"] == "failed"
    received = delivered_once(app, smtp, job["id"], to)

    assert received.message["Subject"] == "Tasklane job tests.fail failed"
    assert "ValueError: the input was odd" in text_of(received)


def test_a_job_cancelled_while_queued_is_mailed_once(
    app: Flask, api: Api, smtp: SmtpServer
) -> None:
    to = recipient()
    job = api.submit("tests.echo", countdown=1, notify=[to])
    assert api.post(f"/jobs/{job['id']}/cancel", 202)["state"] == "cancelled"

    received = delivered_once(app, smtp, job["id"], to)

    assert received.message["Subject"] == "Tasklane job tests.echo cancelled"
    assert api.job(job["id"])["attempts"] == 0


def test_a_job_killed_at_its_hard_time_limit_is_mailed_too(
    app: Flask, api: Api, smtp: SmtpServer
) -> None:
    to = recipient()
    job = api.submit("tests.overrun", args={"ignore_soft_limit": True}, notify=[to])

    done = api.wait(job["id"])
    received = delivered_once(app, smtp, job["id"], to)

    assert (done["state"], done["error"]["type"]) == ("failed", "TimeLimitExceeded")
    assert received.message["Subject"] == "Tasklane job tests.overrun failed"
    assert "TimeLimitExceeded" in text_of(received)


def test_generation_and_batch_mail_the_job_and_the_parent_only(
    app: Flask, api: Api, smtp: SmtpServer
) -> None:
    single_to, batch_to = recipient(), recipient()
    single = api.client.post(
        "/api/v1/generations",
        json={"prompt": "The lighthouse keeper lit the lamp at dusk.", "notify": [single_to]},
        headers=api.auth,
    )
    batch = api.client.post(
        "/api/v1/generations/batch",
        json={"items": [{"prompt": "One short line."}, {"prompt": "Another line."}]}
        | {"notify": [batch_to]},
        headers=api.auth,
    )
    assert single.status_code == batch.status_code == 202, (single.json, batch.json)
    single_id, parent_id = single.get_json()["id"], batch.get_json()["id"]

    parent = api.wait(parent_id)
    assert api.wait(single_id)["state"] == parent["state"] == "succeeded"
    single_mail = delivered_once(app, smtp, single_id, single_to)
    batch_mail = delivered_once(app, smtp, parent_id, batch_to)

    assert single_mail.message["Subject"] == "Tasklane job generation.complete succeeded"
    assert batch_mail.message["Subject"] == "Tasklane job generation.batch succeeded"
    assert all(job_mail(app, child) is None for child in parent["result"]["jobs"])


def test_multipart_upload_with_notify_mails_once_when_the_batch_closes(
    app: Flask, datasets: DatasetApi, smtp: SmtpServer
) -> None:
    first, second = recipient(), recipient()
    dataset = datasets.create(f"notify-{uuid.uuid4().hex[:6]}")
    files = {
        "tides.txt": b"The tide rises twice a day along the granite harbour wall.",
        "blank.txt": b"   \n\n\t\n",
    }
    boundary, body = encode_multipart(
        {
            "files": [FileStorage(io.BytesIO(data), name) for name, data in files.items()],
            "notify": f"{first}, {second}",
        }
    )
    accepted = datasets.call(
        "POST",
        f"/{dataset['id']}/documents",
        202,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert accepted["notify"] == [first, second]

    batch = datasets.wait_batch(dataset["id"], accepted["batch_id"])
    close_job = close_job_of(app, batch["id"])
    received = delivered_once(app, smtp, close_job, first)

    assert batch["notify"] == [first, second]
    assert sorted(received.recipients) == sorted([first, second])
    assert smtp.handler.to(second) == [received]
    assert received.message["Subject"] == (
        "Tasklane upload of 2 documents finished: 1 completed, 1 failed"
    )
    text = text_of(received)
    assert batch["id"] in text and close_job in text
    assert "blank.txt" in text and "no text was found" in text
    # The documents' own jobs carry no notify: the batch's mail is the only one.
    for document in accepted["documents"]:
        assert job_mail(app, document["job_id"]) is None


def test_json_upload_and_answer_with_notify_each_mail_once(
    app: Flask, api: Api, datasets: DatasetApi, smtp: SmtpServer
) -> None:
    upload_to, answer_to = recipient(), recipient()
    dataset = datasets.create(f"notify-{uuid.uuid4().hex[:6]}")
    accepted = datasets.call(
        "POST",
        f"/{dataset['id']}/documents",
        202,
        json={
            "documents": [{"name": "knots.md", "text": "A bowline knot makes a fixed loop."}],
            "notify": upload_to,
        },
    )
    batch = datasets.wait_batch(dataset["id"], accepted["batch_id"])
    close_job = close_job_of(app, batch["id"])
    upload_mail = delivered_once(app, smtp, close_job, upload_to)
    assert upload_mail.message["Subject"] == (
        "Tasklane upload of 1 document finished: 1 completed, 0 failed"
    )

    answer = datasets.call(
        "POST",
        f"/{dataset['id']}/answer",
        202,
        json={"question": "Which knot makes a fixed loop?", "notify": [answer_to]},
    )
    assert api.wait(answer["id"])["state"] == "succeeded"
    answer_mail = delivered_once(app, smtp, answer["id"], answer_to)
    assert answer_mail.message["Subject"] == "Tasklane job generation.answer succeeded"


def close_job_of(app: Flask, batch_id: str) -> str:
    """The id of the batch's close job, submitted right after the batch closed."""

    def probe() -> str | None:
        with app.app_context():
            return db.session.scalar(
                select(Job.id).where(Job.idempotency_key == batches.close_key(batch_id))
            )

    return wait_for(probe, what=f"the close job of batch {batch_id}")
