"""Celery beat with one active scheduler: any number may run, only the lock holder sends.

Every beat process ticks; each tick first takes or renews a Redis lock whose lifetime is
BEAT_LOCK_TTL. A beat without the lock is a standby and sends nothing. A stopping beat
releases the lock, so a standby takes over at its next check; a crashed one loses it when
the TTL runs out.

Two guards keep a tick from being sent twice, even if a paused beat wakes up after its lock
expired and a standby took over: a send first claims the tick in Redis (`SET NX` with a
window of half the period), and the last send time of each entry is shared in Redis, so
a beat that takes over continues the schedule instead of starting it afresh.
"""

from __future__ import annotations

import logging
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

import redis
from celery.beat import PersistentScheduler
from celery.beat import ScheduleEntry
from celery.schedules import crontab
from celery.schedules import schedule
from redis.exceptions import LockError
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

LOCK_KEY = "tasklane:beat:lock"
CLAIM_KEY = "tasklane:beat:sent:{name}"
LAST_RUN_KEY = "tasklane:beat:last-run:{name}"
# Crontab lines have one-minute resolution; two beats' sends of one tick are seconds apart.
CRONTAB_CLAIM_WINDOW = 30.0
# A tick nobody ran within this time is dropped rather than run late (crontab entries).
CRONTAB_EXPIRES = 3600


def parse_schedule(value: str) -> schedule | crontab:
    """`"90"` (seconds) or a five-field crontab line (`"0 6 * * *"`, UTC)."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"schedule {value!r} is neither a number of seconds nor a crontab line "
                "with five fields (minute hour day-of-month month day-of-week)"
            ) from None
        minute, hour, day_of_month, month, day_of_week = fields
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
        )
    if seconds <= 0:
        raise ValueError(f"schedule {value!r} must be a positive number of seconds")
    return schedule(timedelta(seconds=seconds))


def entry(task: str, value: str) -> dict[str, Any]:
    """A beat_schedule entry for `task` on schedule `value`, with an expiry for stale ticks."""
    parsed = parse_schedule(value)
    if isinstance(parsed, crontab):
        expires = float(CRONTAB_EXPIRES)
    else:
        expires = parsed.run_every.total_seconds()
    return {"task": task, "schedule": parsed, "options": {"expires": expires}}


def claim_window(sched: Any) -> float:
    if isinstance(sched, schedule) and not isinstance(sched, crontab):
        return float(sched.run_every.total_seconds()) / 2
    return CRONTAB_CLAIM_WINDOW


class SingleBeatScheduler(PersistentScheduler):  # type: ignore[misc]
    """PersistentScheduler that sends only while it holds the beat lock in Redis."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        app = kwargs["app"] if "app" in kwargs else args[0]
        conf = app.conf.tasklane_beat
        self.lock_ttl = float(conf["lock_ttl"])
        self.redis = redis.Redis.from_url(
            conf["redis_url"], socket_timeout=self.lock_ttl / 3, socket_connect_timeout=2
        )
        self.lock = self.redis.lock(
            LOCK_KEY, timeout=self.lock_ttl, blocking=False, thread_local=False
        )
        self.active = False
        super().__init__(*args, **kwargs)

    @property
    def check_interval(self) -> float:
        # Renew well inside the TTL, so a slow tick never lets the lock lapse.
        return self.lock_ttl / 3

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold_lock():
            return self.check_interval
        return min(float(super().tick(*args, **kwargs)), self.check_interval)

    def _hold_lock(self) -> bool:
        if self.active:
            try:
                self.lock.reacquire()
                return True
            except (LockError, RedisError) as exc:
                log.warning("beat: lost the beat lock (%s); standing by", exc)
                self.active = False
        try:
            acquired = bool(self.lock.acquire(blocking=False))
        except RedisError as exc:
            log.warning("beat: Redis unreachable (%s); not sending periodic jobs", exc)
            return False
        if acquired:
            log.info("beat: holding the beat lock; this beat sends the periodic jobs")
            self.active = True
            self._continue_shared_schedule()
        return acquired

    def _continue_shared_schedule(self) -> None:
        """Take over each entry's last send time from whichever beat sent it."""
        for name, item in self.schedule.items():
            raw = self.redis.get(LAST_RUN_KEY.format(name=name))
            if raw:
                item.last_run_at = datetime.fromtimestamp(float(raw), UTC)
        # Rebuild the heap from the adopted times.
        self._heap = None

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        if not self._claim(entry):
            log.info("beat: %s was already sent for this tick; not sending it again", entry.name)
            return None
        return super().apply_async(entry, producer=producer, advance=advance, **kwargs)

    def _claim(self, entry: ScheduleEntry) -> bool:
        if not self.active:
            return False
        window_ms = max(int(claim_window(entry.schedule) * 1000), 100)
        now = datetime.now(UTC).timestamp()
        try:
            claimed = self.redis.set(CLAIM_KEY.format(name=entry.name), now, nx=True, px=window_ms)
            if claimed:
                self.redis.set(LAST_RUN_KEY.format(name=entry.name), now)
        except RedisError as exc:
            log.warning("beat: could not claim %s (%s); not sending it", entry.name, exc)
            return False
        return bool(claimed)

    def close(self) -> None:
        super().close()
        if self.active:
            try:
                self.lock.release()
                log.info("beat: released the beat lock")
            except (LockError, RedisError):
                pass
            self.active = False
