"""What the broker and the workers say about each declared queue."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from celery import Celery
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import text

from app import queues
from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.services.jobs import BROKER_ERRORS


def database_ok() -> str | None:
    """None when the database answers, else why not."""
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return None
    except Exception as exc:  # any driver error means "not ready"; the reason is reported
        db.session.rollback()
        return f"{type(exc).__name__}: {exc}"


def broker_ok(celery_app: Celery, timeout: float) -> str | None:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return None
    except BROKER_ERRORS as exc:
        return f"{type(exc).__name__}: {exc}"


def waiting_counts(celery_app: Celery) -> dict[str, int | None]:
    """Messages waiting in each queue (None when the broker could not say)."""
    counts: dict[str, int | None] = {}
    with celery_app.connection_for_read() as conn:
        for name in queues.QUEUES:
            channel = conn.channel()
            try:
                counts[name] = channel.queue_declare(name, passive=True).message_count
            except BROKER_ERRORS:
                counts[name] = None
            except Exception:
                # A queue no worker ever declared does not exist yet: nothing waits in it.
                counts[name] = 0
            finally:
                try:
                    channel.close()
                except Exception:  # closing a channel the broker already closed
                    pass
    return counts


def consumers(celery_app: Celery, timeout: float) -> dict[str, list[dict[str, Any]]]:
    """Workers consuming each declared queue, with their pool and concurrency."""
    inspect = celery_app.control.inspect(timeout=timeout)
    with ThreadPoolExecutor(max_workers=2) as pool:
        active_f = pool.submit(inspect.active_queues)
        stats_f = pool.submit(inspect.stats)
        active = active_f.result() or {}
        stats = stats_f.result() or {}
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in queues.QUEUES}
    for worker, worker_queues in active.items():
        pool_info = (stats.get(worker) or {}).get("pool") or {}
        implementation = str(pool_info.get("implementation", ""))
        entry = {
            "worker": worker,
            "pool": implementation.rsplit(":", 1)[0].rsplit(".", 1)[-1] or None,
            "concurrency": pool_info.get("max-concurrency"),
        }
        for q in worker_queues:
            if q.get("name") in found:
                found[q["name"]].append(entry)
    return found


def oldest_waiting(now: datetime | None = None) -> dict[str, datetime | None]:
    """Creation time of the oldest job each queue holds that is due and not yet started."""
    now = now or utcnow()
    rows = db.session.execute(
        select(Job.queue, func.min(Job.created_at))
        .where(
            Job.state.in_([JobState.QUEUED, JobState.RETRYING]),
            or_(Job.eta.is_(None), Job.eta <= now),
        )
        .group_by(Job.queue)
    ).all()
    oldest: dict[str, datetime | None] = dict.fromkeys(queues.QUEUES)
    for name, created in rows:
        if name in oldest:
            oldest[name] = created
    return oldest
