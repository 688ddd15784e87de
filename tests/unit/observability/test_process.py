"""Which role a process reports as, and what is off when nothing is configured."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sentry_sdk
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_trace_id
from opentelemetry.trace import use_span

from app import create_app
from app.observability import process
from app.observability.log_context import ContextFilter
from config import Settings


def test_role_is_the_configured_one_else_api_unless_celery_or_flask_cli_started_us(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert process.initial_role("beat") == "beat"
    monkeypatch.setattr("sys.argv", ["/venv/bin/gunicorn", "app.wsgi:application"])
    assert process.initial_role(None) == "api"
    monkeypatch.setattr("sys.argv", ["/venv/bin/celery", "-A", "app.celery", "worker"])
    assert process.initial_role(None) is None
    monkeypatch.setattr("sys.argv", ["/venv/lib/python3.11/site-packages/celery/__main__.py"])
    assert process.initial_role(None) is None
    monkeypatch.setattr("sys.argv", ["/venv/bin/flask", "--app", "app", "db", "upgrade"])
    assert process.initial_role(None) is None


def test_release_defaults_to_the_project_version() -> None:
    assert process.release(None) == f"tasklane@{process.version()}"
    assert process.release("v9") == "v9"


def test_nothing_is_on_without_configuration(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        TASKLANE_ENV="testing",
        DATABASE_URL=f"sqlite:///{tmp_path / 'off.db'}",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    app = create_app(settings)
    assert not sentry_sdk.get_client().is_active()
    client = app.test_client()
    assert client.get("/metrics").status_code == 404
    assert "traceresponse" not in client.get("/api/v1/health").headers


def test_log_records_carry_the_current_trace_id() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    span = TracerProvider().get_tracer("test").start_span("work")
    with use_span(span, end_on_exit=True):
        ContextFilter().filter(record)
    assert record.trace_id == format_trace_id(span.get_span_context().trace_id)
    assert record.job_id is None

    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    ContextFilter().filter(outside)
    assert outside.trace_id is None
