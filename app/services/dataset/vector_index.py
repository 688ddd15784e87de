"""Nearest segments to a query vector: sqlite-vec on SQLite, a cached numpy matrix elsewhere.

Vectors are stored once, as float32 bytes in `dataset_segments.vector`; nothing is
decoded from JSON at query time.

SQLite: one sqlite-vec `vec0` table per vector dimension (`dataset_vectors_<n>`,
partitioned by dataset), filled and emptied by triggers on `dataset_segments`, so the
index changes in the very transaction that changes the segments (a swap, a purge, a
cascade from a deleted dataset) and can never hold a stale entry. The table and its
triggers are made when the first vector of that dimension is stored (`prepare`).

PostgreSQL: each process keeps a dataset's vectors as one matrix and ranks by a single
matrix product. The matrix is tagged with `datasets.index_version`, which every change
to the dataset's searchable segments bumps in its own transaction; a query that reads a
newer version reloads, so every process (API, workers) sees committed changes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy import text

from app.extensions.ext_database import db
from app.models.dataset import Dataset

# vec0 answers at most this many neighbours per query.
SQLITE_MAX_K = 4096
# Datasets whose matrix a process keeps (each is segments x dimensions x 4 bytes).
CACHED_DATASETS = 8


def pack(vector: Sequence[float]) -> bytes:
    """The stored form of a vector: little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack(data: bytes) -> npt.NDArray[np.float32]:
    return np.frombuffer(data, dtype="<f4")


def _table(dimensions: int) -> str:
    return f"dataset_vectors_{int(dimensions)}"


def _is_sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def prepare(dimensions: int) -> None:
    """Make sure vectors of `dimensions` get indexed; call in the transaction that stores them.

    A no-op except on SQLite, where it creates the dimension's vec0 table and the
    triggers that keep it in step with `dataset_segments`.
    """
    if not _is_sqlite():
        return
    table, size = _table(dimensions), int(dimensions) * 4
    for statement in (
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
        f"dataset_id text partition key, embedding float[{int(dimensions)}] "
        "distance_metric=cosine)",
        f"CREATE TRIGGER IF NOT EXISTS {table}_insert AFTER INSERT ON dataset_segments "
        f"WHEN length(new.vector) = {size} BEGIN "
        f"INSERT INTO {table}(rowid, dataset_id, embedding) "
        "VALUES (new.id, new.dataset_id, new.vector); END",
        f"CREATE TRIGGER IF NOT EXISTS {table}_delete AFTER DELETE ON dataset_segments "
        f"WHEN length(old.vector) = {size} BEGIN "
        f"DELETE FROM {table} WHERE rowid = old.id; END",
    ):
        db.session.execute(text(statement))


def search(dataset_id: str, query: Sequence[float], limit: int) -> list[tuple[int, float]]:
    """(segment id, cosine similarity) of the `limit` nearest segments, nearest first."""
    if limit <= 0 or not query:
        return []
    wanted = np.asarray(query, dtype=np.float32)
    if _is_sqlite():
        return _sqlite_search(dataset_id, wanted, limit)
    return _matrix_search(dataset_id, wanted, limit)


def _hidden(dataset_id: str) -> set[int]:
    """Segments of documents being removed: still stored, no longer searchable."""
    rows = db.session.execute(
        text(
            "SELECT s.id FROM dataset_documents AS d "
            "JOIN dataset_segments AS s ON s.document_id = d.id "
            "WHERE d.dataset_id = :dataset AND d.removing"
        ),
        {"dataset": dataset_id},
    )
    return {int(row[0]) for row in rows}


def _sqlite_search(
    dataset_id: str, wanted: npt.NDArray[np.float32], limit: int
) -> list[tuple[int, float]]:
    table = _table(len(wanted))
    exists = db.session.execute(
        text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": table},
    ).first()
    if exists is None:
        return []
    hidden = _hidden(dataset_id)
    rows = db.session.execute(
        text(
            f"SELECT rowid, distance FROM {table} WHERE embedding MATCH :query "
            "AND k = :k AND dataset_id = :dataset ORDER BY distance"
        ),
        {
            "query": wanted.astype("<f4").tobytes(),
            "k": min(limit + len(hidden), SQLITE_MAX_K),
            "dataset": dataset_id,
        },
    )
    found = [(int(key), 1.0 - float(distance)) for key, distance in rows if key not in hidden]
    return found[:limit]


@dataclass(frozen=True)
class _Matrix:
    version: int
    ids: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]


_cache: OrderedDict[tuple[str, int], _Matrix] = OrderedDict()
_lock = threading.Lock()


def _load(dataset_id: str, dimensions: int, version: int) -> _Matrix:
    rows = db.session.execute(
        text(
            "SELECT s.id, s.vector FROM dataset_segments AS s "
            "JOIN dataset_documents AS d ON d.id = s.document_id "
            "WHERE s.dataset_id = :dataset AND NOT d.removing "
            "AND octet_length(s.vector) = :size ORDER BY s.id"
        ),
        {"dataset": dataset_id, "size": dimensions * 4},
    ).all()
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    packed = b"".join(bytes(row[1]) for row in rows)
    vectors = np.frombuffer(packed, dtype="<f4").reshape(len(rows), dimensions)
    return _Matrix(version=version, ids=ids, vectors=vectors.astype(np.float32, copy=False))


def matrix(dataset_id: str, dimensions: int) -> _Matrix:
    """The dataset's current vectors of `dimensions`, loaded only when its version moved."""
    # The version is read before the rows: rows newer than it only cause a spare reload.
    version = db.session.scalar(select(Dataset.index_version).where(Dataset.id == dataset_id))
    key = (dataset_id, dimensions)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached.version == version:
            _cache.move_to_end(key)
            return cached
    loaded = _load(dataset_id, dimensions, int(version or 0))
    with _lock:
        _cache[key] = loaded
        _cache.move_to_end(key)
        while len(_cache) > CACHED_DATASETS:
            _cache.popitem(last=False)
    return loaded


def _matrix_search(
    dataset_id: str, wanted: npt.NDArray[np.float32], limit: int
) -> list[tuple[int, float]]:
    current = matrix(dataset_id, len(wanted))
    if not len(current.ids):
        return []
    scores = current.vectors @ wanted
    if len(scores) > limit:
        best = np.argpartition(-scores, limit - 1)[:limit]
    else:
        best = np.arange(len(scores))
    # Ties broken by id, as keyword results are, so a ranking is reproducible.
    order = best[np.lexsort((current.ids[best], -scores[best]))]
    return [(int(current.ids[i]), float(scores[i])) for i in order]
