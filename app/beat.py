"""Celery beat on RedBeat: the schedule from settings, its state and the leader lock in Redis.

Any number of beats may run against one Redis. RedBeat (celery-redbeat) lets only the holder
of its lock send: the others wait in `beat_init` for it, and a crashed leader's lock runs out
after `redbeat_lock_timeout` (BEAT_LOCK_TTL). Each entry's last send time lives in Redis, so
the beat that takes over continues the schedule: a tick that fell due during the takeover is
sent once, at once, and none is sent twice.

The one addition here is a name for the leader, for the status page (`leader()`).
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from celery.schedules import crontab
from celery.schedules import schedule
from redbeat import RedBeatScheduler
from redbeat.schedulers import get_redis

from app.settings.schedule import schedule_parts

KEY_PREFIX = "tasklane:beat:"
LEADER_KEY = KEY_PREFIX + "leader"
# A tick nobody ran within this time is dropped rather than run late (crontab entries).
CRONTAB_EXPIRES = 3600


def parse_schedule(value: str) -> schedule | crontab:
    """`"90"` (seconds) or a five-field crontab line (`"0 6 * * *"`, UTC)."""
    parts = schedule_parts(value)
    if isinstance(parts, dict):
        return crontab(**parts)
    return schedule(timedelta(seconds=parts))


def entry(task: str, value: str) -> dict[str, Any]:
    """A beat_schedule entry for `task` on schedule `value`, with an expiry for stale ticks."""
    parsed = parse_schedule(value)
    if isinstance(parsed, crontab):
        expires = float(CRONTAB_EXPIRES)
    else:
        expires = parsed.run_every.total_seconds()
    return {"task": task, "schedule": parsed, "options": {"expires": expires}}


def beat_config(redis_url: str, lock_ttl: float) -> dict[str, Any]:
    """Celery settings for RedBeat: its own Redis connection, lock and key prefix."""
    return {
        "beat_scheduler": "app.beat:Scheduler",
        "redbeat_redis_url": redis_url,
        # Explicitly none: the broker's transport options (priority steps...) are not for it.
        "redbeat_redis_options": {},
        "redbeat_key_prefix": KEY_PREFIX,
        "redbeat_lock_timeout": lock_ttl,
        # The leader renews its lock every tick and a standby retries this often, so both
        # must be well inside the lock's lifetime.
        "beat_max_loop_interval": lock_ttl / 5,
    }


class Scheduler(RedBeatScheduler):  # type: ignore[misc]
    """RedBeat's scheduler, which also names the leader (host:pid) while it holds the lock."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        remaining = float(super().tick(*args, **kwargs))
        # Written after RedBeat extended its lock, with the lock's lifetime: it names a live
        # leader and disappears with a crashed one.
        get_redis(self.app).set(
            LEADER_KEY, f"{socket.gethostname()}:{os.getpid()}", px=int(self.lock_timeout * 1000)
        )
        return remaining

    def close(self) -> None:
        if self.lock is not None and self.lock.owned():
            get_redis(self.app).delete(LEADER_KEY)
        super().close()
