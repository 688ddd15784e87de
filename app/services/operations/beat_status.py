"""What beat is doing, read from RedBeat's state in Redis: the periodic jobs and the leader.

No beat process is asked anything: RedBeat keeps each entry's definition and last send time
in Redis, and the leading beat names itself there while it holds the lock (app/beat.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from celery import Celery
from flask import current_app
from redbeat.schedulers import RedBeatSchedulerEntry
from redbeat.schedulers import ensure_conf
from redbeat.schedulers import get_redis

from app.beat import LEADER_KEY


class PeriodicStatus(TypedDict):
    name: str
    task: str
    last_run_at: datetime | None
    next_run_at: datetime | None


def _celery() -> Celery:
    celery_app: Celery = current_app.extensions["celery"]
    return celery_app


def periodic_status() -> list[PeriodicStatus]:
    """Each periodic job beat knows, by name: its task, last send and next due time (UTC).

    Empty until a beat has started once against this Redis (it stores the schedule there).
    `next_run_at` of a job that is overdue is now; None when it will never run again.
    """
    celery_app = _celery()
    conf = ensure_conf(celery_app)
    keys = get_redis(celery_app).zrange(conf.schedule_key, 0, -1)
    found: list[PeriodicStatus] = []
    for key in keys:
        try:
            entry = RedBeatSchedulerEntry.from_key(key, app=celery_app)
        except KeyError:
            continue  # removed between the two reads
        found.append(
            {
                "name": entry.name,
                "task": entry.task,
                "last_run_at": entry.last_run_at,
                "next_run_at": entry.due_at,
            }
        )
    return sorted(found, key=lambda item: item["name"])


def leader() -> str | None:
    """`host:pid` of the beat that holds the lock and sends, or None if no beat leads."""
    value = get_redis(_celery()).get(LEADER_KEY)
    return str(value) if value else None
