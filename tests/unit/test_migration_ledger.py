"""Migration f1_ledger carries existing jobs over (on SQLite and on PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade
from sqlalchemy import bindparam
from sqlalchemy import text
from sqlalchemy.types import DateTime

from app import create_app
from app.extensions.ext_database import db
from tests.conftest import make_settings
from tests.support import services

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def fresh_url(base_settings: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    if str(base_settings["DATABASE_URL"]).startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrate.db'}"
        return
    admin = os.environ.get("TASKLANE_TEST_PG_ADMIN") or services.LOCAL_POSTGRES
    with services._fresh_postgres_database(admin) as url:
        yield url


def test_existing_jobs_get_their_attempt_lease_and_outbox_state(
    base_settings: dict[str, Any], fresh_url: str
) -> None:
    app = create_app(make_settings(base_settings, DATABASE_URL=fresh_url))
    with app.app_context():
        upgrade(revision="e1_notify_to")
        insert = text(
            "INSERT INTO jobs (id, task, queue, state, args, attempts, worker, parent_id, "
            "api_key_id, error_type, error_message, created_at, started_at, finished_at, "
            "updated_at) VALUES (:id, 'tests.echo', 'dataset', :state, '{}', :attempts, "
            "'w@h', :parent, :key, :error_type, NULL, :t, :started, :finished, :t)"
        ).bindparams(
            *(bindparam(n, type_=DateTime(timezone=True)) for n in ("t", "started", "finished"))
        )
        rows = [
            ("parent", "succeeded", 1, None, None, None, T0, T0),
            ("child", "succeeded", 1, "parent", None, None, T0, T0),
            ("orphan", "queued", 0, "gone-parent", 999, None, None, None),
            ("running", "started", 1, None, None, None, T0, None),
            ("failed-no-time", "failed", 5, None, None, "ValueError", T0, None),
        ]
        for job_id, state, attempts, parent, key, error, started, finished in rows:
            db.session.execute(
                insert,
                {
                    "id": job_id,
                    "state": state,
                    "attempts": attempts,
                    "parent": parent,
                    "key": key,
                    "error_type": error,
                    "t": T0,
                    "started": started,
                    "finished": finished,
                },
            )
        db.session.commit()

        upgrade(revision="head")

        jobs = {
            row.id: row
            for row in db.session.execute(
                text(
                    "SELECT id, state, attempts, max_attempts, parent_id, api_key_id, "
                    "lease_expires_at, published_at, finished_at FROM jobs"
                )
            )
        }
        attempts = {
            (row.job_id, row.number): row
            for row in db.session.execute(
                text("SELECT job_id, number, worker, outcome, error_type FROM job_attempts")
            )
        }
    assert jobs["child"].parent_id == "parent"  # kept through SQLite's table copy
    assert (jobs["orphan"].parent_id, jobs["orphan"].api_key_id) == (None, None)
    assert jobs["orphan"].published_at is None  # queued: the relay publishes it
    assert jobs["parent"].published_at is not None
    assert jobs["running"].lease_expires_at is not None
    assert jobs["failed-no-time"].finished_at is not None
    assert jobs["failed-no-time"].max_attempts == 5 and jobs["parent"].max_attempts == 4
    assert set(attempts) == {("parent", 1), ("child", 1), ("running", 1), ("failed-no-time", 5)}
    assert attempts[("running", 1)].outcome is None
    assert attempts[("failed-no-time", 5)].outcome == "failed"
    assert attempts[("failed-no-time", 5)].error_type == "ValueError"
    assert attempts[("parent", 1)].worker == "w@h"
