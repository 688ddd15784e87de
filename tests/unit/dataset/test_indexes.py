"""The keyword and vector indexes on both real back ends: SQLite (FTS5) and PostgreSQL
(tsvector + GIN), the numpy matrix on both, written by the same swap ingestion uses.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text

from app import create_app
from app.extensions.ext_database import db
from app.models.base import utcnow
from app.models.dataset import Document
from app.services.dataset import datasets
from app.services.dataset import documents
from app.services.dataset import keyword_index
from app.services.dataset import segments
from app.services.dataset import vector_index
from app.services.dataset.keywords import terms
from tests.conftest import make_settings
from tests.fixtures.dataset.embedding_server import embed

TEXTS = [
    "The white whale swam in the cold sea, and the whale was hunted.",
    "A rabbit ran into a hole in the garden behind the house.",
    "Ships sail the sea every day; sailors mend the sails.",
    "The kraken rose from the deep sea and the sailors fled.",
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(
    request: pytest.FixtureRequest, app: Flask, base_settings: dict[str, Any], tmp_path_factory: Any
) -> Iterator[Flask]:
    """An app on each back end: the session's PostgreSQL app, and one on a SQLite file."""
    if request.param == "postgresql":
        if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
            pytest.skip("the session database is SQLite (TASKLANE_TEST_EMBEDDED=1)")
        yield app
        return
    path: Path = tmp_path_factory.mktemp("indexes") / "indexes.db"
    lite = create_app(make_settings(base_settings, DATABASE_URL=f"sqlite:///{path}"))
    with lite.app_context():
        upgrade()
    yield lite
    with lite.app_context():
        db.engine.dispose()


@pytest.fixture
def ctx(backend: Flask) -> Iterator[None]:
    with backend.app_context():
        yield
        db.session.rollback()


def add_document(dataset_id: str, texts: list[str], *, vectors: bool = True) -> str:
    doc = Document(
        dataset_id=dataset_id,
        name=hashlib.md5(texts[0].encode()).hexdigest()[:8] + ".txt",
        file_type="txt",
        size=1,
        checksum="0" * 64,
        completed_at=utcnow(),
    )
    db.session.add(doc)
    db.session.flush()
    swap(dataset_id, doc.id, texts, vectors=vectors)
    return doc.id


def swap(dataset_id: str, document_id: str, texts: list[str], *, vectors: bool = True) -> None:
    rows = [segments.index_row(t, unit(embed(t)) if vectors else None) for t in texts]
    segments.replace(dataset_id, document_id, rows)
    db.session.commit()


def unit(vector: list[float]) -> list[float]:
    norm = sum(x * x for x in vector) ** 0.5 or 1.0
    return [x / norm for x in vector]


def keyword(dataset_id: str, query: str, limit: int = 10) -> list[int]:
    return [key for key, _ in keyword_index.search(dataset_id, terms(query), limit)]


def vector(dataset_id: str, query: str, limit: int = 10) -> list[int]:
    return [key for key, _ in vector_index.search(dataset_id, unit(embed(query)), limit)]


def ids_of(dataset_id: str) -> dict[str, int]:
    rows = db.session.execute(
        text("SELECT id, text FROM dataset_segments WHERE dataset_id = :d"), {"d": dataset_id}
    )
    return {row[1]: row[0] for row in rows}


def test_keyword_search_stems_ranks_and_stays_in_its_dataset(ctx: None) -> None:
    mine = datasets.create(name="keywords").id
    other = datasets.create(name="other").id
    add_document(mine, TEXTS)
    add_document(other, ["A whale of another dataset, hunting whales."])
    ids = ids_of(mine)
    # "whales hunting" stems to the terms of "whale ... hunted".
    assert keyword(mine, "whales hunting") == [ids[TEXTS[0]]]
    # The rare term outranks the common one: the kraken segment comes first.
    ranked = keyword(mine, "sea kraken")
    assert ranked[0] == ids[TEXTS[3]]
    assert set(ranked) == {ids[TEXTS[0]], ids[TEXTS[2]], ids[TEXTS[3]]}
    assert keyword(mine, "zeppelin") == []
    # An FTS5 operator word is just a term.
    assert keyword(mine, "NEAR OR") == []
    datasets.remove(mine)
    datasets.remove(other)


def test_a_dataset_crowded_out_of_the_databases_best_matches_still_gets_its_own(
    ctx: None,
) -> None:
    # Another dataset's segments take the database's best matches for the term, more of
    # them than the first cut of the SQLite search keeps: the search must look further.
    crowd = datasets.create(name="crowd").id
    mine = datasets.create(name="crowded").id
    many = keyword_index.SQLITE_DEPTH_FACTOR * 3 + 1
    add_document(crowd, [f"Narwhal narwhal {n}." for n in range(many)])
    add_document(mine, ["A long tale of ships, sails, ropes, a harbour and one narwhal."])
    [own] = ids_of(mine).values()
    assert keyword(mine, "narwhal", limit=1) == [own]
    assert keyword(mine, "narwhal", limit=3) == [own]
    assert len(keyword(crowd, "narwhal", limit=3)) == 3
    datasets.remove(mine)
    datasets.remove(crowd)


