"""Observability: logs, Sentry, OpenTelemetry traces and metrics, Prometheus."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from app.settings.base import Concern
from app.settings.base import env


class ObservabilitySettings(Concern):
    # Process role (api, worker, beat); entrypoint.sh sets it, else Celery's signals tell.
    role: Literal["api", "worker", "beat"] | None = env("TASKLANE_ROLE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = env("LOG_LEVEL", "INFO")
    # Log lines as plain text or one JSON object per line.
    log_format: Literal["text", "json"] = env("LOG_FORMAT", "text")
    # Sentry is off unless a DSN is given. Secret: the DSN carries the project's key.
    sentry_dsn: SecretStr | None = env("SENTRY_DSN")
    # Sentry environment; None means TASKLANE_ENV.
    sentry_environment: str | None = env("SENTRY_ENVIRONMENT")
    # Release on events and traces (Sentry and OTel); None means tasklane@<version>.
    sentry_release: str | None = env("SENTRY_RELEASE")
    # Share of requests and tasks sent to Sentry as transactions.
    sentry_traces_sample_rate: float = env("SENTRY_TRACES_SAMPLE_RATE", 0.0, ge=0.0, le=1.0)
    # Share of sampled transactions that are also profiled.
    sentry_profiles_sample_rate: float = env("SENTRY_PROFILES_SAMPLE_RATE", 0.0, ge=0.0, le=1.0)
    # OpenTelemetry traces and metrics are off unless enabled.
    otel_enabled: bool = env("OTEL_ENABLED", False)
    # Where spans and metrics go: OTLP over HTTP or gRPC, or the console (stdout).
    otel_exporter: Literal["otlp_http", "otlp_grpc", "console"] = env("OTEL_EXPORTER", "otlp_http")
    # OTLP collector base URL; None means the exporter's default (localhost:4318 / 4317).
    otel_endpoint: str | None = env("OTEL_EXPORTER_OTLP_ENDPOINT")
    # Share of new traces sampled (a caller's decision is kept); errors reach Sentry anyway.
    otel_traces_sample_rate: float = env("OTEL_TRACES_SAMPLE_RATE", 0.1, ge=0.0, le=1.0)
    # service.name is "<prefix>-<role>".
    otel_service_name_prefix: str = env("OTEL_SERVICE_NAME_PREFIX", "tasklane", min_length=1)
    # How often metrics are pushed over OTLP, in seconds.
    otel_metrics_export_interval: float = env("OTEL_METRICS_EXPORT_INTERVAL", 60.0, gt=0)
    # Serve Prometheus metrics at /metrics on the API (needs OTEL_ENABLED).
    prometheus_metrics_enabled: bool = env("PROMETHEUS_METRICS_ENABLED", True)
