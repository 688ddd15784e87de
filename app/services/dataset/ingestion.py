"""Run one document through parse → clean → split → index, resumably and idempotently.

Every stage reads the previous stage's artifact from disk and writes its own, streaming,
so no stage holds a copy of a large document in memory. The stage a run has reached is
committed before the stage starts; a redelivered or resumed run starts there again.
Segments reach the index in one transaction that also removes the document's previous
segments: a run killed midway leaves the old index intact, and a repeated run replaces
rather than adds, so no segment is ever stored twice. The keyword and vector indexes
follow the segment rows inside that transaction (a generated column, or triggers), and
the dataset's index version moves with it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import update

from app.extensions.ext_database import db
from app.models.base import utcnow
from app.models.dataset import Dataset
from app.models.dataset import Document
from app.services.dataset import batches
from app.services.dataset import segments
from app.services.dataset import storage
from app.services.dataset.cleaning import clean_lines
from app.services.dataset.cleaning import count_words
from app.services.dataset.embeddings import configured_client
from app.services.dataset.errors import DocumentFailed
from app.services.dataset.parsing import parse
from app.services.dataset.splitting import split

log = logging.getLogger(__name__)

# current, total, message: the task forwards these to the job ledger.
Report = Callable[[int, int | None, str], None]

STAGES = ("parsing", "cleaning", "splitting", "indexing")
INDEX_BATCH = 256


def process(document_id: str, job_id: str, report: Report) -> dict[str, Any]:
    """Process a document for job `job_id`; returns where the document ended up."""
    doc = db.session.get(Document, document_id)
    if doc is None or doc.removing:
        return {"document_id": document_id, "status": "removed"}
    if doc.job_id is None:
        # The API records the job id after publishing; the job may start before that.
        doc.job_id = job_id
        db.session.commit()
    elif doc.job_id != job_id:
        # A newer reindex or resume owns the document now.
        return {"document_id": document_id, "status": "superseded"}
    if doc.indexing_status in batches.FINISHED:
        # Redelivered after the run had already finished.
        return _result(doc)
    dataset = db.session.get_one(Dataset, doc.dataset_id)
    first = STAGES.index(doc.resume_stage or "parsing")
    try:
        for number, stage in enumerate(STAGES[first:], start=first):
            if not _enter(doc, stage):
                return _result(doc)
            report(number, len(STAGES), stage)
            RUNNERS[stage](doc, dataset, report)
    except DocumentFailed as exc:
        _fail(document_id, str(exc))
        raise
    except Exception as exc:
        _fail(
            document_id,
            f"processing stopped unexpectedly ({type(exc).__name__}: {exc}); "
            "reindex the document to try again",
        )
        raise
    batches.settle(doc.batch_id)
    return _result(doc)


def _result(doc: Document) -> dict[str, Any]:
    return {
        "document_id": doc.id,
        "status": doc.indexing_status.value,
        "segments": doc.segment_count,
        "words": doc.word_count,
    }


def _enter(doc: Document, stage: str) -> bool:
    """Record that `stage` starts; False (and the document paused) when a pause was asked."""
    db.session.refresh(doc)
    if doc.removing:
        db.session.rollback()
        return False
    now = utcnow()
    doc.resume_stage = stage
    paused = doc.pause_requested
    if paused:
        doc.paused_at = now
        doc.pause_requested = False
    else:
        setattr(doc, f"{stage}_started_at", now)
    db.session.commit()
    return not paused


def _fail(document_id: str, message: str) -> None:
    db.session.rollback()
    doc = db.session.get(Document, document_id)
    if doc is None:
        return
    doc.error = message
    doc.error_at = utcnow()
    doc.resume_stage = None
    db.session.commit()
    batches.settle(doc.batch_id)


def _path(doc: Document, artifact: str) -> Path:
    return storage.path(doc.dataset_id, doc.id, artifact)


def _parse(doc: Document, dataset: Dataset, report: Report) -> None:
    with storage.write_text(_path(doc, storage.PARSED)) as out:
        parse(_path(doc, storage.SOURCE), doc.file_type, out)


def _clean(doc: Document, dataset: Dataset, report: Report) -> None:
    words = 0
    with open(_path(doc, storage.PARSED), encoding="utf-8") as src:
        with storage.write_text(_path(doc, storage.CLEANED)) as out:
            for line in clean_lines(src):
                words += count_words(line)
                out.write(line)
    if words == 0:
        raise DocumentFailed(
            "no text was found in the document (a scanned PDF holds only images; run it "
            "through OCR first, or upload a file that contains text)"
        )
    doc.word_count = words
    db.session.commit()


def _split(doc: Document, dataset: Dataset, report: Report) -> None:
    count = 0
    with open(_path(doc, storage.CLEANED), encoding="utf-8") as src:
        with storage.write_text(_path(doc, storage.SEGMENTS)) as out:
            for text in split(src, dataset.chunk_size, dataset.chunk_overlap):
                out.write(json.dumps({"text": text}) + "\n")
                count += 1
    doc.segment_count = count
    doc.segments_done = 0
    db.session.commit()


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as src:
        for line in src:
            yield json.loads(line)


def _index(doc: Document, dataset: Dataset, report: Report) -> None:
    client = configured_client() if dataset.embeddings_enabled else None
    total = doc.segment_count or 0
    done = 0
    pending = _read_jsonl(_path(doc, storage.SEGMENTS))
    with storage.write_text(_path(doc, storage.INDEXED)) as out:
        while batch := list(islice(pending, INDEX_BATCH)):
            texts = [item["text"] for item in batch]
            vectors = client.embed(texts) if client else [None] * len(texts)
            for text, vector in zip(texts, vectors, strict=True):
                out.write(json.dumps(segments.index_row(text, vector)) + "\n")
            done += len(batch)
            db.session.execute(
                update(Document).where(Document.id == doc.id).values(segments_done=done)
            )
            db.session.commit()
            report(done, total, f"indexing {done}/{total} segments")
    _swap(doc, dataset)


def _swap(doc: Document, dataset: Dataset) -> None:
    """Replace the document's segments with the new ones and complete it, atomically."""
    segments.replace(dataset.id, doc.id, _read_jsonl(_path(doc, storage.INDEXED)))
    doc.completed_at = utcnow()
    doc.resume_stage = None
    doc.error = None
    doc.segments_done = doc.segment_count or 0
    db.session.commit()
    for artifact in (storage.PARSED, storage.CLEANED, storage.SEGMENTS, storage.INDEXED):
        _path(doc, artifact).unlink(missing_ok=True)


RUNNERS: dict[str, Callable[[Document, Dataset, Report], None]] = {
    "parsing": _parse,
    "cleaning": _clean,
    "splitting": _split,
    "indexing": _index,
}
