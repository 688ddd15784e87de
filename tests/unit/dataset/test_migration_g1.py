"""Migration g1 carries stored segments into the new indexes and back, on SQLite.

(SQLite is where it rebuilds tables; with foreign keys on, a careless rebuild of a parent
table cascades a delete to every segment.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask_migrate import downgrade
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.extensions.ext_database import db
from app.services.dataset import keyword_index
from app.services.dataset import vector_index
from tests.conftest import make_settings

VECTOR = [0.6, 0.8] + [0.0] * 254
ROWS = [
    (
        "INSERT INTO datasets (id, name, chunk_size, chunk_overlap, embeddings_enabled, "
        "created_at, updated_at) VALUES ('d', 'old', 1000, 100, 1, '2026-01-01', '2026-01-01')"
    ),
    (
        "INSERT INTO dataset_documents (id, dataset_id, name, file_type, size, checksum, "
        "indexing_status, pause_requested, removing, segments_done, created_at, updated_at) "
        "VALUES ('doc', 'd', 'a.txt', 'txt', 1, 'x', 'completed', 0, 0, 0, '2026-01-01', "
        "'2026-01-01')"
    ),
]


def database_before_g1() -> None:
    """Migrate to e1 and store one segment as the app then did: keywords and an embedding
    as JSON (dataset 'd', document 'doc', VECTOR)."""
    upgrade(revision="e1_notify_to")
    for statement in ROWS:
        db.session.execute(text(statement))
    db.session.execute(
        text(
            "INSERT INTO dataset_segments (dataset_id, document_id, position, text, "
            "word_count, keywords, embedding, created_at) VALUES ('d', 'doc', 0, "
            "'The kraken rose', 3, :keywords, :embedding, '2026-01-01')"
        ),
        {"keywords": json.dumps({"kraken": 1, "rose": 1}), "embedding": json.dumps(VECTOR)},
    )
    db.session.commit()
    db.session.remove()


def test_segments_survive_the_upgrade_searchable_and_the_downgrade_intact(
    base_settings: dict[str, Any], tmp_path: Path
) -> None:
    app = create_app(make_settings(base_settings, DATABASE_URL=f"sqlite:///{tmp_path}/g1.db"))
    with app.app_context():
        database_before_g1()
        upgrade()
        [(segment_id, _)] = keyword_index.search("d", ["kraken"], 5)
        [(nearest, similarity)] = vector_index.search("d", VECTOR, 5)
        assert nearest == segment_id and similarity > 0.999
        db.session.remove()
        downgrade(revision="e1_notify_to")
        [(keywords, embedding)] = db.session.execute(
            text("SELECT keywords, embedding FROM dataset_segments")
        ).all()
        assert json.loads(keywords) == {"kraken": 1, "rose": 1}
        assert json.loads(embedding)[:2] == [0.6000000238418579, 0.800000011920929]
        db.session.remove()
        db.engine.dispose()
