"""Beat as the dashboard shows it: who schedules, and each periodic job's last and next run.

The one place the dashboard reads beat's state, so a change of scheduler (RedBeat) changes
only `read()`. Today it reads the keys app/beat.py's SingleBeatScheduler keeps in Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import redis
from celery import Celery
from redis.exceptions import RedisError

from app.beat import LAST_RUN_KEY
from app.beat import LOCK_KEY
from app.models.base import utcnow


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


def read(celery_app: Celery, client: redis.Redis) -> BeatStatus:
    """Beat's leader and the periodic jobs; Redis errors become a message, never a 500."""
    now = utcnow()
    schedule: dict[str, dict[str, Any]] = dict(celery_app.conf.beat_schedule or {})
    try:
        ttl_ms = int(client.pttl(LOCK_KEY))
        raw = client.mget([LAST_RUN_KEY.format(name=name) for name in schedule]) if schedule else []
    except RedisError as exc:
        return BeatStatus(
            leader="unknown: Redis did not answer", leader_active=False, jobs=[], error=str(exc)
        )
    if ttl_ms > 0:
        leader = f"a beat holds the lock (renewed within the next {ttl_ms / 1000:.0f} s)"
    else:
        leader = "no beat holds the lock: periodic jobs are not being sent; start one with "
        leader += "`./entrypoint.sh beat`"
    jobs = []
    for (name, entry), value in zip(schedule.items(), raw, strict=True):
        last = datetime.fromtimestamp(float(value), UTC) if value else None
        sched = entry["schedule"]
        jobs.append(
            PeriodicJob(
                name=name,
                task=str(entry.get("task", name)),
                schedule=_describe(sched),
                last_run=last,
                next_run=_next_run(sched, last, now) if ttl_ms > 0 else None,
            )
        )
    return BeatStatus(leader=leader, leader_active=ttl_ms > 0, jobs=jobs)
