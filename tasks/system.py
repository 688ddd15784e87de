"""Tasklane's own tasks: the queue canary and ledger retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Task

from app.services.operations import retention
from app.tasking import job_task
from config import current_settings
from tasks import periodic_task


@job_task(
    "system.canary",
    queue="dataset",
    public=True,
    soft_time_limit=10,
    time_limit=15,
    max_retries=0,
)
def canary(self: Task, token: str = "") -> dict[str, Any]:
    """Prove a queue is consumed end to end: answers which queue and worker ran it.

    Readiness sends one to every declared queue (the queue is chosen at submit).
    """
    delivery = self.request.delivery_info or {}
    return {"token": token, "queue": delivery.get("routing_key"), "worker": self.request.hostname}


@periodic_task("system.purge_expired_jobs", queue="dataset", soft_time_limit=300, max_retries=3)
def purge_expired_jobs(self: Task) -> dict[str, int]:
    """Delete finished jobs older than JOB_RETENTION_DAYS (readiness canaries after an hour)."""
    settings = current_settings()
    deleted = retention.purge_expired_jobs(
        older_than=timedelta(days=settings.operations.job_retention_days),
        canaries_older_than=timedelta(hours=1),
    )
    return {"deleted": deleted}
