"""Migration j1 drops the sqlite-vec tables of an older SQLite database, vectors kept.

After it, the app's connections (which no longer load sqlite-vec) must still write and
delete segments: a vec0 trigger left behind would fail every swap with "no such module".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.extensions.ext_database import db
from app.services.dataset import segments
from app.services.dataset import vector_index
from tests.conftest import make_settings
from tests.unit.dataset.test_migration_g1 import VECTOR
from tests.unit.dataset.test_migration_g1 import database_before_g1

VEC0_OBJECTS = "SELECT count(*) FROM sqlite_master WHERE name LIKE 'dataset_vectors_%'"


def test_the_vec0_tables_go_the_vectors_stay_and_swaps_still_work(
    base_settings: dict[str, Any], tmp_path: Path
) -> None:
    app = create_app(make_settings(base_settings, DATABASE_URL=f"sqlite:///{tmp_path}/j1.db"))
    with app.app_context():
        # A database from before g1 with one stored vector: g1 indexes it in a vec0
        # table (and its shadow tables) with two triggers, as the app then did.
        database_before_g1()
        upgrade(revision="i2_generation_state")
        assert db.session.scalar(text(VEC0_OBJECTS)) > 0
        db.session.remove()

        upgrade()
        assert db.session.scalar(text(VEC0_OBJECTS)) == 0
        [(old_id, similarity)] = vector_index.search("d", VECTOR, 5)
        assert similarity > 0.999
        # A swap through a plain app connection: no trigger needs the vec0 module, and
        # the matrix follows the swap (its index version moved with it).
        segments.replace("d", "doc", [segments.index_row("The lighthouse lamp", VECTOR)])
        db.session.commit()
        [new_id] = db.session.scalars(text("SELECT id FROM dataset_segments")).all()
        assert new_id != old_id
        [(found, similarity)] = vector_index.search("d", VECTOR, 5)
        assert (found, similarity > 0.999) == (new_id, True)
        db.session.remove()
        db.engine.dispose()
