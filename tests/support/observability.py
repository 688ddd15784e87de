"""The observability test stack: an API (gunicorn), a prefork and a gevent worker, and on
demand a beat, all reporting to a local Sentry receiver and a local OTLP receiver.

It runs on a Redis of its own, so the session's shared workers (which have no DSN and no
exporter) never take its jobs; the database is the session's.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from celery import Celery
from sqlalchemy.engine import make_url

from app import create_app
from tests.conftest import TEST_TASK_MODULES
from tests.conftest import make_settings
from tests.support import services
from tests.support.generation_stubs import LANGFUSE_KEYS
from tests.support.logged_process import LoggedProcess
from tests.support.logged_process import all_running
from tests.support.logged_process import http_status
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.otlp_receiver import otlp_receiver
from tests.support.processes import free_port
from tests.support.sentry_receiver import SentryReceiver
from tests.support.sentry_receiver import sentry_receiver
from tests.support.side_stack import own_database
from tests.support.waiting import PROCESS_START_TIMEOUT
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

# Secrets the stack is configured with; no envelope may ever contain them.
SMTP_PASSWORD = "smtp-pw-0bs3rv4b1l1ty"
PROVIDER_KEY = "sk-provider-0bs3rv4b1l1ty-key"
DOCUMENT_TEXT = "CONFIDENTIAL quarterly figures of the acme merger"
FLASK_SECRET = "flask-secret-0bs3rv4b1l1ty"
# The key the session's local Langfuse receiver checks: a different one is refused (401).
LANGFUSE_SECRET = LANGFUSE_KEYS[1]
NESTED_PROVIDER_KEY = "nested-provider-key-0bs3rv4b1l1ty"
# PostgreSQL on this machine trusts loopback, so a password in the URL is accepted unchecked.
DATABASE_PASSWORD = "db-pw-0bs3rv4b1l1ty"
OBS_TASKS = "tests.integration.observability_tasks"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Stack:
    sentry: SentryReceiver
    otlp: OtlpReceiver
    env: dict[str, str]
    base_url: str
    token: str
    celery_app: Celery
    log_dir: Path
    processes: dict[str, Any] = field(default_factory=dict)

    def request(self, method: str, path: str, body: Any = None) -> Response:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                raw, status, headers = reply.read(), reply.status, dict(reply.headers)
        except urllib.error.HTTPError as exc:
            raw, status, headers = exc.read(), exc.code, dict(exc.headers)
        try:
            parsed: Any = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Response(status, headers, parsed)

    def submit(self, task: str, **args: Any) -> Response:
        reply = self.request("POST", "/api/v1/jobs", {"task": task, "args": args})
        assert reply.status == 202, reply.body
        return reply

    def job(self, job_id: str) -> dict[str, Any]:
        reply = self.request("GET", f"/api/v1/jobs/{job_id}")
        assert reply.status == 200, reply.body
        return dict(reply.body)

    def wait(self, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(
            lambda: (
                (job := self.job(job_id))["state"] in {"succeeded", "failed", "cancelled"} and job
            ),
            timeout=timeout,
            what=f"job {job_id} to finish",
        )

    def ledger_error(self, job_id: str) -> str:
        """The job row's error_message as stored, read from the database directly."""
        engine = sa.create_engine(self.env["DATABASE_URL"])
        try:
            with engine.connect() as conn:
                query = sa.text("SELECT error_message FROM jobs WHERE id = :id")
                return str(conn.execute(query, {"id": job_id}).scalar_one())
        finally:
            engine.dispose()

    def logs(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


class ApiProcess(LoggedProcess):
    """The API as `entrypoint.sh api` serves it: gunicorn, one gevent worker, on loopback.

    gunicorn is started directly, with the role `entrypoint.sh` would export: the session
    has already migrated the database, and `flask db upgrade` would cost another start-up.
    """

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class",
            "gevent",
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{self.port}",
            "app.wsgi:application",
        ]
        env = {**env, "TASKLANE_ROLE": "api"}
        super().__init__("API", command, env=env, log_path=log_dir / "api.log")

    def wait_ready(self, timeout: float = PROCESS_START_TIMEOUT) -> None:
        url = f"http://127.0.0.1:{self.port}/api/v1/health"
        self.wait_answering(
            lambda: http_status(url) == 200, timeout=timeout, what="the API", interval=0.2
        )


