"""Keyword search in the database's own full-text index: one call, two back ends.

SQLite: an FTS5 table over `dataset_segments.search_text` (kept by triggers, migration
g1), ranked by FTS5's `bm25()`. PostgreSQL: a generated `tsvector` column with a GIN
index, ranked by `ts_rank`. Both index the pre-stemmed terms with a tokeniser that
only splits words (unicode61, 'simple'), so stemming is the same on both. Documents
being removed are hidden here, as everywhere in retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import TextClause
from sqlalchemy import text

from app.extensions.ext_database import db

# The full-text match runs first, materialised: left to itself the planner walks the
# dataset's segments and runs the MATCH once per row (seconds, not milliseconds), and
# CROSS JOIN (SQLite keeps its order) makes the matches drive the join. Each match is
# checked against the dataset in the (dataset_id, rowid) index alone, never in the wide
# segment rows, and documents being removed (few and short-lived) are read once as a
# list of their segments.
#
# The match keeps only the database's best :depth by (rank, rowid), the order the outer
# query sorts by: when at least :limit of them are the dataset's and searchable, they are
# exactly its best :limit (every better match is among the kept). At 250k segments a
# query matches ~15k of them, and checking all of those against the dataset cost more
# than ranking them: in-process, the bench's 120 queries, top 50, p50 19.2 -> 9.4 ms at
# 250k and 2.0 -> 1.5 ms at 25k, the same answers. When fewer survive (other datasets'
# segments crowd the top), `search` asks again with no cut (`_SQLITE_ALL`).
_SQLITE_HITS = """
    WITH hits AS MATERIALIZED (
        SELECT rowid AS id, rank FROM dataset_segments_fts
        WHERE dataset_segments_fts MATCH :match ORDER BY rank, rowid {cut}
    )
    SELECT s.id, -hits.rank AS score
    FROM hits
    CROSS JOIN dataset_segments AS s INDEXED BY ix_dataset_segments_dataset_id
        ON s.id = hits.id AND s.dataset_id = :dataset
    WHERE hits.id NOT IN (
        SELECT r.id FROM dataset_documents AS d
        JOIN dataset_segments AS r ON r.document_id = d.id
        WHERE d.dataset_id = :dataset AND d.removing
    )
    ORDER BY hits.rank, s.id
    LIMIT :limit
"""
_SQLITE_TOP = text(_SQLITE_HITS.format(cut="LIMIT :depth"))
_SQLITE_ALL = text(_SQLITE_HITS.format(cut=""))
# Matches kept per wanted result before the dataset check (see above).
SQLITE_DEPTH_FACTOR = 4
# Normalisation 1 divides by 1 + log(length): without it long segments win on volume.
# ts_rank (term frequencies) rather than ts_rank_cd (cover density, which walks every
# position of every matched term): on the retrieval bench's 120 labelled queries, in
# process, at 250k segments ts_rank put the answer first for 99.2% (ts_rank_cd, over
# ts_rank's best 200, 98.3%) in 46 ms p50 against 57, and hybrid hit@3 rose from 0.99 to
# 1.00 (the query lost was a long sentence whose query words stand far apart, which cover
# density put third); at 25k both 99.2%, 4.2 ms against 5.0. With OR semantics a common
# term matches thousands of segments: the cost is the match (the heap rows) and one
# ts_rank per match.
# Documents being removed are few and short-lived: their ids are read once (an InitPlan)
# rather than joined per matched row, which cost ~2 ms of ~14 at 25k segments.
_POSTGRES = text(
    """
    SELECT s.id, ts_rank(s.search_vector, q, 1) AS score
    FROM dataset_segments AS s, to_tsquery('simple', :match) AS q
    WHERE s.search_vector @@ q AND s.dataset_id = :dataset
      AND s.document_id <> ALL (ARRAY(
          SELECT id FROM dataset_documents WHERE dataset_id = :dataset AND removing
      ))
    ORDER BY score DESC, s.id
    LIMIT :limit
    """
)


def search(dataset_id: str, query_terms: Sequence[str], limit: int) -> list[tuple[int, float]]:
    """(segment id, score) of the best `limit` segments with any of the terms, best first.

    `query_terms` come from `keywords.terms`: letters and digits only, so they need no
    escaping in either query language. Repeated terms count once.
    """
    unique = sorted(set(query_terms))
    if not unique or limit <= 0:
        return []
    params = {"dataset": dataset_id, "limit": limit}
    if db.session.get_bind().dialect.name == "postgresql":
        return _rows(_POSTGRES, {**params, "match": " | ".join(unique)})
    # Quoted: a term such as "and" or "near" would otherwise be an FTS5 operator.
    params["match"] = " OR ".join(f'"{term}"' for term in unique)
    depth = limit * SQLITE_DEPTH_FACTOR
    found = _rows(_SQLITE_TOP, {**params, "depth": depth})
    if len(found) < limit:
        found = _rows(_SQLITE_ALL, params)
    return found


def _rows(statement: TextClause, params: dict[str, object]) -> list[tuple[int, float]]:
    rows = db.session.execute(statement, params)
    return [(int(segment_id), float(score)) for segment_id, score in rows]
