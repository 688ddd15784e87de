"""Three real `celery beat` processes (RedBeat) on one Redis: one sends, each tick goes out once.

The beats get a Redis of their own that no worker consumes, so every periodic message they
send stays in its queue and the test reads exactly what was sent, and when (a periodic
message's `expires` is its send time plus the period).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from app import create_app
from app.services.operations import beat_status
from tests.conftest import make_settings
from tests.support import services
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
PERIOD = 1.0
LOCK_TTL = 2.0
TASK = "maintenance.reap_stale_jobs"


@pytest.fixture
def beat_redis(tmp_path: Path) -> Iterator[str]:
    with services.embedded_redis_server(tmp_path / "redis") as url:
        yield url


class Beat:
    def __init__(self, name: str, env: dict[str, str], tmp: Path) -> None:
        self.name = name
        self.log_path = tmp / f"beat-{name}.log"
        command = [sys.executable, "-m", "celery", "-A", "app.celery", "beat", "-l", "INFO"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def active(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"beat {self.name} exited; log:\n{self.log()}")
        return "beat: Acquired lock" in self.log()

    def acquired_at(self) -> float:
        """When this beat took the lock (its log line's local time)."""
        [stamp] = re.findall(
            r"^\[?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}).*Acquired lock", self.log(), re.M
        )
        return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
        self.process.wait(timeout=30)


@pytest.fixture
def beat_env(worker_env: dict[str, str], beat_redis: str) -> dict[str, str]:
    return {
        **worker_env,
        "REDIS_URL": beat_redis,
        "BEAT_LOCK_TTL": str(LOCK_TTL),
        "TZ": "UTC",
        "REAP_STALE_JOBS_SCHEDULE": str(PERIOD),
        "PURGE_EXPIRED_JOBS_ENABLED": "false",
        "QUEUE_MONITOR_ENABLED": "false",
        "DAILY_REPORT_ENABLED": "false",
    }


def sent_times(url: str) -> list[float]:
    """Send times of the periodic messages waiting in the dataset queue, oldest first."""
    client = redis.Redis.from_url(url)
    times = []
    for raw in client.lrange("dataset", 0, -1):
        message = json.loads(raw)
        headers = message["headers"]
        if headers["task"] == TASK:
            times.append(datetime.fromisoformat(headers["expires"]).timestamp() - PERIOD)
    return sorted(times)


def assert_once_per_tick(times: list[float]) -> None:
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    # A tick sent by both beats would show as two sends a moment apart.
    assert all(gap > PERIOD / 2 for gap in gaps), gaps


def _ticks_after(url: str, moment: float) -> int:
    return len([t for t in sent_times(url) if t > moment])


def _the_active(beats: list[Beat]) -> Beat | None:
    active = [beat for beat in beats if beat.active()]
    assert len(active) <= 1, [beat.name for beat in active]
    return active[0] if active else None


def test_one_of_several_beats_sends_each_tick_once_and_standbys_take_over(
    beat_env: dict[str, str], beat_redis: str, base_settings: dict[str, Any], tmp_path: Path
) -> None:
    status_app = create_app(make_settings(base_settings, REDIS_URL=beat_redis))
    # Started together: they race for the lock, and whoever loses stands by.
    beats = [Beat(name, beat_env, tmp_path) for name in ("a", "b", "c")]
    try:
        for beat in beats:
            wait_for(
                lambda beat=beat: "beat: Starting" in beat.log(),  # type: ignore[misc]
                timeout=90,
                interval=0.2,
                what=f"beat {beat.name} to start",
            )
        first = wait_for(lambda: _the_active(beats), timeout=30, what="one beat to lead")
        start = sent_times(beat_redis)[-1] if sent_times(beat_redis) else 0.0
        wait_for(lambda: _ticks_after(beat_redis, start) >= 4, timeout=30, what="4 ticks")
        assert _the_active(beats) is first, "a standby must not send while the lock is held"
        with status_app.app_context():
            assert beat_status.leader() == f"{socket.gethostname()}:{first.process.pid}"
            [reap] = [e for e in beat_status.periodic_status() if e["task"] == TASK]
            assert reap["last_run_at"] is not None and reap["next_run_at"] is not None
            assert reap["last_run_at"].timestamp() == pytest.approx(
                sent_times(beat_redis)[-1], abs=1
            )

        # A crash: the lock is left to expire, then a standby takes over.
        first.stop(signal.SIGKILL)
        crashed_at = sent_times(beat_redis)[-1]
        rest = [beat for beat in beats if beat is not first]
        second = wait_for(lambda: _the_active(rest), timeout=30, what="a standby to take over")
        wait_for(lambda: _ticks_after(beat_redis, crashed_at) >= 3, timeout=30, what="3 ticks")
        after = [t for t in sent_times(beat_redis) if t > crashed_at]
        taken_over = after[0]
        # The lock outlives the crashed leader by up to its TTL: ticks fell due meanwhile.
        assert taken_over - crashed_at > PERIOD, "no tick was due during the takeover"
        # None lost: the overdue tick goes out on the new leader's first tick, not a period
        # later; none doubled: it goes out once (the schedule continues from its send).
        assert taken_over - second.acquired_at() < PERIOD / 2
        assert after[1] - taken_over > PERIOD / 2
        # The crashed beat's lock runs out after its TTL; a standby retries every fifth of it.
        assert taken_over - crashed_at < PERIOD + LOCK_TTL + 3
        with status_app.app_context():
            assert beat_status.leader() == f"{socket.gethostname()}:{second.process.pid}"

        # A clean stop releases the lock at once.
        second.stop(signal.SIGTERM)
        assert "beat: Releasing lock" in second.log()
        stopped_at = sent_times(beat_redis)[-1]
        [third] = [beat for beat in rest if beat is not second]
        wait_for(third.active, timeout=10, interval=0.1, what="the last standby to take over")
        wait_for(lambda: _ticks_after(beat_redis, stopped_at) >= 2, timeout=30, what="2 ticks")
    finally:
        for beat in beats:
            beat.stop(signal.SIGKILL)

    assert_once_per_tick(sent_times(beat_redis))
