"""Periodic operations run by beat: retention, the stale-job reaper, queue alerts, reports.

Each periodic job has an on/off flag and a schedule, either seconds or a crontab line
("m h dom mon dow", UTC), checked when settings load.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from app.settings.base import Concern
from app.settings.base import env
from app.settings.schedule import check_schedule

Schedule = Annotated[str, AfterValidator(check_schedule)]


class OperationsSettings(Concern):
    job_retention_days: int = env("JOB_RETENTION_DAYS", 30, ge=1)
    purge_expired_jobs_interval: int = env("PURGE_EXPIRED_JOBS_INTERVAL", 3600, ge=60)
    purge_expired_jobs_enabled: bool = env("PURGE_EXPIRED_JOBS_ENABLED", True)
    # Single active beat: the lock's lifetime; a standby takes over this long after a crash.
    beat_lock_ttl: float = env("BEAT_LOCK_TTL", 30.0, ge=1)
    reap_stale_jobs_enabled: bool = env("REAP_STALE_JOBS_ENABLED", True)
    reap_stale_jobs_schedule: Schedule = env("REAP_STALE_JOBS_SCHEDULE", "300")
    queue_monitor_enabled: bool = env("QUEUE_MONITOR_ENABLED", True)
    queue_monitor_schedule: Schedule = env("QUEUE_MONITOR_SCHEDULE", "60")
    # A queue alerts when this many messages wait, or its oldest job waited this many seconds.
    queue_alert_max_waiting: int = env("QUEUE_ALERT_MAX_WAITING", 1000, ge=1)
    queue_alert_max_age: float = env("QUEUE_ALERT_MAX_AGE", 900.0, gt=0)
    # At most one alert mail per queue in this many seconds.
    queue_alert_cooldown: int = env("QUEUE_ALERT_COOLDOWN", 3600, ge=1)
    # Recipient of queue alerts; unset skips the mail.
    alert_email_to: str | None = env("ALERT_EMAIL_TO")
    daily_report_enabled: bool = env("DAILY_REPORT_ENABLED", True)
    daily_report_schedule: Schedule = env("DAILY_REPORT_SCHEDULE", "0 6 * * *")
    # Recipient of the daily report; unset skips the mail.
    daily_report_to: str | None = env("DAILY_REPORT_TO")
