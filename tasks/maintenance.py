"""Periodic maintenance run by beat: a relay pass, the queue monitor and the daily report.

Each is idempotent: running a tick's job twice changes nothing more than running it once.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from flask import current_app

from app.ledger import outbox
from app.models.base import utcnow
from app.services.operations import daily_report
from app.services.operations import queue_monitor
from config import current_settings
from tasks import periodic_task


@periodic_task("maintenance.reap_stale_jobs", queue="dataset", soft_time_limit=120)
def reap_stale_jobs(self: Task) -> dict[str, Any]:
    """A relay pass: publish unconfirmed jobs, send lost attempts back (backstop of the
    relays every worker main process runs)."""
    return outbox.relay_once(current_app._get_current_object())  # type: ignore[attr-defined]


# On the mail queue: the io worker that sends the alert is not stuck behind the backlog
# of the CPU queue it may be alerting about.
@periodic_task("maintenance.monitor_queues", queue="mail", soft_time_limit=60)
def monitor_queues(self: Task) -> dict[str, Any]:
    """Alert on queues past their waiting-count or waiting-age threshold."""
    alerts = queue_monitor.monitor_queues(
        self.app, current_app.extensions["redis"], current_settings()
    )
    return {"alerts": alerts}


@periodic_task("maintenance.daily_report", queue="mail", soft_time_limit=120, max_retries=2)
def send_daily_report(self: Task) -> dict[str, Any]:
    """Mail yesterday's figures: jobs per queue, failures, p50/p95 run time."""
    report = daily_report.send(self.app, current_settings(), utcnow())
    return {"mailed": report["mailed"], "mail_id": report.get("mail_id"), "day": report["day"]}
