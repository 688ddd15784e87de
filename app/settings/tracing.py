"""ops_trace: where a traced job's record goes, and how its delivery retries."""

from __future__ import annotations

from typing import Annotated
from typing import Literal

from pydantic import BeforeValidator
from pydantic import SecretStr
from pydantic import model_validator

from app.settings.base import Concern
from app.settings.base import env
from app.settings.base import split_commas

Sink = Literal["database", "otlp", "langfuse"]


class TracingSettings(Concern):
    # Where traces go, comma separated: database, otlp, langfuse (empty: nowhere).
    sinks: Annotated[list[Sink], BeforeValidator(split_commas)] = env(
        "TRACE_SINKS", default_factory=lambda: ["database"]
    )
    # OTLP traces endpoint of a collector: a URL (protobuf over HTTP), e.g.
    # http://otel:4318/v1/traces, or host:port when OTEL_EXPORTER is otlp_grpc.
    otlp_endpoint: str | None = env("TRACE_OTLP_ENDPOINT")
    # Langfuse (or compatible) base URL and project keys; spans go to its OTLP endpoint.
    langfuse_host: str | None = env("TRACE_LANGFUSE_HOST")
    # Both keys are secret: together they are the project's basic-auth credentials.
    langfuse_public_key: SecretStr | None = env("TRACE_LANGFUSE_PUBLIC_KEY")
    langfuse_secret_key: SecretStr | None = env("TRACE_LANGFUSE_SECRET_KEY")
    # Characters kept of each string in a trace's inputs and outputs.
    max_field_chars: int = env("TRACE_MAX_FIELD_CHARS", 2000, ge=50)
    # Tries of an ops_trace.ship job while a sink is down, with doubling, jittered delays
    # from TRACE_SHIP_RETRY_DELAY seconds; then the job fails, and the ledger says why.
    ship_max_attempts: int = env("TRACE_SHIP_MAX_ATTEMPTS", 10, ge=1, le=20)
    ship_retry_delay: float = env("TRACE_SHIP_RETRY_DELAY", 1.0, gt=0)
    # Seconds one export may take, the exporter's own quick retries included.
    ship_timeout: float = env("TRACE_SHIP_TIMEOUT", 10.0, gt=0)

    @model_validator(mode="after")
    def _sinks_are_configured(self) -> TracingSettings:
        if "otlp" in self.sinks and not self.otlp_endpoint:
            raise ValueError("TRACE_SINKS names otlp, so TRACE_OTLP_ENDPOINT must be set")
        langfuse = (self.langfuse_host, self.langfuse_public_key, self.langfuse_secret_key)
        if "langfuse" in self.sinks and not all(langfuse):
            raise ValueError(
                "TRACE_SINKS names langfuse, so TRACE_LANGFUSE_HOST, TRACE_LANGFUSE_PUBLIC_KEY "
                "and TRACE_LANGFUSE_SECRET_KEY must be set"
            )
        return self
