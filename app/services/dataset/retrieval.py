"""Rank a dataset's segments for a query: BM25 keywords, vector cosine, or both (hybrid).

Keyword statistics and candidates come from the database (a substring match on the stored
term counts); only segments sharing a query term are scored in Python. Vectors are unit
length, so cosine similarity is a dot product; that scan is exact.
Hybrid scales each score list to [0, 1] by its best score and averages them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text
from sqlalchemy import case
from sqlalchemy import cast
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models.dataset import Document
from app.models.dataset import Segment
from app.services.dataset import datasets
from app.services.dataset.embeddings import configured_client
from app.services.dataset.errors import RetrievalUnavailable
from app.services.dataset.keywords import terms

MODES = ("keyword", "vector", "hybrid")
K1 = 1.5
B = 0.75


@dataclass(frozen=True)
class Corpus:
    """What BM25 needs to know about all searchable segments, not only the matching ones."""

    size: int
    average_length: float
    frequency: Mapping[str, int]  # term -> segments containing it


def bm25(
    query: list[str], candidates: Mapping[int, tuple[Mapping[str, int], int]], corpus: Corpus
) -> dict[int, float]:
    """Okapi BM25 of each candidate (id -> (term counts, length)) sharing a query term."""
    wanted = Counter(query)
    average = corpus.average_length or 1.0
    scores: dict[int, float] = {}
    for key, (counts, length) in candidates.items():
        score = 0.0
        for term, repeats in wanted.items():
            tf = counts.get(term)
            if not tf:
                continue
            df = corpus.frequency.get(term, 0)
            idf = math.log((corpus.size - df + 0.5) / (df + 0.5) + 1.0)
            norm = tf + K1 * (1 - B + B * length / average)
            score += repeats * idf * tf * (K1 + 1) / norm
        if score > 0:
            scores[key] = score
    return scores


def _searchable(*columns: Any) -> Any:
    return select(*columns).select_from(Segment).join(Document, Document.id == Segment.document_id)


def _in(dataset_id: str) -> tuple[Any, ...]:
    return (Segment.dataset_id == dataset_id, ~Document.removing)


def _has_term(term: str) -> Any:
    # The JSON column stores {"term": count, ...} as json.dumps writes it; matching the
    # quoted key in the database saves loading every segment's keywords for each query.
    key = json.dumps(term).replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return cast(Segment.keywords, Text).like(f"%{key}:%", escape="!")


def _keyword_scores(dataset_id: str, query: str) -> dict[int, float]:
    wanted = terms(query)
    if not wanted:
        return {}
    matches = {term: _has_term(term) for term in sorted(set(wanted))}
    counted = db.session.execute(
        _searchable(
            func.count(),
            func.avg(Segment.word_count),
            *(func.sum(case((match, 1), else_=0)) for match in matches.values()),
        ).where(*_in(dataset_id))
    ).one()
    corpus = Corpus(
        size=int(counted[0]),
        average_length=float(counted[1] or 0.0),
        frequency={term: int(df or 0) for term, df in zip(matches, counted[2:], strict=True)},
    )
    rows = db.session.execute(
        _searchable(Segment.id, Segment.keywords, Segment.word_count).where(
            *_in(dataset_id), or_(*matches.values())
        )
    )
    return bm25(wanted, {row[0]: (row[1], row[2]) for row in rows}, corpus)


def _vector_scores(dataset_id: str, query: str) -> dict[int, float]:
    client = configured_client()
    if client is None:
        raise RetrievalUnavailable(
            "vector and hybrid retrieval need an embedding provider (set EMBEDDING_BASE_URL); "
            "use mode 'keyword'"
        )
    [wanted] = client.embed([query])
    rows = db.session.execute(
        _searchable(Segment.id, Segment.embedding).where(
            *_in(dataset_id), Segment.embedding.is_not(None)
        )
    )
    return {row[0]: sum(a * b for a, b in zip(wanted, row[1], strict=False)) for row in rows}


def _scaled(scores: dict[int, float]) -> dict[int, float]:
    best = max(scores.values(), default=0.0)
    return {key: value / best for key, value in scores.items()} if best > 0 else {}


def retrieve(dataset_id: str, query: str, *, top_k: int, mode: str) -> list[dict[str, Any]]:
    """The best `top_k` segments for `query`, best first, with their document."""
    datasets.get(dataset_id)
    if mode == "keyword":
        scores = _keyword_scores(dataset_id, query)
    elif mode == "vector":
        scores = _vector_scores(dataset_id, query)
    else:
        vector = _scaled(_vector_scores(dataset_id, query))
        keyword = _scaled(_keyword_scores(dataset_id, query))
        scores = {
            key: (keyword.get(key, 0.0) + vector.get(key, 0.0)) / 2
            for key in keyword.keys() | vector.keys()
        }
    best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:top_k]
    if not best:
        return []
    found = db.session.execute(
        select(Segment, Document.name)
        .join(Document, Document.id == Segment.document_id)
        .where(Segment.id.in_([key for key, _score in best]))
    ).all()
    by_id = {segment.id: (segment, name) for segment, name in found}
    return [
        {
            "segment_id": key,
            "score": round(score, 6),
            "document_id": by_id[key][0].document_id,
            "document_name": by_id[key][1],
            "position": by_id[key][0].position,
            "text": by_id[key][0].text,
        }
        for key, score in best
        if key in by_id
    ]
