"""Tasks that exist only for the test suite (loaded by workers via TASKLANE_EXTRA_TASK_MODULES).

They record what they did in files under a directory the test passes, so a test can tell
whether (and how often) a job body really ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from app.tasking import ExpectedFailure
from app.tasking import job_task
from tests.support.short_tasks import short_task


def _mark(marker_dir: str, job_id: str, suffix: str) -> None:
    with open(Path(marker_dir) / f"{job_id}.{suffix}", "a") as fh:
        fh.write(f"{os.getpid()}\n")


def _steps(task: Task, count: int, interval: float, marker_dir: str) -> dict[str, Any]:
    _mark(marker_dir, task.request.id, "started")
    for step in range(count):
        task.progress(step, count, f"pid={os.getpid()}")
        time.sleep(interval)
    task.progress(count, count, "done")
    _mark(marker_dir, task.request.id, "done")
    return {"steps": count}


@short_task("tests.echo", queue="dataset", public=True)
def echo(self: Task, value: Any = None) -> dict[str, Any]:
    return {"value": value}


@short_task("tests.record", queue="dataset", public=True)
def record(self: Task, marker_dir: str) -> str:
    _mark(marker_dir, self.request.id, "ran")
    return "ran"


@job_task(
    "tests.steps", queue="dataset", public=True, soft_time_limit=60, time_limit=70, max_retries=0
)
def steps(self: Task, count: int, interval: float, marker_dir: str) -> dict[str, Any]:
    return _steps(self, count, interval, marker_dir)


@job_task(
    "tests.io_steps",
    queue="generation",
    public=True,
    soft_time_limit=60,
    time_limit=70,
    max_retries=0,
)
def io_steps(self: Task, count: int, interval: float, marker_dir: str) -> dict[str, Any]:
    return _steps(self, count, interval, marker_dir)


@short_task("tests.fail", queue="generation", public=True)
def fail(self: Task, message: str, expected: bool = False) -> None:
    raise (ExpectedFailure if expected else ValueError)(message)


@job_task(
    "tests.flaky", queue="generation", public=True, soft_time_limit=10, time_limit=15, max_retries=3
)
def flaky(self: Task, failures: int) -> dict[str, int]:
    if self.request.retries < failures:
        raise self.retry(
            exc=ConnectionError(f"attempt {self.request.retries + 1} failed"), countdown=0.2
        )
    return {"retries": self.request.retries}


@job_task(
    "tests.overrun", queue="dataset", public=True, soft_time_limit=1, time_limit=3, max_retries=0
)
def overrun(self: Task, ignore_soft_limit: bool = False) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            time.sleep(0.1)
        except SoftTimeLimitExceeded:
            if not ignore_soft_limit:
                raise


@job_task(
    "tests.retry_once",
    queue="generation",
    public=True,
    soft_time_limit=60,
    time_limit=70,
    max_retries=3,
)
def retry_once(self: Task, marker_dir: str, countdown: float = 1.0) -> dict[str, int]:
    """The first run waits for `<job id>.release` (60 s at most), then retries after
    `countdown`; a later run returns. Every run is a line in `<job id>.ran`."""
    job_id = self.request.id
    ran = Path(marker_dir) / f"{job_id}.ran"
    first = not ran.exists()
    _mark(marker_dir, job_id, "ran")
    if not first:
        return {"runs": ran.read_text().count("\n")}
    release = Path(marker_dir) / f"{job_id}.release"
    deadline = time.monotonic() + 60
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    raise self.retry(exc=ConnectionError("first run: try again later"), countdown=countdown)
