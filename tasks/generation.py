"""Generation jobs: stream an answer from a provider into Redis, then the generation's row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task

from app.services.errors import JobError
from app.services.generation import answering
from app.services.generation import batches
from app.services.generation import streaming
from app.services.generation.providers.base import ProviderRejected
from app.services.generation.providers.base import RetryableProviderError
from app.services.retrying import backoff_delay
from app.tasking import ExpectedFailure
from app.tasking import job_task
from config import current_settings


def _generate(task: Task, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run a provider call: final errors fail the job, transient ones retry with backoff."""
    settings = current_settings()
    try:
        return call()
    except (ProviderRejected, JobError) as exc:
        # The provider refused the request, or its input (dataset, query) is unusable.
        raise ExpectedFailure(str(exc)) from None
    except RetryableProviderError as exc:
        if task.request.retries >= settings.generation.max_retries:
            raise
        delay = backoff_delay(
            task.request.retries,
            base=settings.generation.retry_base_delay,
            cap=settings.generation.retry_max_delay,
            retry_after=exc.retry_after,
        )
        # A countdown beyond this could outlive the broker's visibility timeout and run twice.
        delay = min(delay, settings.broker.task_max_countdown)
        raise task.retry(
            exc=exc, countdown=delay, max_retries=settings.generation.max_retries
        ) from None


@job_task(
    "generation.complete",
    queue="generation",
    # Gevent does not fire these; the provider's client-side deadline bounds each call.
    soft_time_limit=900,
    time_limit=960,
    # A ceiling: GENERATION_MAX_RETRIES (at most 10) is the limit applied.
    max_retries=10,
    traced=True,
)
def complete(self: Task, generation_id: str) -> dict[str, Any]:
    settings = current_settings()
    return _generate(
        self, lambda: streaming.run(generation_id, settings, self.progress, self.request.id)
    )


@job_task(
    "generation.answer",
    queue="generation",
    soft_time_limit=900,
    time_limit=960,
    max_retries=10,
    traced=True,
)
def answer(
    self: Task, generation_id: str, dataset_id: str, question: str, top_k: int, mode: str
) -> dict[str, Any]:
    settings = current_settings()
    return _generate(
        self,
        lambda: answering.run(
            generation_id,
            dataset_id=dataset_id,
            question=question,
            top_k=top_k,
            mode=mode,
            settings=settings,
            report=self.progress,
            job_id=self.request.id,
        ),
    )


@job_task(
    "generation.batch",
    queue="generation",
    soft_time_limit=6 * 3600,
    time_limit=6 * 3600 + 60,
    # Fanning out is idempotent (children keyed per generation); a broker outage refuses
    # nothing (the outbox relay publishes the children), so no retry is needed for it.
    max_retries=3,
    traced=True,
)
def batch(self: Task, generation_ids: list[str]) -> dict[str, Any]:
    settings = current_settings()
    return batches.run(
        self.request.id,
        generation_ids,
        celery_app=self.app,
        broker_timeout=settings.broker.submit_timeout,
        report=self.progress,
    )
