"""The queue monitor: a queue with too many waiting messages, or a job waiting too long,
raises an alert: a Sentry event and a `queue_alert` mail, at most one per cooldown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sentry_sdk
from celery import Celery
from redis import Redis

from app import queues
from app.models.base import utcnow
from app.services.mail import mails
from app.services.operations import queue_status
from config import Settings


@dataclass(frozen=True)
class Breach:
    queue: str
    waiting: int | None
    oldest_age_seconds: float | None


def find_breaches(
    celery_app: Celery, *, max_waiting: int, max_age: float, now: datetime
) -> list[Breach]:
    counts = queue_status.waiting_counts(celery_app)
    oldest = queue_status.oldest_waiting(now)
    breaches = []
    for name in queues.QUEUES:
        waiting = counts.get(name)
        created = oldest.get(name)
        age = (now - created).total_seconds() if created else None
        if (waiting is not None and waiting >= max_waiting) or (age is not None and age >= max_age):
            breaches.append(Breach(name, waiting, age))
    return breaches


def monitor_queues(
    celery_app: Celery, redis_client: Redis, settings: Settings
) -> list[dict[str, Any]]:
    """Check every queue; alert on each one past a threshold. Returns the new alerts."""
    now = utcnow()
    breaches = find_breaches(
        celery_app,
        max_waiting=settings.operations.queue_alert_max_waiting,
        max_age=settings.operations.queue_alert_max_age,
        now=now,
    )
    recipients = mails.split_addresses(settings.operations.alert_email_to)
    # One alert per queue and cooldown window: a repeated or redelivered check stays quiet.
    window = int(now.timestamp() // settings.operations.queue_alert_cooldown)
    alerts = []
    for breach in breaches:
        key = f"tasklane:queue-alert:{breach.queue}:{window}"
        if not redis_client.set(
            key, now.isoformat(), nx=True, ex=settings.operations.queue_alert_cooldown
        ):
            continue
        context: dict[str, Any] = {
            "queue": breach.queue,
            "waiting": breach.waiting,
            "oldest_age_seconds": breach.oldest_age_seconds,
            "max_waiting": settings.operations.queue_alert_max_waiting,
            "max_age_seconds": settings.operations.queue_alert_max_age,
            "checked_at": now.isoformat(),
        }
        try:
            # A no-op unless the observability lane initialised Sentry.
            sentry_sdk.capture_message(
                f"queue {breach.queue} is falling behind: {breach.waiting} waiting, "
                f"oldest job waiting {breach.oldest_age_seconds}s",
                level="warning",
            )
            mail_id = None
            if recipients:
                mail, _ = mails.queue_mail(
                    celery_app,
                    template="queue_alert",
                    to=recipients,
                    context=context,
                    dedup_key=key,
                )
                mail_id = mail.id
        except Exception:
            # Not alerted after all: the next check tries again.
            redis_client.delete(key)
            raise
        alerts.append({**context, "mail_id": mail_id})
    return alerts
