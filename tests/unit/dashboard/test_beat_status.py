"""Beat as the overview shows it, read from the state RedBeat keeps in Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from flask import Flask
from redbeat.schedulers import RedBeatSchedulerEntry

from app import beat
from app.dashboard import beat_status
from app.models.base import utcnow

NAMES = ["bench.every_minute", "bench.daily"]


@pytest.fixture
def celery_app(app: Flask, redis_url: str) -> Iterator[object]:
    celery_app = app.extensions["celery"]
    saved = dict(celery_app.conf.beat_schedule or {})
    celery_app.conf.beat_schedule = {
        "bench.every_minute": beat.entry("bench.every_minute", "60"),
        "bench.daily": beat.entry("bench.daily", "0 6 * * *"),
    }
    conn = redis.Redis.from_url(redis_url)
    with app.app_context():
        yield celery_app
        for name in NAMES:
            try:
                RedBeatSchedulerEntry.from_key(f"redbeat:{name}", app=celery_app).delete()
            except KeyError:
                pass
    conn.delete(beat.LEADER_KEY)
    conn.close()
    celery_app.conf.beat_schedule = saved


def test_no_leader_says_how_to_start_one(celery_app: object) -> None:
    status = beat_status.read(celery_app)  # type: ignore[arg-type]
    assert not status.leader_active and "./entrypoint.sh beat" in status.leader
    assert [job.name for job in status.jobs] == NAMES
    assert all(job.next_run is None for job in status.jobs)


def test_the_leader_and_each_jobs_last_and_next_run(celery_app: object, redis_url: str) -> None:
    last = utcnow().replace(microsecond=0) - timedelta(seconds=20)
    entry = RedBeatSchedulerEntry(
        "bench.every_minute",
        "bench.every_minute",
        beat.parse_schedule("60"),
        app=celery_app,
        last_run_at=last,
    )
    entry.save()
    redis.Redis.from_url(redis_url).set(beat.LEADER_KEY, "host-1:42", px=10_000)
    status = beat_status.read(celery_app)  # type: ignore[arg-type]
    assert status.leader_active and "host-1:42" in status.leader
    minute, daily = status.jobs
    assert minute.schedule == "every 60 s"
    assert minute.last_run == last
    assert minute.next_run is not None
    assert abs((minute.next_run - last).total_seconds() - 60) < 5
    assert daily.schedule == "cron 0 6 * * *"
    assert daily.last_run is None and daily.next_run is not None
    assert (daily.next_run.hour, daily.next_run.minute) == (6, 0)
