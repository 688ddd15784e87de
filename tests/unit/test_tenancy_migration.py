"""t1_projects carries a database in use into the default project, keys and rows alike."""

from __future__ import annotations

import json
import os
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from app import create_app
from app.extensions.ext_database import db
from app.services import api_keys
from app.services import tenancy
from tests.conftest import make_settings
from tests.support import services

TOKEN = "tl_" + "m" * 43
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="needs a fresh database of its own"
)
def test_existing_keys_jobs_and_datasets_move_into_the_default_project(
    base_settings: dict[str, Any], tmp_path: Path
) -> None:
    # A second fresh database of the session's kind (PostgreSQL or SQLite).
    with services.database(tmp_path) as url:
        app = create_app(make_settings(base_settings, DATABASE_URL=url))
        with app.app_context():
            upgrade(revision="e1_notify_to")
            with db.engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO api_keys (name, prefix, key_hash, created_at) "
                        "VALUES ('old', :prefix, :hash, :now)"
                    ),
                    {"prefix": TOKEN[:10], "hash": api_keys.digest(TOKEN), "now": NOW},
                )
                key_id = conn.scalar(sa.text("SELECT id FROM api_keys"))
                conn.execute(
                    sa.text(
                        "INSERT INTO jobs (id, task, queue, state, args, attempts, api_key_id,"
                        " created_at, updated_at) VALUES ('job-1', 'tests.echo', 'dataset',"
                        " 'succeeded', '{}', 1, :key, :now, :now)"
                    ),
                    {"key": key_id, "now": NOW},
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO datasets (id, name, chunk_size, chunk_overlap,"
                        " embeddings_enabled, created_at, updated_at)"
                        " VALUES ('ds-1', 'old docs', 1000, 100, true, :now, :now)"
                    ),
                    {"now": NOW},
                )

            upgrade()

            with db.engine.connect() as conn:
                default = conn.scalar(sa.text("SELECT id FROM projects WHERE name = 'default'"))
                key = conn.execute(sa.text("SELECT project_id, scopes FROM api_keys")).one()
                job_project = conn.scalar(sa.text("SELECT project_id FROM jobs"))
                dataset_project = conn.scalar(sa.text("SELECT project_id FROM datasets"))
            assert default is not None
            assert key.project_id == job_project == dataset_project == default
            # PostgreSQL hands JSON back decoded, SQLite as text.
            scopes = json.loads(key.scopes) if isinstance(key.scopes, str) else key.scopes
            assert scopes == list(tenancy.DEFAULT_SCOPES)

        # The old key still works and still sees the old rows.
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/v1/jobs/job-1", headers=headers).status_code == 200
        assert client.get("/api/v1/datasets/ds-1", headers=headers).status_code == 200
        listed = client.get("/api/v1/jobs", headers=headers).get_json()["items"]
        assert [job["id"] for job in listed] == ["job-1"]
        with app.app_context():
            db.engine.dispose()
            app.extensions["ledger_engine"].dispose()
