"""The retrieval benchmark's data: a labelled set from the test corpus, and filler around it.

Each sentence of the public-domain texts in tests/fixtures/dataset/corpus becomes a segment,
and each query is a few of its words (every other one with an unrelated word added), whose
right answer is that sentence. Filler segments are Zipf-distributed made-up words mixed
with the corpus's own. Rows are written with the functions ingestion uses.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from bs4 import BeautifulSoup

from app.extensions.ext_database import db
from app.models.base import utcnow
from app.models.dataset import Document
from app.services.dataset import segments
from app.services.dataset.keywords import STOP_WORDS
from tests.fixtures.dataset import embedding_server as deterministic

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "dataset" / "corpus"
WORDS = re.compile(r"[A-Za-z][A-Za-z'-]+")


@dataclass(frozen=True)
class Labelled:
    passages: list[str]  # one segment each
    queries: list[tuple[str, int]]  # (query, index of the passage that answers it)
    vocabulary: list[str]  # the corpus's content words


def labelled_set(count: int, rng: random.Random) -> Labelled:
    passages: list[str] = []
    for path in sorted(CORPUS.iterdir()):
        if path.suffix == ".csv":
            continue
        raw = path.read_text(encoding="utf-8")
        plain = BeautifulSoup(raw, "html.parser").get_text(" ") if path.suffix == ".html" else raw
        plain = re.sub(r"[#*_]+", " ", plain)
        for sentence in re.split(r"(?<=[.!?;:])\s+", " ".join(plain.split())):
            if len(content_words(sentence)) >= 5:
                passages.append(sentence)
    vocabulary = sorted({w for p in passages for w in content_words(p)})
    queries: list[tuple[str, int]] = []
    while len(queries) < count:
        for index, passage in enumerate(passages):
            words = sorted(set(content_words(passage)))
            picked = rng.sample(words, min(4, len(words)))
            if len(queries) % 2:
                # A reader's word the passage does not contain.
                picked = picked[:3] + [rng.choice(vocabulary)]
            queries.append((" ".join(picked), index))
    return Labelled(passages, queries[:count], vocabulary)


def content_words(text: str) -> list[str]:
    return [w.lower() for w in WORDS.findall(text) if len(w) > 3 and w.lower() not in STOP_WORDS]


class Filler:
    """Segments of ~100-160 words: Zipf made-up words, 1 in 20 a word of the corpus.

    The corpus has some 450 content words, so each is in ~1.5% of filler segments: as
    common as a frequent English word (a real query's words are mostly rarer).
    """

    def __init__(self, vocabulary: list[str], rng: random.Random) -> None:
        self.rng = rng
        self.made_up = [
            "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10)))
            for _ in range(20_000)
        ]
        weights = np.cumsum([1 / rank for rank in range(1, len(self.made_up) + 1)])
        self.cumulative = list(weights)
        self.real = vocabulary

    def segment(self) -> str:
        count = self.rng.randint(100, 160)
        words = self.rng.choices(self.made_up, cum_weights=self.cumulative, k=count)
        for i in self.rng.sample(range(count), count // 20):
            words[i] = self.rng.choice(self.real)
        return " ".join(words).capitalize() + "."


@cache
def _slot(word: str) -> int:
    stem = word.rstrip("s")
    return int(hashlib.md5(stem.encode()).hexdigest(), 16) % deterministic.DIMENSIONS


def local_vectors(texts: list[str]) -> list[list[float]]:
    """What the deterministic server answers (then normalised, as the client does)."""
    out = []
    for passage in texts:
        counts = np.bincount(
            [_slot(w) for w in deterministic.WORD.findall(passage.lower())],
            minlength=deterministic.DIMENSIONS,
        ).astype(np.float64)
        out.append((counts / (np.linalg.norm(counts) or 1.0)).tolist())
    return out


def add_document(dataset_id: str, name: str, texts: list[str], embed: Any) -> str:
    doc = Document(
        dataset_id=dataset_id,
        name=name,
        file_type="txt",
        size=sum(len(t) for t in texts),
        checksum="0" * 64,
        completed_at=utcnow(),
        segment_count=len(texts),
    )
    db.session.add(doc)
    db.session.flush()
    vectors = embed(texts)
    rows = [segments.index_row(t, v) for t, v in zip(texts, vectors, strict=True)]
    segments.replace(dataset_id, doc.id, rows)
    db.session.commit()
    return doc.id
