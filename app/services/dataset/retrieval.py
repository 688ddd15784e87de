"""Rank a dataset's segments for a query: keywords, vectors, or both fused by rank (hybrid).

Keyword search runs in the database's full-text index (keyword_index), vector search in
the vector index (vector_index); hybrid fuses their two candidate lists by reciprocal
rank (fusion). Only the `top_k` winners are then read from `dataset_segments`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.extensions.ext_database import db
from app.models.dataset import Document
from app.models.dataset import Segment
from app.services.dataset import datasets
from app.services.dataset import keyword_index
from app.services.dataset import vector_index
from app.services.dataset.embeddings import configured_client
from app.services.dataset.errors import NoIndexableTerms
from app.services.dataset.errors import RetrievalUnavailable
from app.services.dataset.fusion import reciprocal_rank_fusion
from app.services.dataset.keywords import terms
from config import current_settings

MODES = ("keyword", "vector", "hybrid")


def query_terms(query: str, *, required: bool) -> list[str]:
    """The query's indexable terms; with `required`, none is a 422 that says why."""
    found = terms(query)
    if required and not found:
        raise NoIndexableTerms(
            f"the query {query[:80]!r} has no indexable term: every word is a stop word or "
            "a single character; add a content word, or use mode 'vector'"
        )
    return found


def _query_vector(query: str) -> list[float]:
    client = configured_client()
    if client is None:
        raise RetrievalUnavailable(
            "vector and hybrid retrieval need an embedding provider (set EMBEDDING_BASE_URL); "
            "use mode 'keyword'"
        )
    [wanted] = client.embed([query])
    return wanted


def rank(dataset_id: str, query: str, *, top_k: int, mode: str) -> list[tuple[int, float]]:
    """(segment id, score) of the best `top_k` segments, best first."""
    if mode == "keyword":
        return keyword_index.search(dataset_id, query_terms(query, required=True), top_k)
    if mode == "vector":
        return vector_index.search(dataset_id, _query_vector(query), top_k)
    settings = current_settings()
    depth = max(top_k, settings.dataset.fusion_candidates)
    vector = vector_index.search(dataset_id, _query_vector(query), depth)
    # A query of stop words only still has a vector ranking; fusion uses what there is.
    keyword = keyword_index.search(dataset_id, query_terms(query, required=False), depth)
    return reciprocal_rank_fusion(
        [[key for key, _ in keyword], [key for key, _ in vector]],
        k=settings.dataset.rrf_k,
        limit=top_k,
    )


def retrieve(dataset_id: str, query: str, *, top_k: int, mode: str) -> list[dict[str, Any]]:
    """The best `top_k` segments for `query`, best first, with their document."""
    datasets.get(dataset_id)
    best = rank(dataset_id, query, top_k=top_k, mode=mode)
    if not best:
        return []
    found = db.session.execute(
        select(Segment.id, Segment.document_id, Segment.position, Segment.text, Document.name)
        .join(Document, Document.id == Segment.document_id)
        .where(Segment.id.in_([key for key, _score in best]))
    ).all()
    by_id = {row.id: row for row in found}
    return [
        {
            "segment_id": key,
            "score": round(score, 6),
            "document_id": by_id[key].document_id,
            "document_name": by_id[key].name,
            "position": by_id[key].position,
            "text": by_id[key].text,
        }
        for key, score in best
        if key in by_id
    ]
