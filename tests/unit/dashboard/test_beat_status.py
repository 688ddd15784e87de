"""Beat as the overview shows it, read from the keys the beat scheduler keeps in Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime

import pytest
import redis
from celery import Celery

from app import beat
from app.dashboard import beat_status


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    names = ["bench.every_minute", "bench.daily"]
    keys = [beat.LOCK_KEY, *(beat.LAST_RUN_KEY.format(name=n) for n in names)]
    conn.delete(*keys)
    yield conn
    conn.delete(*keys)
    conn.close()


def _celery() -> Celery:
    app = Celery("beat-status-test", set_as_current=False)
    app.conf.beat_schedule = {
        "bench.every_minute": beat.entry("bench.every_minute", "60"),
        "bench.daily": beat.entry("bench.daily", "0 6 * * *"),
    }
    app.conf.timezone = "UTC"
    return app


def test_no_lock_means_no_leader_and_says_how_to_start_one(client: redis.Redis) -> None:
    status = beat_status.read(_celery(), client)
    assert not status.leader_active and "./entrypoint.sh beat" in status.leader
    assert [job.name for job in status.jobs] == ["bench.every_minute", "bench.daily"]
    assert all(job.next_run is None for job in status.jobs)


def test_the_leader_and_each_jobs_last_and_next_run(client: redis.Redis) -> None:
    last = time.time() - 20
    client.set(beat.LOCK_KEY, "token", px=10_000)
    client.set(beat.LAST_RUN_KEY.format(name="bench.every_minute"), last)
    status = beat_status.read(_celery(), client)
    assert status.leader_active and "holds the lock" in status.leader
    minute, daily = status.jobs
    assert minute.schedule == "every 60 s"
    assert minute.last_run == datetime.fromtimestamp(last, UTC)
    assert minute.next_run is not None
    # Due 60 s after the last run, give or take the test's own run time.
    assert abs((minute.next_run - minute.last_run).total_seconds() - 60) < 5
    assert daily.schedule == "cron 0 6 * * *"
    assert daily.last_run is None and daily.next_run is not None
    assert (daily.next_run.hour, daily.next_run.minute) == (6, 0)
