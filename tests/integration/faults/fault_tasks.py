"""Tasks for the fault tests: each attempt logs when it started, that it lives, and when it ended.

One line per event in `<marker_dir>/<job id>.log`: `start|beat|end <pid> <unix time>`. A test
reads from it which process runs a job (to kill it), how many times the body really ran, and
whether two attempts ever overlapped (a later start before an earlier attempt's last sign of
life).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import Task

from app.tasking import job_task

BEAT_INTERVAL = 0.2


def _log(marker_dir: str, job_id: str, event: str) -> None:
    # O_APPEND writes of one short line are atomic: concurrent attempts never interleave.
    with open(Path(marker_dir) / f"{job_id}.log", "a") as fh:
        fh.write(f"{event} {os.getpid()} {time.time():.6f}\n")


def _attempt(task: Task, marker_dir: str, duration: float) -> dict[str, Any]:
    job_id = task.request.id
    _log(marker_dir, job_id, "start")
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        time.sleep(min(BEAT_INTERVAL, max(deadline - time.monotonic(), 0)))
        _log(marker_dir, job_id, "beat")
    _log(marker_dir, job_id, "end")
    return {"pid": os.getpid()}


def _fault_task(name: str, queue: str) -> Callable[[Callable[..., Any]], Any]:
    """A public job task with generous time limits and no automatic retry."""
    return job_task(
        name, queue=queue, public=True, soft_time_limit=120, time_limit=130, max_retries=0
    )


@_fault_task("faults.attempt", queue="dataset")
def attempt(self: Task, marker_dir: str, duration: float = 0.0) -> dict[str, Any]:
    """A prefork-queue job of `duration` seconds."""
    return _attempt(self, marker_dir, duration)


@_fault_task("faults.io_attempt", queue="generation")
def io_attempt(self: Task, marker_dir: str, duration: float = 0.0) -> dict[str, Any]:
    """The same job on a gevent queue."""
    return _attempt(self, marker_dir, duration)