def _with_secret_provider(env: dict[str, str]) -> str:
    providers = json.loads(env.get("GENERATION_PROVIDERS") or "{}")
    providers["leaky"] = {
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": NESTED_PROVIDER_KEY,
        "models": ["m"],
    }
    return json.dumps(providers)


def _with_password(url: str) -> str:
    if not url.startswith("postgresql"):
        return url
    return make_url(url).set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)


def secrets() -> list[str]:
    """Every secret the stack is configured with (the database password only on PostgreSQL)."""
    return [
        SMTP_PASSWORD,
        PROVIDER_KEY,
        FLASK_SECRET,
        LANGFUSE_SECRET,
        NESTED_PROVIDER_KEY,
        DATABASE_PASSWORD,
    ]


# Package scope, and a Redis and database of its own (tests/support/side_stack.py says why).
@pytest.fixture(scope="package")
def observability_stack(
    base_settings: dict[str, Any],
    worker_env: dict[str, str],
    session_tmp: Path,
) -> Iterator[Stack]:
    log_dir = session_tmp / "observability"
    log_dir.mkdir(exist_ok=True)
    with (
        services.redis_server(session_tmp / "observability-redis") as redis_url,
        own_database(base_settings, session_tmp / "observability-db") as database,
        sentry_receiver() as sentry,
        otlp_receiver() as otlp,
    ):
        database_url, api_token = database.url, database.token
        ping_app = create_app(
            make_settings(base_settings, REDIS_URL=redis_url, DATABASE_URL=database_url)
        )
        env = {
            **worker_env,
            "REDIS_URL": redis_url,
            "TASKLANE_EXTRA_TASK_MODULES": f"{TEST_TASK_MODULES},{OBS_TASKS}",
            "SENTRY_DSN": sentry.dsn,
            "SENTRY_ENVIRONMENT": "observability-tests",
            "SENTRY_TRACES_SAMPLE_RATE": "1.0",
            "OTEL_ENABLED": "true",
            "OTEL_EXPORTER": "otlp_http",
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_TRACES_SAMPLE_RATE": "1.0",
            "OTEL_METRICS_EXPORT_INTERVAL": "1",
            # The SDK's own knob: export spans within 0.2 s instead of 5 s.
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "LOG_FORMAT": "json",
            "MAIL_SMTP_PASSWORD": SMTP_PASSWORD,
            "EMBEDDING_API_KEY": PROVIDER_KEY,
            "SECRET_KEY": FLASK_SECRET,
            "TRACE_LANGFUSE_SECRET_KEY": LANGFUSE_SECRET,
            "GENERATION_PROVIDERS": _with_secret_provider(worker_env),
            "DATABASE_URL": _with_password(database_url),
        }
        celery_app = ping_app.extensions["celery"]
        api = ApiProcess(env, log_dir)
        workers = {
            "cpu": WorkerProcess.for_profile("cpu", env=env, log_dir=log_dir),
            "io": WorkerProcess.for_profile(
                "io", env=env, log_dir=log_dir, WORKER_CONCURRENCY="10"
            ),
        }
        stack = Stack(
            sentry=sentry,
            otlp=otlp,
            env=env,
            base_url=f"http://127.0.0.1:{api.port}",
            token=api_token,
            celery_app=celery_app,
            log_dir=log_dir,
            processes={"api": api, **workers},
        )

        def ready(process: LoggedProcess) -> None:
            if isinstance(process, WorkerProcess):
                process.wait_ready(celery_app)
            else:
                api.wait_ready()

        with all_running([api, *workers.values()], ready):
            yield stack


@pytest.fixture(scope="package")
def observability_beat(observability_stack: Stack) -> Iterator[WorkerProcess]:
    """Celery beat on the stack, running the two cron entries of the test task module."""
    stack = observability_stack
    env = {**stack.env, "TASKLANE_TEST_CRON": "1"}
    beat = WorkerProcess(
        f"beat-{os.getpid()}@tests", ["./entrypoint.sh", "beat"], env=env, log_dir=stack.log_dir
    )
    beat.spawn()
    try:
        yield beat
    finally:
        beat.stop()