def plain_ranking(dataset_id: str, query: str, limit: int) -> list[tuple[int, float]]:
    """The back end's one-statement ranking of every match: what `search` must equal."""
    unique = sorted(set(terms(query)))
    params: dict[str, object] = {"dataset": dataset_id, "limit": limit}
    if db.session.get_bind().dialect.name == "postgresql":
        match = " | ".join(unique)
        return keyword_index._rows(
            keyword_index._PG_RANK, {**params, "match": match, "candidates": match}
        )
    match = " OR ".join(f'"{term}"' for term in unique)
    return keyword_index._rows(keyword_index._SQLITE_ALL, {**params, "match": match})


def test_keyword_search_ranks_exactly_as_ranking_every_match(ctx: None) -> None:
    # Segments of 1 to 150 words, each with 0-4 of the query vocabulary among made-up
    # words: short one-term segments that outrank long multi-term ones included, which a
    # search ranking only the multi-term matches (PostgreSQL's first step) would miss.
    rng = random.Random(10)
    letters = "bcdfghjklmnpqrstvwxz"
    made_up = ["".join(rng.choices(letters, k=rng.randint(5, 8))) for _ in range(300)]
    vocabulary = ["".join(rng.choices(letters, k=6)) + "o" for _ in range(12)]
    mine = datasets.create(name="exact").id
    texts = []
    for _ in range(400):
        words = rng.choices(made_up, k=rng.choice([1, 2, 3, 8, 40, 150]))
        for _ in range(rng.choice([0, 1, 1, 2, 3, 4])):
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
        texts.append(" ".join(words) + ".")
    add_document(mine, texts, vectors=False)
    checked = 0
    for _ in range(150):
        query = " ".join(rng.sample(vocabulary, rng.randint(1, 6)))
        limit = rng.choice([1, 3, 10, 25])
        expected = plain_ranking(mine, query, limit)
        assert keyword_index.search(mine, terms(query), limit) == expected, (query, limit)
        checked += len(expected)
    assert checked > 1000
    datasets.remove(mine)


def test_vector_search_ranks_by_cosine_and_follows_every_change(ctx: None) -> None:
    mine = datasets.create(name="vectors").id
    doc_id = add_document(mine, TEXTS)
    ids = ids_of(mine)
    found = vector_index.search(mine, unit(embed("rabbit hole in the garden")), 2)
    assert found[0][0] == ids[TEXTS[1]]
    assert found[0][1] > found[1][1] and found[0][1] <= 1.0 + 1e-6
    # A reindex swaps the vectors in one transaction: old ids gone, the new text found.
    swap(mine, doc_id, ["A lighthouse keeper trims the lamp in the fog."])
    [(new_id, score)] = vector_index.search(mine, unit(embed("lighthouse lamp fog")), 5)
    assert new_id not in ids.values() and score > 0.5
    # A document being removed is hidden at once, before its segments are purged.
    orchard = "The orchard apples went to the cider press."
    add_document(mine, [orchard])
    assert vector(mine, "orchard cider apples")[0] == ids_of(mine)[orchard]
    _hide(mine, doc_id)
    assert new_id not in vector(mine, "lighthouse lamp fog")
    assert new_id not in keyword(mine, "lighthouse lamp fog")
    assert vector(mine, "orchard cider apples")[0] == ids_of(mine)[orchard]
    datasets.remove(mine)


def _hide(dataset_id: str, document_id: str) -> None:
    """What documents.remove commits (it also queues the purge job, not wanted here)."""
    doc = db.session.get_one(Document, document_id)
    doc.removing = True
    datasets.bump_index_version(dataset_id)
    db.session.commit()


def test_purge_and_dataset_delete_leave_no_index_entry(ctx: None) -> None:
    mine = datasets.create(name="purge").id
    doc_id = add_document(mine, TEXTS)
    add_document(mine, ["Plain words without vectors about a whale."], vectors=False)
    documents.purge(doc_id)
    assert keyword(mine, "kraken") == []
    assert vector(mine, "kraken deep sea sailors") == []
    assert keyword(mine, "whale") != []
    datasets.remove(mine)
    if db.session.get_bind().dialect.name == "sqlite":
        # The module's own SQLite file: the FTS5 table follows the cascade. (On
        # PostgreSQL the tsvector is a column of the row; on both the vector matrix is
        # read from the rows, so there is nothing separate to leave behind.)
        fts = db.session.scalar(text("SELECT count(*) FROM dataset_segments_fts_docsize"))
        assert fts == 0
