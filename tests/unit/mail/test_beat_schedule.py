"""Periodic jobs come from settings: each with an on/off flag, a schedule and an expiry."""

from __future__ import annotations

from typing import Any

import pytest
from celery.schedules import crontab

from app.beat import parse_schedule
from app.extensions.ext_celery import beat_schedule
from config import ConfigError
from config import load_settings
from tests.conftest import make_settings


def test_seconds_and_crontab_lines_are_schedules() -> None:
    assert parse_schedule("1.5").run_every.total_seconds() == 1.5
    daily = parse_schedule("0 6 * * *")
    assert isinstance(daily, crontab) and daily.hour == {6} and daily.minute == {0}


@pytest.mark.parametrize("value", ["0", "-5", "every day", "0 6 * *", "99 * * * *"])
def test_bad_schedules_are_refused_at_startup(value: str) -> None:
    with pytest.raises(ConfigError, match="QUEUE_MONITOR_SCHEDULE"):
        load_settings(_env_file=None, QUEUE_MONITOR_SCHEDULE=value)


def test_every_periodic_job_is_declared_with_an_expiry(base_settings: dict[str, Any]) -> None:
    schedule = beat_schedule(make_settings(base_settings))
    assert set(schedule) == {
        "system.purge_expired_jobs",
        "maintenance.reap_stale_jobs",
        "maintenance.monitor_queues",
        "maintenance.daily_report",
    }
    assert all(entry["options"]["expires"] > 0 for entry in schedule.values())
    assert schedule["maintenance.monitor_queues"]["options"]["expires"] == 60


def test_a_periodic_job_switched_off_is_not_scheduled(base_settings: dict[str, Any]) -> None:
    settings = make_settings(
        base_settings, DAILY_REPORT_ENABLED=False, REAP_STALE_JOBS_SCHEDULE="*/5 * * * *"
    )
    schedule = beat_schedule(settings)
    assert "maintenance.daily_report" not in schedule
    assert isinstance(schedule["maintenance.reap_stale_jobs"]["schedule"], crontab)
