"""Keyword search in the database's own full-text index: one call, two back ends.

SQLite: an FTS5 table over `dataset_segments.search_text` (kept by triggers, migration
g1), ranked by FTS5's `bm25()`. PostgreSQL: a generated `tsvector` column with a GIN
index, ranked by `ts_rank` in two exact steps (`_pg_search`). Both index the pre-stemmed
terms with a tokeniser that only splits words (unicode61, 'simple'), so stemming is the
same on both. Documents being removed are hidden here, as everywhere in retrieval.
"""

from __future__ import annotations

import math
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
# Normalisation 1 divides by log2(1 + length): without it long segments win on volume.
# ts_rank (term frequencies) rather than ts_rank_cd (cover density, which walks every
# position of every matched term): on the retrieval bench's 120 labelled queries, in
# process, at 250k segments ts_rank put the answer first for 99.2% (ts_rank_cd, over
# ts_rank's best 200, 98.3%) in 46 ms p50 against 57, and hybrid hit@3 rose from 0.99 to
# 1.00 (the query lost was a long sentence whose query words stand far apart, which cover
# density put third); at 25k both 99.2%, 4.2 ms against 5.0.
# Documents being removed are few and short-lived: their ids are read once (an InitPlan)
# rather than joined per matched row, which cost ~2 ms of ~14 at 25k segments.
_PG_RANKED = """
    SELECT s.id, ts_rank(s.search_vector, q, 1) AS score,
           numnode(q) AS nodes, length(to_tsvector('simple', :match)) AS lexemes
    FROM dataset_segments AS s, to_tsquery('simple', :match) AS q
    WHERE s.search_vector @@ to_tsquery('simple', :candidates) AND s.dataset_id = :dataset
      {short}
      AND s.document_id <> ALL (ARRAY(
          SELECT id FROM dataset_documents WHERE dataset_id = :dataset AND removing
      ))
    ORDER BY score DESC, s.id
    LIMIT :limit
"""
# Ranks the matches of :candidates by ts_rank against :match (the same, but in step 1).
_PG_RANK = text(_PG_RANKED.format(short=""))
# Served by ix_dataset_segments_search_vector_length (migration k1).
_PG_RANK_SHORT = text(_PG_RANKED.format(short="AND length(s.search_vector) < :short"))

# Why PostgreSQL ranks in two steps. With OR semantics a common term matches thousands of
# segments, and ts_rank must read each one's tsvector from its heap row (~3.5 us a match:
# at 250k segments ~15k matches, 50-100 ms, ten times the 25k figure). Yet almost all of
# them match a single query term, and such a segment scores little: ts_rank gives a term
# with tf positions w * sum(1/j^2, j <= tf) / (pi^2/6) < w, sums over the matched terms,
# divides by the query's n terms and (normalisation 1) by log2(1 + positions). The
# generated column sets no weights, so every position weighs D (w = 0.1). So:
#  1. rank the segments matching at least two terms (the GIN index finds them without
#     the heap; their tsquery is "t1 & (t2 | ... | tn) | t2 & (t3 | ... ) | ...", which
#     GIN evaluates in O(n) per posting, where all pairs would cost O(n^2));
#  2. with T the last score of that best `limit`, a single-term segment with L positions
#     scores < w / (n * log2(1 + L)), below T once L >= 2^(w / (n T)) - 1. Only the
#     shorter ones can place, found by the (dataset, lexeme count) index (the lexeme
#     count is at most the positions, so the cut keeps every candidate);
#  3. the best `limit` of both is exactly ts_rank's best `limit` over all matches.
# In process, the bench's 120 queries, top 10, 3 rounds: at 250k segments 109 -> 8.9 ms
# p50, at 25k 9.6 -> 6.8 ms, the same answers for all 360; random queries of 2-30 terms at
# 250k: faster at every n (n = 30: 1.10 s -> 0.70 s). One term, fewer than `limit`
# multi-term matches, or a bound too loose to help: the one plain statement.
_D_WEIGHT = 0.1
# Kept below T by a margin far above float4 rounding, so the cut only ever keeps more.
_BOUND_MARGIN = 1e-4
# A bound of 2^30 positions and more cuts no segment: the plain query is then cheaper.
_MAX_EXPONENT = 30.0


def _pg_search(params: dict[str, object], unique: list[str], limit: int) -> list[tuple[int, float]]:
    match = " | ".join(unique)
    everything = {**params, "match": match, "candidates": match}
    n = len(unique)
    if n < 2:
        return _rows(_PG_RANK, everything)
    nested = " | ".join(f"{unique[i]} & ({' | '.join(unique[i + 1 :])})" for i in range(n - 1))
    multi = db.session.execute(_PG_RANK, {**params, "match": match, "candidates": nested}).all()
    # The bound needs the query to be n distinct lexemes OR-ed: a term the parser split
    # (more nodes), dropped (fewer) or folded into another (fewer lexemes) would change
    # ts_rank's n, so such a query is ranked plainly.
    plain = multi and (multi[0].nodes != 2 * n - 1 or multi[0].lexemes != n)
    if plain or len(multi) < limit or multi[-1].score <= 0:
        return _rows(_PG_RANK, everything)
    threshold = float(multi[-1].score) * (1 - _BOUND_MARGIN)
    exponent = _D_WEIGHT / (n * threshold)
    if exponent > _MAX_EXPONENT:
        return _rows(_PG_RANK, everything)
    short = math.ceil(2**exponent - 1)
    found = {int(row.id): float(row.score) for row in multi}
    if short > 1:
        found.update(_rows(_PG_RANK_SHORT, {**everything, "short": short}))
    return sorted(found.items(), key=lambda item: (-item[1], item[0]))[:limit]


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
        return _pg_search(params, unique, limit)
    # Quoted: a term such as "and" or "near" would otherwise be an FTS5 operator.
    params["match"] = " OR ".join(f'"{term}"' for term in unique)
    depth = limit * SQLITE_DEPTH_FACTOR
    found = _rows(_SQLITE_TOP, {**params, "depth": depth})
    if len(found) < limit:
        found = _rows(_SQLITE_ALL, params)
    return found


def _rows(statement: TextClause, params: dict[str, object]) -> list[tuple[int, float]]:
    rows = db.session.execute(statement, params)
    return [(int(row[0]), float(row[1])) for row in rows]
