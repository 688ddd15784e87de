from __future__ import annotations

from datetime import timedelta

from flask import Flask

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from app.services.operations import retention
from tests.support.jobs import job_row


def test_purge_deletes_only_finished_jobs_past_retention(app: Flask) -> None:
    now = utcnow()
    with app.app_context():
        old_done = job_row(
            JobState.SUCCEEDED,
            task="tests.echo",
            queue="dataset",
            finished_at=now - timedelta(days=40),
        )
        old_running = job_row(
            JobState.STARTED,
            task="tests.echo",
            queue="dataset",
            created_at=now - timedelta(days=40),
        )
        recent_done = job_row(
            JobState.FAILED,
            task="tests.echo",
            queue="dataset",
            finished_at=now - timedelta(days=1),
        )
        old_canary = job_row(
            JobState.SUCCEEDED,
            task="system.canary",
            queue="mail",
            finished_at=now - timedelta(hours=2),
        )
        db.session.add_all([old_done, old_running, recent_done, old_canary])
        db.session.commit()
        ids = {
            "old_done": old_done.id,
            "old_running": old_running.id,
            "recent": recent_done.id,
            "canary": old_canary.id,
        }

        deleted = retention.purge_expired_jobs(
            older_than=timedelta(days=30), canaries_older_than=timedelta(hours=1)
        )

        assert deleted >= 2
        db.session.expire_all()
        assert db.session.get(Job, ids["old_done"]) is None
        assert db.session.get(Job, ids["canary"]) is None
        assert db.session.get(Job, ids["old_running"]) is not None
        assert db.session.get(Job, ids["recent"]) is not None
