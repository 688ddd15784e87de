"""The declaration of the test suite's own tasks (TASKLANE_EXTRA_TASK_MODULES).

`job_task` asks every task for explicit limits and a retry policy; the tests' tasks share
one: a few seconds of work at most, and no retries unless a test is about retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.tasking import job_task


def short_task(
    name: str,
    *,
    queue: str,
    soft_time_limit: int = 10,
    time_limit: int = 15,
    max_retries: int = 0,
    **options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """`job_task` with the tests' limits (10 s soft, 15 s hard, no retries) unless given."""
    return job_task(
        name,
        queue=queue,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        max_retries=max_retries,
        **options,
    )
