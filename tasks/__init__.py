"""Celery tasks, one module per queue or concern. Tasks are thin: ids in, one service call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.tasking import job_task

# Seconds between a periodic job's soft and hard limits: room to clean up after the soft one.
CLEANUP_SECONDS = 30


def periodic_task(
    name: str, *, queue: str, soft_time_limit: int, max_retries: int = 0
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a job beat runs: private, its hard limit CLEANUP_SECONDS past the soft one."""
    return job_task(
        name,
        queue=queue,
        soft_time_limit=soft_time_limit,
        time_limit=soft_time_limit + CLEANUP_SECONDS,
        max_retries=max_retries,
    )
