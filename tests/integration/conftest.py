"""Real worker processes shared by the integration tests: one per profile, as in production.

Also a real SMTP server per module, with a mail worker that delivers to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.api import Api
from tests.support.logged_process import all_running
from tests.support.smtp_server import SmtpServer
from tests.support.smtp_server import smtp_server
from tests.support.workers import WorkerProcess
from tests.support.workers import sole_consumer


# Package scope: they stop when the integration tests end. Every worker process runs the
# ledger's relay and lease recovery against the session's database, so left running they
# would claim the rows that later unit tests stage for those very functions.
@pytest.fixture(scope="package")
def workers(
    app: Flask, worker_env: dict[str, str], session_tmp: Path
) -> Iterator[dict[str, WorkerProcess]]:
    """A prefork worker on the cpu profile and a gevent worker on the io profile."""
    celery_app = app.extensions["celery"]
    started = {
        "cpu": WorkerProcess.for_profile("cpu", env=worker_env, log_dir=session_tmp),
        "io": WorkerProcess.for_profile(
            "io", env=worker_env, log_dir=session_tmp, WORKER_CONCURRENCY="20"
        ),
    }
    with all_running(started.values(), lambda worker: worker.wait_ready(celery_app)):
        yield started


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """A directory test tasks write to, so a test can see whether a job body ran."""
    return tmp_path


@pytest.fixture
def api(client: FlaskClient, auth: dict[str, str], workers: dict[str, WorkerProcess]) -> Api:
    """The REST API with workers running behind it."""
    return Api(client, auth)


@pytest.fixture(scope="module")
def smtp(session_tmp: Path) -> Iterator[SmtpServer]:
    """A real SMTP server (STARTTLS, AUTH) on loopback for one test module."""
    with smtp_server(session_tmp / "smtp") as server:
        yield server


@pytest.fixture(scope="module")
def mail_env(worker_env: dict[str, str], smtp: SmtpServer) -> dict[str, str]:
    # Short backoff, so a retry after a 4xx comes within the test's patience.
    return {
        **worker_env,
        **smtp.env(),
        "MAIL_RETRY_BACKOFF": "0.2",
        "MAIL_RETRY_BACKOFF_MAX": "0.5",
    }


@pytest.fixture(scope="module")
def mail_worker(app: Flask, mail_env: dict[str, str], session_tmp: Path) -> Iterator[WorkerProcess]:
    """A gevent worker on the mail queue that delivers to the module's SMTP server.

    Workers already running (the session's io worker writes mail to the outbox: no SMTP
    is configured for it) stop consuming the mail queue while the module's tests run. A
    module that needs the session's workers too must have them started first.
    """
    worker = WorkerProcess.celery(
        "mail-smtp", "-P gevent -c 10 -Q mail", env=mail_env, log_dir=session_tmp
    )
    with sole_consumer(app.extensions["celery"], "mail", worker):
        yield worker
