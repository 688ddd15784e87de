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
        # job_row's defaults: task tests.echo on the dataset queue.
        rows = {
            "old_done": job_row(JobState.SUCCEEDED, finished_at=now - timedelta(days=40)),
            "old_running": job_row(JobState.STARTED, created_at=now - timedelta(days=40)),
            "recent": job_row(JobState.FAILED, finished_at=now - timedelta(days=1)),
            "canary": job_row(
                JobState.SUCCEEDED,
                task="system.canary",
                queue="mail",
                finished_at=now - timedelta(hours=2),
            ),
        }
        db.session.add_all(rows.values())
        db.session.commit()
        ids = {name: row.id for name, row in rows.items()}

        deleted = retention.purge_expired_jobs(
            older_than=timedelta(days=30), canaries_older_than=timedelta(hours=1)
        )

        assert deleted >= 2
        db.session.expire_all()
        assert db.session.get(Job, ids["old_done"]) is None
        assert db.session.get(Job, ids["canary"]) is None
        assert db.session.get(Job, ids["old_running"]) is not None
        assert db.session.get(Job, ids["recent"]) is not None
