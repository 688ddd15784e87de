"""Tasks only the browser tests use (workers load them through TASKLANE_EXTRA_TASK_MODULES)."""

from __future__ import annotations

from pathlib import Path

from celery import Task

from tests.support.short_tasks import short_task


@short_task("tests.fail_once", queue="generation", public=True)
def fail_once(self: Task, marker_dir: str) -> str:
    """Fails the first time it runs for a job, succeeds when that job is retried."""
    marker = Path(marker_dir) / f"{self.request.id}.failed"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("first attempt fails on purpose; retry it")
    return "second attempt succeeded"
