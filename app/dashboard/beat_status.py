"""Beat as the dashboard shows it: who schedules, and each periodic job's last and next run.

The one place the dashboard reads beat's state, so a change of scheduler (RedBeat) changes
only `read()`: it reads RedBeat's state through app/services/operations/beat_status.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from celery import Celery
from redis.exceptions import RedisError

from app.models.base import utcnow
from app.services.operations import beat_status as services_beat


@dataclass
class PeriodicJob:
    name: str
    task: str
    schedule: str
    last_run: datetime | None
    next_run: datetime | None


@dataclass
class BeatStatus:
    # A human sentence: which beat holds the lock, or that none does.
    leader: str
    leader_active: bool
    jobs: list[PeriodicJob]
    error: str | None = None


def _describe(sched: Any) -> str:
    run_every = getattr(sched, "run_every", None)
    if isinstance(run_every, timedelta) and type(sched).__name__ == "schedule":
        return f"every {run_every.total_seconds():g} s"
    fields = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
    if all(hasattr(sched, f"_orig_{name}") for name in fields):
        # A crontab line, as it was written in the settings.
        return "cron " + " ".join(str(getattr(sched, f"_orig_{name}")) for name in fields)
    return str(sched)


def _next_run(sched: Any, last_run: datetime | None, now: datetime) -> datetime | None:
    try:
        remaining = sched.remaining_estimate(last_run or now)
    except Exception:  # a custom schedule class that cannot estimate: show no next run
        return None
    if not isinstance(remaining, timedelta):
        return None
    due = now + max(remaining, timedelta(0))
    # Celery's estimate drops microseconds; to the nearest second a 06:00 run reads 06:00:00.
    return (due + timedelta(microseconds=500_000)).replace(microsecond=0)


def read(celery_app: Celery) -> BeatStatus:
    """Beat's leader and the periodic jobs; Redis errors become a message, never a 500."""
    now = utcnow()
    schedule: dict[str, dict[str, Any]] = dict(celery_app.conf.beat_schedule or {})
    try:
        leader = services_beat.leader()
        stored = {entry["name"]: entry for entry in services_beat.periodic_status()}
    except RedisError as exc:
        return BeatStatus(
            leader="unknown: Redis did not answer", leader_active=False, jobs=[], error=str(exc)
        )
    if leader:
        text = f"{leader} holds the RedBeat lock and sends the periodic jobs"
    else:
        text = "no beat holds the lock: periodic jobs are not being sent; start one with "
        text += "`./entrypoint.sh beat`"
    jobs = []
    for name, entry in schedule.items():
        known = stored.get(name)
        last = known["last_run_at"] if known else None
        sched = entry["schedule"]
        jobs.append(
            PeriodicJob(
                name=name,
                task=str(entry.get("task", name)),
                schedule=_describe(sched),
                last_run=last,
                next_run=_next_run(sched, last, now) if leader else None,
            )
        )
    return BeatStatus(leader=text, leader_active=leader is not None, jobs=jobs)
