"""A document's searchable segments: the rows the indexing stage writes, and their swap.

`replace` is the only writer of `dataset_segments`: it deletes the document's previous
segments and inserts the new ones in the caller's transaction. The keyword index (FTS5
triggers, a generated tsvector column) follows the rows inside that transaction, and the
dataset's index version (which the vector index's per-process matrices follow) moves with
it, so no reader ever sees half an index or a stale entry.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice
from typing import Any

from sqlalchemy import delete
from sqlalchemy import insert

from app.extensions.ext_database import db
from app.models.dataset import Segment
from app.services.dataset import datasets
from app.services.dataset import vector_index
from app.services.dataset.cleaning import count_words
from app.services.dataset.keywords import search_text

INSERT_BATCH = 500


def index_row(text: str, vector: list[float] | None) -> dict[str, Any]:
    """What the indexing stage keeps for one segment until the swap (JSON-serialisable)."""
    return {
        "text": text,
        "word_count": count_words(text),
        "search_text": search_text(text),
        "embedding": vector,
    }


def _stored(
    dataset_id: str, document_id: str, position: int, row: dict[str, Any]
) -> dict[str, Any]:
    vector = row["embedding"]
    return {
        "dataset_id": dataset_id,
        "document_id": document_id,
        "position": position,
        "text": row["text"],
        "word_count": row["word_count"],
        "search_text": row["search_text"],
        "vector": vector_index.pack(vector) if vector is not None else None,
    }


def replace(dataset_id: str, document_id: str, rows: Iterable[dict[str, Any]]) -> int:
    """Make `rows` (from `index_row`, in order) the document's segments; the caller commits."""
    db.session.execute(delete(Segment).where(Segment.document_id == document_id))
    stored = (_stored(dataset_id, document_id, position, row) for position, row in enumerate(rows))
    count = 0
    while chunk := list(islice(stored, INSERT_BATCH)):
        db.session.execute(insert(Segment), chunk)
        count += len(chunk)
    datasets.bump_index_version(dataset_id)
    return count
