"""Sentry error reporting and tracing for the API, workers and beat; off without SENTRY_DSN.

Initialised from the app factory, which every process runs (gunicorn worker, Celery worker
or beat), and again in each prefork child (see init_app). Beat's periodic jobs become Sentry
Cron monitors through the Celery integration.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from celery.signals import beat_init
from celery.signals import worker_init
from celery.signals import worker_process_init
from flask import Flask
from opentelemetry import trace
from opentelemetry.trace import format_trace_id
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.flask import FlaskIntegration

from app.extensions.ext_database import engine_of
from app.observability import process
from app.observability import sentry_tasks
from app.observability.scrubbing import make_before_send
from app.settings import reveal
from app.tasking import ExpectedFailure
from app.tasking import JobCancelled
from config import Settings
from config import settings_of

# Failures caused by the job's input or by a user's cancel: recorded in the ledger, not alerts.
EXPECTED = (ExpectedFailure, JobCancelled)


def _expected(event: dict[str, Any], hint: dict[str, Any]) -> bool:
    exc_info = hint.get("exc_info")
    return exc_info is not None and isinstance(exc_info[1], EXPECTED)


def _never(event: dict[str, Any], hint: dict[str, Any]) -> bool:
    return False


def _tag_otel_trace(event: dict[str, Any]) -> None:
    # Joins the event to its OpenTelemetry trace (and so to the job's ledger row).
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event.setdefault("tags", {})["trace_id"] = format_trace_id(context.trace_id)


def _set_role(role: str) -> None:
    sentry_sdk.get_global_scope().set_tag("role", role)


def init_app(app: Flask) -> None:
    settings: Settings = settings_of(app)
    if not settings.observability.sentry_dsn:
        return
    engine = engine_of(app)
    scrub_error = make_before_send(settings, drop=_expected)
    scrub_transaction = make_before_send(settings, drop=_never)

    def before_send(event: Any, hint: Any) -> Any:
        kept = scrub_error(event, hint)
        if kept is not None:
            sentry_tasks.annotate_job_event(engine, kept)
            _tag_otel_trace(kept)
        return kept

    def before_send_transaction(event: Any, hint: Any) -> Any:
        return scrub_transaction(event, hint)

    options: dict[str, Any] = dict(
        dsn=reveal(settings.observability.sentry_dsn),
        environment=settings.observability.sentry_environment or settings.core.environment,
        release=process.release(settings.observability.sentry_release),
        traces_sample_rate=settings.observability.sentry_traces_sample_rate,
        profiles_sample_rate=settings.observability.sentry_profiles_sample_rate,
        send_default_pii=False,
        # Locals and request bodies may hold document text or keys under any name.
        include_local_variables=False,
        max_request_body_size="never",
        before_send=before_send,
        before_send_transaction=before_send_transaction,
        integrations=[FlaskIntegration(), CeleryIntegration(monitor_beat_tasks=True)],
    )
    sentry_sdk.init(**options)
    # A prefork child gets a client of its own. The one it inherits shares the parent's
    # keep-alive connections to Sentry (the same sockets, so two processes' requests can
    # interleave on one connection) and any lock the parent's sending thread held at the
    # fork. With the inherited client, a child forked while its parent reported a hard
    # time limit sometimes lost its next transaction (test_sentry.py: 1 run in 6 failed;
    # with a client of its own, 20 runs in 20 passed).
    worker_process_init.connect(lambda **_kw: sentry_sdk.init(**options), weak=False)
    role = process.initial_role(settings.observability.role)
    if role:
        _set_role(role)
    worker_init.connect(lambda **_kw: _set_role("worker"), weak=False)
    beat_init.connect(lambda **_kw: _set_role("beat"), weak=False)
    sentry_tasks.connect()
