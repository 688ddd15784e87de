"""Mail over REST, delivered by a real gevent worker to a real SMTP server (STARTTLS + AUTH)."""

from __future__ import annotations

import os
import signal
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services import jobs
from app.services.jobs import Submission
from tests.support.api import Api
from tests.support.smtp_server import SmtpServer
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

FINAL = {"sent", "failed", "unconfirmed", "cancelled"}
REPORT_TO = "reports@example.org"

JOB = {
    "id": "job-1",
    "task": "dataset.ingest",
    "state": "succeeded",
    "queue": "dataset",
    "attempts": 1,
    "finished_at": "2026-11-22T12:00:00Z",
    "error": None,
}


@pytest.fixture(scope="module")
def mail_env(mail_env: dict[str, str]) -> dict[str, str]:
    """The shared SMTP worker settings, plus a daily report recipient."""
    return {**mail_env, "DAILY_REPORT_TO": REPORT_TO}


@pytest.fixture
def api(client: FlaskClient, auth: dict[str, str], mail_worker: WorkerProcess) -> Api:
    """The jobs API; the mail worker runs these tests' jobs (no other worker needed)."""
    return Api(client, auth)


class MailApi:
    """The mail endpoints, called as the jobs API's are."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def send(self, expect: int = 202, **body: Any) -> dict[str, Any]:
        return self.api.call("POST", "/mail", expect, json=body)

    def get(self, mail_id: str) -> dict[str, Any]:
        return self.api.call("GET", f"/mail/{mail_id}")

    def wait(self, mail_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(
            lambda: found if (found := self.get(mail_id))["state"] in FINAL else None,
            timeout=timeout,
            what=f"mail {mail_id} to reach {sorted(FINAL)}",
        )


@pytest.fixture
def mail(client: FlaskClient, auth: dict[str, str]) -> MailApi:
    return MailApi(Api(client, auth))


def recipient() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.org"


def test_mail_is_delivered_over_starttls_with_auth_headers_and_both_parts(
    mail: MailApi, api: Api, smtp: SmtpServer, mail_worker: WorkerProcess
) -> None:
    to = recipient()
    job = {**JOB, "task": "<script>alert(1)</script>"}
    queued = mail.send(template="job_finished", to=to, context={"job": job})
    # The state is the job's as the response is made: a quick worker may have started it.
    assert queued["state"] in {"queued", "sending", "sent"} and queued["job_id"]

    done = mail.wait(queued["id"])

    assert done["state"] == "sent"
    assert done["attempts"] == 1
    assert done["transport"] == "smtp"
    assert done["smtp_code"] == 250 and "queued" in done["smtp_response"]
    assert [entry["outcome"] for entry in done["log"]] == ["accepted"]
    [received] = smtp.handler.to(to)
    assert received.tls and received.authenticated
    message = received.message
    assert message["Message-ID"] == done["message_id"] == queued["message_id"]
    assert message["To"] == to
    assert message["From"] == "Tasklane Tests <tasklane@tests.example>"
    assert message["Subject"] == "Tasklane job <script>alert(1)</script> succeeded"
    assert message["Date"]
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "<script>alert(1)</script>" in text.get_content()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.get_content()
    assert "<script>" not in html.get_content()
    assert api.wait(done["job_id"])["state"] == "succeeded"


def test_4xx_reply_is_retried_with_backoff_then_delivered_once(
    mail: MailApi, smtp: SmtpServer, mail_worker: WorkerProcess
) -> None:
    to = recipient()
    smtp.handler.replies[to].append("451 4.3.0 Mailbox temporarily unavailable")

    done = mail.wait(mail.send(template="job_finished", to=[to], context={"job": JOB})["id"])

    assert done["state"] == "sent"
    assert done["attempts"] == 2
    assert [entry["outcome"] for entry in done["log"]] == ["deferred", "accepted"]
    assert done["log"][0]["smtp_code"] == 451
    assert "temporarily unavailable" in done["log"][0]["smtp_response"]
    assert len(smtp.handler.to(to)) == 1


def test_5xx_reply_fails_at_once_and_records_the_reply(
    mail: MailApi, api: Api, smtp: SmtpServer, mail_worker: WorkerProcess
) -> None:
    to = recipient()
    smtp.handler.replies[to].extend(["554 5.7.1 Rejected as spam"] * 3)

    done = mail.wait(mail.send(template="job_finished", to=[to], context={"job": JOB})["id"])

    assert done["state"] == "failed"
    assert done["attempts"] == 1
    assert done["smtp_code"] == 554
    assert done["smtp_response"] == "5.7.1 Rejected as spam"
    assert "554" in done["error"]
    job = api.wait(done["job_id"])
    assert job["state"] == "failed" and job["attempts"] == 1
    assert job["error"]["type"] == "PermanentSendError"
    # The two scripted refusals left prove no second attempt reached the server.
    assert len(smtp.handler.replies[to]) == 2
    assert smtp.handler.to(to) == []


def test_unknown_template_is_422(mail: MailApi) -> None:
    problem = mail.send(expect=422, template="no_such_template", to=recipient())
    assert problem["title"] == "Unknown mail template"
    assert "job_finished" in problem["detail"]


@pytest.mark.parametrize(
    "to", ["not-an-address", "a@b.example\r\nBcc: victim@example.org", [], ["ok@example.org", ""]]
)
def test_invalid_recipients_are_422(mail: MailApi, to: Any) -> None:
    problem = mail.send(expect=422, template="job_finished", to=to, context={"job": JOB})
    assert problem["status"] == 422


def test_context_missing_a_template_value_is_422(mail: MailApi) -> None:
    problem = mail.send(expect=422, template="job_finished", to=recipient(), context={})
    assert problem["title"] == "Mail context does not fit the template"
    assert "job" in problem["detail"]


def test_unknown_mail_is_404(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.get(f"/api/v1/mail/{uuid.uuid4()}", headers=auth)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_worker_killed_after_the_server_took_the_mail_sends_no_second_copy(
    app: Flask,
    mail: MailApi,
    api: Api,
    smtp: SmtpServer,
    mail_worker: WorkerProcess,
    mail_env: dict[str, str],
    session_tmp: Path,
) -> None:
    # A prefork worker, so the process that sends can die alone and its job is redelivered
    # at once (a killed gevent worker's job comes back after the visibility timeout).
    celery_app = app.extensions["celery"]
    celery_app.control.cancel_consumer("mail", destination=[mail_worker.hostname], reply=True)
    prefork = WorkerProcess.celery(
        "mail-prefork", "-P prefork -c 1 -Q mail", env=mail_env, log_dir=session_tmp
    )
    killed: list[int] = []

    def kill_the_sender(_message: EmailMessage) -> None:
        # The server holds the message and has not answered yet: the sender dies now.
        assert prefork.process is not None
        for child in _children(prefork.process.pid):
            os.kill(child, signal.SIGKILL)
            killed.append(child)

    to = recipient()
    smtp.handler.on_receive[to] = kill_the_sender
    try:
        prefork.start(celery_app)
        queued = mail.send(template="job_finished", to=to, context={"job": JOB})
        done = mail.wait(queued["id"], timeout=60)
        job = api.wait(done["job_id"], timeout=30)
    finally:
        prefork.stop()
        celery_app.control.add_consumer("mail", destination=[mail_worker.hostname], reply=True)

    assert killed
    assert len(smtp.handler.to(to)) == 1
    assert done["state"] == "unconfirmed"
    assert done["message_id"] in done["error"]
    assert [entry["outcome"] for entry in done["log"]] == ["unconfirmed"]
    # The job did run again (redelivered), and that second run sent nothing; the mail's
    # attempts are its job's, so the two cannot disagree.
    assert job["attempts"] == 2
    assert mail.get(queued["id"])["attempts"] == 2
    assert job["state"] == "failed" and job["error"]["type"] == "DeliveryUnconfirmed"


def test_daily_report_job_mails_the_report_once(
    app: Flask, api: Api, admin_auth: dict[str, str], smtp: SmtpServer, mail_worker: WorkerProcess
) -> None:
    celery_app = app.extensions["celery"]
    with app.app_context():
        first, _ = jobs.submit(
            celery_app, Submission(task="maintenance.daily_report", args={}), broker_timeout=3
        )
        again, _ = jobs.submit(
            celery_app, Submission(task="maintenance.daily_report", args={}), broker_timeout=3
        )
        ids = [first.id, again.id]
    # System jobs belong to no project: only an admin key sees them.
    admin = Api(api.client, admin_auth)
    results = [admin.wait(job_id)["result"] for job_id in ids]

    assert results[0]["mailed"] and results[0]["mail_id"] == results[1]["mail_id"]
    wait_for(lambda: smtp.handler.to(REPORT_TO), timeout=30, what="the daily report mail")
    [received] = smtp.handler.to(REPORT_TO)
    assert received.message["Subject"].startswith("Tasklane daily report ")
    text = received.message.get_body(("plain",))
    assert text is not None and "Total:" in text.get_content()
