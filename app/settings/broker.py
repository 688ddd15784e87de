"""The broker and Celery: Redis or RabbitMQ, time limits, redelivery, worker limits."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic import model_validator

from app.settings.base import Concern
from app.settings.base import env


class BrokerSettings(Concern):
    # None: a process attaches to the Redis of the running `./entrypoint.sh dev` stack.
    # The URLs are secret: they may carry a password.
    redis_url: SecretStr | None = env("REDIS_URL")
    # Both default to REDIS_URL; RabbitMQ works as a broker (amqp://...).
    broker_url: SecretStr | None = env("CELERY_BROKER_URL")
    result_backend: SecretStr | None = env("CELERY_RESULT_BACKEND")

    task_soft_time_limit: int = env("TASK_SOFT_TIME_LIMIT", 600, ge=1)
    task_time_limit: int = env("TASK_TIME_LIMIT", 660, ge=1)
    task_max_countdown: int = env("TASK_MAX_COUNTDOWN", 3600, ge=0)
    # A reserved but unacknowledged Redis message is handed to another worker after this;
    # it must outlast the longest countdown plus the longest run, or jobs run twice.
    visibility_timeout: int = env("BROKER_VISIBILITY_TIMEOUT", 3 * 3600, ge=60)
    # How often a job whose worker died mid-run is redelivered before it is failed.
    task_max_redeliveries: int = env("TASK_MAX_REDELIVERIES", 3, ge=0)
    # Default when a worker is started without a profile; profiles set their own (app/queues.py).
    worker_prefetch_multiplier: int = env("WORKER_PREFETCH_MULTIPLIER", 1, ge=1)
    # Redis connections one worker process may open; gevent workers ack from many greenlets at
    # once, so this must exceed the largest gevent concurrency or acks fail.
    max_connections: int = env("BROKER_MAX_CONNECTIONS", 1000, ge=10)
    # Delayed (countdown) jobs a worker holds in memory at once; beyond it, it stops fetching.
    worker_eta_task_limit: int = env("WORKER_ETA_TASK_LIMIT", 1000, ge=1)
    # How long POST /jobs keeps trying to reach the broker before answering 503.
    submit_timeout: float = env("SUBMIT_BROKER_TIMEOUT", 3.0, gt=0)
    # How long /ready and /queues wait for workers to answer a broadcast.
    inspect_timeout: float = env("INSPECT_TIMEOUT", 1.0, gt=0)

    @model_validator(mode="after")
    def _limits_fit_together(self) -> BrokerSettings:
        if self.task_time_limit <= self.task_soft_time_limit:
            raise ValueError(
                "TASK_TIME_LIMIT must be greater than TASK_SOFT_TIME_LIMIT so the task "
                "can clean up after the soft limit fires"
            )
        longest = self.task_max_countdown + self.task_time_limit
        if self.visibility_timeout <= longest:
            raise ValueError(
                f"BROKER_VISIBILITY_TIMEOUT ({self.visibility_timeout}s) must exceed "
                f"TASK_MAX_COUNTDOWN + TASK_TIME_LIMIT ({longest}s), otherwise Redis hands a "
                "delayed or long job to a second worker"
            )
        return self
