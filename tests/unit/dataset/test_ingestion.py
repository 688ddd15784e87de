"""The ingestion pipeline as a service, without Celery: stages, pause, abrupt stops, reruns."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import JobState
from app.models.dataset import Document
from app.models.dataset import IndexingStatus
from app.models.dataset import Segment
from app.models.dataset import new_id
from app.services.dataset import datasets
from app.services.dataset import documents
from app.services.dataset import ingestion
from app.services.dataset import retrieval
from app.services.dataset import storage
from tests.fixtures.dataset.files import random_text
from tests.support.jobs import job_row


class Killed(BaseException):
    """Stands in for SIGKILL: nothing in the pipeline may catch or clean up after it."""


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield
        db.session.rollback()
        for dataset_id in CREATED:
            datasets.remove(dataset_id)
        CREATED.clear()


# Datasets a test made; removed with their files afterwards.
CREATED: list[str] = []


def make_document(text: str, chunk_size: int = 300) -> Document:
    dataset = datasets.create(name="ingestion", chunk_size=chunk_size, chunk_overlap=0)
    CREATED.append(dataset.id)
    doc_id = new_id()
    size, checksum = storage.save_source(
        io.BytesIO(text.encode()), dataset.id, doc_id, max_bytes=10**8, name="t.txt"
    )
    doc = Document(
        id=doc_id,
        dataset_id=dataset.id,
        name="t.txt",
        file_type="txt",
        size=size,
        checksum=checksum,
        job_id="job-1",
    )
    db.session.add(doc)
    db.session.commit()
    return doc


def segments(doc_id: str) -> list[tuple[int, int]]:
    rows = db.session.execute(
        select(Segment.id, Segment.position).where(Segment.document_id == doc_id)
    ).all()
    return [(row[0], row[1]) for row in rows]


class Recorder:
    def __init__(self, on: dict[str, Any] | None = None) -> None:
        self.messages: list[str] = []
        self.on = on or {}

    def __call__(self, current: int, total: int | None, message: str) -> None:
        self.messages.append(message)
        action = self.on.get(message.split(" ")[0])
        if action:
            action()


def test_a_document_goes_through_every_stage_once(ctx: None) -> None:
    doc = make_document(random_text(20_000))
    report = Recorder()
    result = ingestion.process(doc.id, "job-1", report)
    assert result["status"] == "completed"
    assert [m for m in report.messages if " " not in m] == [
        "parsing",
        "cleaning",
        "splitting",
        "indexing",
    ]
    positions = sorted(position for _id, position in segments(doc.id))
    assert positions == list(range(result["segments"]))
    # A redelivery of the finished job changes nothing.
    again = ingestion.process(doc.id, "job-1", Recorder())
    assert again == result
    assert len(segments(doc.id)) == result["segments"]


def test_an_abrupt_stop_mid_indexing_keeps_the_old_index_and_the_rerun_replaces_it(
    ctx: None,
) -> None:
    doc = make_document(random_text(200_000))
    first = ingestion.process(doc.id, "job-1", Recorder())
    old = segments(doc.id)

    def kill() -> None:
        raise Killed

    doc = db.session.get_one(Document, doc.id)
    # A reindex: the outcome of the last run goes, a new job owns the document.
    doc.completed_at, doc.resume_stage, doc.job_id = None, None, "job-2"
    db.session.commit()
    with pytest.raises(Killed):
        ingestion.process(doc.id, "job-2", Recorder(on={"indexing": kill}))
    db.session.rollback()
    assert segments(doc.id) == old

    # The redelivered job starts again at the stage it had reached.
    report = Recorder()
    done = ingestion.process(doc.id, "job-2", report)
    assert report.messages[0] == "indexing"
    assert done["segments"] == first["segments"]
    new = segments(doc.id)
    assert len(new) == len(old) and not {i for i, _ in new} & {i for i, _ in old}


def test_pause_takes_effect_before_the_next_stage_and_resume_skips_done_stages(
    ctx: None,
) -> None:
    doc = make_document(random_text(20_000))

    def ask_pause() -> None:
        db.session.execute(
            Document.__table__.update().where(Document.id == doc.id).values(pause_requested=True)
        )
        db.session.commit()

    paused = ingestion.process(doc.id, "job-1", Recorder(on={"cleaning": ask_pause}))
    assert paused["status"] == "paused"
    doc = db.session.get_one(Document, doc.id)
    assert doc.resume_stage == "splitting"
    assert segments(doc.id) == []

    doc.paused_at, doc.job_id = None, "job-2"
    db.session.commit()
    report = Recorder()
    assert ingestion.process(doc.id, "job-2", report)["status"] == "completed"
    assert report.messages[0] == "splitting"


def test_a_superseded_job_does_nothing(ctx: None) -> None:
    doc = make_document("Some words here.")
    assert ingestion.process(doc.id, "old-job", Recorder())["status"] == "superseded"
    assert db.session.get_one(Document, doc.id).indexing_status == IndexingStatus.WAITING


def test_a_document_whose_job_died_shows_as_error_not_stuck(ctx: None) -> None:
    doc = make_document("Some words here.")
    job = job_row(
        JobState.FAILED,
        task="dataset.index_document",
        queue="dataset",
        error_type="TimeLimitExceeded",
        error_message="TimeLimitExceeded(1860)",
    )
    db.session.add(job)
    db.session.flush()
    doc.resume_stage, doc.job_id = "indexing", job.id
    db.session.commit()
    [shown] = documents.describe([doc])
    assert shown["indexing_status"] == "error"
    assert "TimeLimitExceeded" in shown["error"] and "reindex" in shown["error"]


def test_keyword_matching_in_the_database_is_exact_for_any_term(ctx: None) -> None:
    doc = make_document("Notes on snake_case names.\n\nA café in Zürich.\n\nPlain words here.")
    ingestion.process(doc.id, "job-1", Recorder())
    found = retrieval.retrieve(doc.dataset_id, "snake_case", top_k=5, mode="keyword")
    assert len(found) == 1 and "snake_case" in found[0]["text"]
    assert retrieval.retrieve(doc.dataset_id, "zürich café", top_k=5, mode="keyword")
    # "_" separates words, as both full-text indexes split them; no other term matches.
    assert retrieval.retrieve(doc.dataset_id, "snakeXcase", top_k=5, mode="keyword") == []
