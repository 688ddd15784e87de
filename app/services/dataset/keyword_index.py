"""Keyword search in the database's own full-text index: one call, two back ends.

SQLite: an FTS5 table over `dataset_segments.search_text` (kept by triggers, migration
g1), ranked by FTS5's `bm25()`. PostgreSQL: a generated `tsvector` column with a GIN
index, ranked by `ts_rank_cd`. Both index the pre-stemmed terms with a tokeniser that
only splits words (unicode61, 'simple'), so stemming is the same on both. Documents
being removed are hidden here, as everywhere in retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from app.extensions.ext_database import db

# The full-text match runs first, materialised: left to itself the planner walks the
# dataset's segments and runs the MATCH once per row (seconds, not milliseconds), and
# CROSS JOIN (SQLite keeps its order) makes the matches drive the join.
_SQLITE = text(
    """
    WITH hits AS MATERIALIZED (
        SELECT rowid AS id, bm25(dataset_segments_fts) AS rank
        FROM dataset_segments_fts WHERE dataset_segments_fts MATCH :match
    )
    SELECT s.id, -hits.rank AS score
    FROM hits
    CROSS JOIN dataset_segments AS s ON s.id = hits.id
    CROSS JOIN dataset_documents AS d ON d.id = s.document_id
    WHERE s.dataset_id = :dataset AND NOT d.removing
    ORDER BY hits.rank, s.id
    LIMIT :limit
    """
)
# Normalisation 1 divides by 1 + log(length): without it long segments win on volume.
# Two stages, so the costly ranking runs over a bounded set: with OR semantics a common
# term matches thousands of segments, and ts_rank_cd, which walks every position of every
# matched term, was half the statement's time at 25k segments (EXPLAIN ANALYZE). ts_rank
# (frequencies only, the same normalisation, ~1/25 of the cost per row) keeps the best
# :candidates matches; ts_rank_cd orders those. It is an approximation: on the bench's
# queries the top 10 equalled the full ranking's for all 60 tried at ~110k segments and
# for 59% of 120 at 250k (ts_rank and ts_rank_cd disagree below the leaders), and the answer's
# hit@3 stayed 1.00 at both. The cost of the match itself (the heap rows) remains.
# Documents being removed are few and short-lived: their ids are read once (an InitPlan)
# rather than joined per matched row, which cost ~2 ms of ~14 at 25k segments.
_POSTGRES = text(
    """
    WITH candidates AS MATERIALIZED (
        SELECT s.id, s.search_vector, q
        FROM dataset_segments AS s, to_tsquery('simple', :match) AS q
        WHERE s.search_vector @@ q AND s.dataset_id = :dataset
          AND s.document_id <> ALL (ARRAY(
              SELECT id FROM dataset_documents WHERE dataset_id = :dataset AND removing
          ))
        ORDER BY ts_rank(s.search_vector, q, 1) DESC, s.id
        LIMIT :candidates
    )
    SELECT id, ts_rank_cd(search_vector, q, 1) AS score
    FROM candidates
    ORDER BY score DESC, id
    LIMIT :limit
    """
)
# How many ts_rank candidates per wanted result (and at least CANDIDATES_FLOOR): with 100
# candidates for 10 results the top 10 differed from the full ranking on 43% of the
# queries at ~110k segments, with 200 on none.
CANDIDATES_PER_RESULT = 20
CANDIDATES_FLOOR = 200


def search(dataset_id: str, query_terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
    """(segment id, score) of the best `limit` segments with any of the terms, best first.

    `query_terms` come from `keywords.terms`: letters and digits only, so they need no
    escaping in either query language. Repeated terms count once.
    """
    unique = sorted(set(query_terms))
    if not unique or limit <= 0:
        return []
    if db.session.get_bind().dialect.name == "postgresql":
        statement, match = _POSTGRES, " | ".join(unique)
    else:
        # Quoted: a term such as "and" or "near" would otherwise be an FTS5 operator.
        statement, match = _SQLITE, " OR ".join(f'"{term}"' for term in unique)
    candidates = max(limit * CANDIDATES_PER_RESULT, CANDIDATES_FLOOR)
    rows = db.session.execute(
        statement,
        {"match": match, "dataset": dataset_id, "limit": limit, "candidates": candidates},
    )
    return [(int(segment_id), float(score)) for segment_id, score in rows]
