"""Nearest segments to a query vector: a per-process numpy matrix of the dataset's vectors.

Vectors are stored once, as float32 bytes in `dataset_segments.vector`; nothing is
decoded from JSON at query time. Each process keeps a dataset's vectors as one matrix
and ranks by a single matrix product. The matrix is tagged with
`datasets.index_version`, which every change to the dataset's searchable segments bumps
in its own transaction; a query that reads a newer version reloads, so every process
(API, workers) sees committed changes and never a half-swapped document.

Why not sqlite-vec on SQLite (what this module used until migration j1): its `vec0`
scan (0.1.9, exhaustive) took 87 ms for 250k 256-dimension vectors
in process (67 ms with L2 over unit vectors) where this matrix product takes 8.8 ms;
through the API that was 11.6 ms at 25k and 88.6 ms at 250k segments (7.6x, issue 15
asks <= 5x). Its approximate index (0.1.10 alphas) refuses the partition key that kept
datasets apart. The matrix is exact, the same on both back ends, and memory-bound.
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

# Datasets whose matrix a process keeps (each is segments x dimensions x 4 bytes).
CACHED_DATASETS = 8


def pack(vector: Sequence[float]) -> bytes:
    """The stored form of a vector: little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def unpack(data: bytes) -> npt.NDArray[np.float32]:
    return np.frombuffer(data, dtype="<f4")


def search(dataset_id: str, query: Sequence[float], limit: int) -> list[tuple[int, float]]:
    """(segment id, cosine similarity) of the `limit` nearest segments, nearest first."""
    if limit <= 0 or not query:
        return []
    return _matrix_search(dataset_id, np.asarray(query, dtype=np.float32), limit)


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
            "AND length(s.vector) = :size ORDER BY s.id"
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
