"""OpenTelemetry traces and metrics for the API, workers and beat; off unless OTEL_ENABLED.

It comes after ext_celery only because the queue-depth gauge reads the Celery app: tasks
are traced through Celery's signals (`before_task_publish` injects the context into every
message), which work whatever order the extensions start in. Providers and exporters start in the
process that does the work (see `app.observability.telemetry`), never before a fork.
"""

from __future__ import annotations

from typing import Any

from celery.signals import beat_init
from celery.signals import worker_init
from celery.signals import worker_process_init
from celery.signals import worker_process_shutdown
from celery.signals import worker_shutdown
from flask import Flask
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.propagators import TraceResponsePropagator
from opentelemetry.instrumentation.propagators import set_global_response_propagator

from app.extensions.ext_database import engine_of
from app.observability import ledger_trace
from app.observability import metrics
from app.observability import process
from app.observability import prometheus
from app.observability import telemetry
from config import Settings
from config import settings_of

# Probes and scrapes would drown the request spans.
EXCLUDED_URLS = "/api/v1/health,/metrics"


def init_app(app: Flask) -> None:
    settings: Settings = settings_of(app)
    if not settings.observability.otel_enabled:
        return
    engine = engine_of(app)

    def start(role: str) -> None:
        telemetry.start(settings, role, engine)

    def on_worker_init(sender: Any = None, **_kw: Any) -> None:
        # Prefork: the parent only supervises; each child starts its own at process init.
        if not process.is_prefork(sender):
            start("worker")

    worker_init.connect(on_worker_init, weak=False)
    worker_process_init.connect(lambda **_kw: start("worker"), weak=False)
    beat_init.connect(lambda **_kw: start("beat"), weak=False)
    worker_process_shutdown.connect(lambda **_kw: telemetry.flush(), weak=False)
    worker_shutdown.connect(lambda **_kw: telemetry.flush(), weak=False)
    metrics.connect_task_signals()
    ledger_trace.connect()

    if process.initial_role(settings.observability.role) == "api":
        expose = settings.observability.prometheus_metrics_enabled
        telemetry.start(settings, "api", engine, prometheus=expose)
        metrics.observe_queue_depth(app.extensions["celery"])
        FlaskInstrumentor().instrument_app(app, excluded_urls=EXCLUDED_URLS)  # type: ignore[no-untyped-call]
        # Every response names its trace: `traceresponse: 00-<trace id>-<span id>-<flags>`.
        set_global_response_propagator(TraceResponsePropagator())  # type: ignore[no-untyped-call]
        if expose:
            app.register_blueprint(prometheus.blp)
