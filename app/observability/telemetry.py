"""OpenTelemetry providers, exporters and instrumentation for one process role.

`start(role)` runs once per process, in the process that does the work: the API process
(a gunicorn worker imports the app after its fork), a gevent or solo worker at
`worker_init`, each prefork child at `worker_process_init` (an exporter thread started
before the fork would not exist in the child), and beat at `beat_init`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import metrics
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.resources import SERVICE_VERSION
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export import SpanExporter
from sqlalchemy.engine import Engine

from app.observability import process
from app.observability import sampling
from config import Settings

log = logging.getLogger(__name__)

_state: dict[str, Any] = {}


def started_role() -> str | None:
    role: str | None = _state.get("role")
    return role


def _grpc_under_gevent() -> None:
    # grpc's own threads deadlock under gevent unless told to cooperate with its hub.
    try:
        from gevent import monkey
    except ImportError:
        return
    if monkey.is_module_patched("socket"):
        from grpc.experimental import gevent as grpc_gevent  # type: ignore[import-untyped]

        grpc_gevent.init_gevent()


def _endpoint(settings: Settings, signal: str) -> str | None:
    """The configured collector for `signal`; None lets the exporter use its default."""
    base = settings.observability.otel_endpoint
    if base and settings.observability.otel_exporter == "otlp_http":
        return f"{base.rstrip('/')}/v1/{signal}"
    return base


def otlp_span_exporter(
    exporter: str,
    endpoint: str | None,
    *,
    timeout: float | None = None,
    headers: dict[str, str] | None = None,
) -> SpanExporter:
    """OTLP over gRPC for `otlp_grpc` (an OTEL_EXPORTER value), else protobuf over HTTP."""
    if exporter == "otlp_grpc":
        _grpc_under_gevent()
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(endpoint=endpoint, timeout=timeout, headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, timeout=timeout, headers=headers)


def span_exporter(settings: Settings) -> SpanExporter:
    if settings.observability.otel_exporter == "console":
        return ConsoleSpanExporter()
    return otlp_span_exporter(settings.observability.otel_exporter, _endpoint(settings, "traces"))


def metric_exporter(settings: Settings) -> MetricExporter:
    if settings.observability.otel_exporter == "console":
        return ConsoleMetricExporter()
    if settings.observability.otel_exporter == "otlp_grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(endpoint=_endpoint(settings, "metrics"))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=_endpoint(settings, "metrics"))


def resource(settings: Settings, role: str) -> Resource:
    return Resource.create(
        {
            SERVICE_NAME: f"{settings.observability.otel_service_name_prefix}-{role}",
            SERVICE_VERSION: process.release(settings.observability.sentry_release),
            "service.namespace": settings.observability.otel_service_name_prefix,
            "deployment.environment.name": settings.core.environment,
            "tasklane.role": role,
            # Tells a prefork worker's children (and gunicorn's workers) apart.
            "process.pid": os.getpid(),
        }
    )


def start(settings: Settings, role: str, engine: Engine, *, prometheus: bool = False) -> bool:
    """Install providers and instrumentation for `role`; False if this process already has."""
    if _state:
        return False
    _state["role"] = role
    res = resource(settings, role)
    tracer_provider = TracerProvider(
        resource=res, sampler=sampling.sampler(settings.observability.otel_traces_sample_rate)
    )
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter(settings)))
    trace.set_tracer_provider(tracer_provider)
    readers: list[MetricReader] = [
        PeriodicExportingMetricReader(
            metric_exporter(settings),
            export_interval_millis=settings.observability.otel_metrics_export_interval * 1000,
        )
    ]
    if prometheus:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        readers.append(PrometheusMetricReader())
    meter_provider = MeterProvider(resource=res, metric_readers=readers)
    metrics.set_meter_provider(meter_provider)
    _state.update(tracer_provider=tracer_provider, meter_provider=meter_provider)

    # Spans only from these two: app.observability.metrics counts jobs per queue and task,
    # and their own metrics (a runtime histogram per worker host, a connection-pool gauge
    # updated on every checkout) cost more per job than they tell.
    quiet = NoOpMeterProvider()
    CeleryInstrumentor().instrument(meter_provider=quiet)  # type: ignore[no-untyped-call]
    # Its declared range stops below SQLAlchemy 2.1, whose engine events it uses are unchanged.
    # It instruments this engine and wraps create_engine, so engines made later (the ledger's)
    # are instrumented too. The ledger's hot statements bypass SQLAlchemy (plain SQL on the
    # driver, app/ledger/execute.py): a job's start and finish are bookkeeping every job
    # repeats (the task span's duration includes them) and are no spans; POST /jobs's INSERT
    # makes its own (app/observability/ledger_trace.py).
    SQLAlchemyInstrumentor().instrument(engine=engine, meter_provider=quiet, skip_dep_check=True)
    RedisInstrumentor().instrument()
    RequestsInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    # The `openai` package's client is httpx2: its requests are the LLM calls' HTTP spans,
    # children of the run span. Patched on the transport class, so clients made earlier count.
    HTTPX2ClientInstrumentor().instrument(meter_provider=quiet)
    log.info("OpenTelemetry started for role %s (%s)", role, settings.observability.otel_exporter)
    return True


def flush() -> None:
    """Export what is buffered; prefork children leave through os._exit, skipping atexit."""
    for key in ("tracer_provider", "meter_provider"):
        provider = _state.get(key)
        if provider is not None:
            provider.force_flush()
