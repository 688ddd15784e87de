"""Uploads become searchable documents on real `dataset` workers; bad input is refused."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.models import Job
from app.models.dataset import Document
from app.models.dataset import Segment
from tests.conftest import make_settings
from tests.fixtures.dataset.api import DatasetApi
from tests.fixtures.dataset.files import CORPUS_QUERIES
from tests.fixtures.dataset.files import corpus_files
from tests.fixtures.dataset.files import pdf_bytes
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

BROKEN = {"broken.pdf": pdf_bytes()[:400], "blank.txt": b"   \n\n\t\n"}


@pytest.fixture(scope="module")
def datasets(app: Flask, api_token: str, workers: dict[str, WorkerProcess]) -> Iterator[DatasetApi]:
    helper = DatasetApi(app.test_client(), {"Authorization": f"Bearer {api_token}"})
    yield helper
    helper.cleanup()


@pytest.fixture(scope="module")
def corpus(datasets: DatasetApi) -> dict[str, Any]:
    """The test corpus plus two broken files, uploaded in one batch and processed."""
    dataset = datasets.create("corpus", chunk_size=400, chunk_overlap=50)
    accepted = datasets.upload(dataset["id"], {**corpus_files(), **BROKEN})
    batch = datasets.wait_batch(dataset["id"], accepted["batch_id"])

    def all_jobs_finished() -> list[dict[str, Any]] | None:
        # The batch closes when its last document reaches a final status, which is written
        # by the job's body; the job's own ledger state is recorded just after the body
        # returns. The tests assert both, so wait for both.
        items = datasets.call("GET", f"/{dataset['id']}/documents?limit=100", 200)["items"]
        done = all(doc["job_state"] in {"succeeded", "failed", "cancelled"} for doc in items)
        return items if done else None

    listed = wait_for(all_jobs_finished, timeout=30, what="every document's job to finish")
    return {
        "dataset": dataset,
        "accepted": accepted,
        "batch": batch,
        "documents": {doc["name"]: doc for doc in listed},
    }


def test_upload_answers_at_once_with_a_batch_and_one_job_per_document(
    corpus: dict[str, Any],
) -> None:
    accepted = corpus["accepted"]
    assert len(accepted["documents"]) == len(CORPUS_QUERIES) + len(BROKEN)
    assert len({doc["job_id"] for doc in accepted["documents"]}) == len(accepted["documents"])
    types = {doc["name"]: doc["file_type"] for doc in accepted["documents"]}
    assert types["lighthouse.pdf"] == "pdf"
    assert types["orchard.docx"] == "docx"
    assert types["tale_of_two_cities.html"] == "html"
    assert types["planets.csv"] == "csv"
    assert types["pride_and_prejudice.md"] == "md"


def test_every_good_document_completes_with_its_stages_and_segments(
    corpus: dict[str, Any],
) -> None:
    for name in CORPUS_QUERIES:
        doc = corpus["documents"][name]
        assert doc["indexing_status"] == "completed", doc
        assert doc["error"] is None
        assert doc["segments"]["total"] >= 1
        assert doc["segments"]["completed"] == doc["segments"]["total"]
        assert doc["word_count"] > 10
        stamps = [
            doc[f"{stage}_started_at"] for stage in ("parsing", "cleaning", "splitting", "indexing")
        ]
        assert all(stamps) and stamps == sorted(stamps)
        assert doc["completed_at"] >= stamps[-1]
        assert doc["job_state"] == "succeeded"


def test_broken_files_end_in_error_with_an_actionable_message(corpus: dict[str, Any]) -> None:
    broken_pdf = corpus["documents"]["broken.pdf"]
    assert broken_pdf["indexing_status"] == "error"
    assert "could not be read" in broken_pdf["error"]
    assert "upload it again" in broken_pdf["error"]
    blank = corpus["documents"]["blank.txt"]
    assert blank["indexing_status"] == "error"
    assert "no text was found" in blank["error"]
    # The document's own fault is a failed job, recorded as such.
    assert broken_pdf["job_state"] == "failed"


def test_the_batch_closes_once_and_runs_its_completion_hook(
    app: Flask, corpus: dict[str, Any]
) -> None:
    batch = corpus["batch"]
    assert batch["total_documents"] == len(CORPUS_QUERIES) + len(BROKEN)
    assert batch["finished_documents"] == batch["total_documents"]
    assert batch["counts"] == {"completed": len(CORPUS_QUERIES), "error": len(BROKEN)}
    assert batch["segments_done"] == batch["segments_total"] > 0
    with app.app_context():
        closes = db.session.scalars(select(Job).where(Job.task == "dataset.close_batch")).all()
        mine = [job for job in closes if job.args == {"batch_id": batch["id"]}]
    assert len(mine) == 1


@pytest.mark.parametrize(
    ("expected", "query"), [(n, q) for n, qs in CORPUS_QUERIES.items() for q in qs]
)
def test_retrieval_puts_the_right_document_first(
    datasets: DatasetApi, corpus: dict[str, Any], expected: str, query: str
) -> None:
    results = datasets.retrieve(corpus["dataset"]["id"], query, top_k=3)
    assert results, query
    assert results[0]["document_name"] == expected, (query, results)
    assert results[0]["score"] >= results[-1]["score"] > 0
    assert results[0]["text"]


def test_no_segment_is_stored_twice(app: Flask, corpus: dict[str, Any]) -> None:
    with app.app_context():
        for name in CORPUS_QUERIES:
            doc_id = corpus["documents"][name]["id"]
            positions = db.session.scalars(
                select(Segment.position).where(Segment.document_id == doc_id)
            ).all()
            assert sorted(positions) == list(range(corpus["documents"][name]["segments"]["total"]))


def test_raw_texts_in_json_are_indexed(datasets: DatasetApi) -> None:
    dataset, _accepted = datasets.indexed_texts(
        "texts",
        {"kettle.txt": "The copper kettle whistled on the stove.", "notes.md": "# Sailing\nKnots."},
    )
    [top] = datasets.retrieve(dataset["id"], "whistling kettle", top_k=1)
    assert top["document_name"] == "kettle.txt"


def test_unknown_content_is_refused_with_415_and_nothing_is_stored(
    app: Flask, datasets: DatasetApi
) -> None:
    dataset = datasets.create("refused")
    problem = datasets.upload(
        dataset["id"],
        {"fine.txt": b"some text", "image.txt": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00"},
        expect=415,
    )
    assert "image.txt" in problem["detail"]
    fake = datasets.upload(dataset["id"], {"report.pdf": b"plain words, no PDF"}, expect=415)
    assert "not a PDF" in fake["detail"]
    with app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(Document).where(Document.dataset_id == dataset["id"])
        )
    assert count == 0


def test_files_over_the_limits_are_refused_with_413(
    base_settings: dict[str, Any], api_token: str, datasets: DatasetApi
) -> None:
    small = create_app(
        make_settings(base_settings, DATASET_MAX_FILE_BYTES=2048, DATASET_MAX_UPLOAD_BYTES=8192)
    )
    limited = DatasetApi(small.test_client(), datasets.auth)
    dataset = limited.create("limits")
    problem = limited.upload(dataset["id"], {"big.txt": b"word " * 1000}, expect=413)
    assert "big.txt" in problem["detail"] and "DATASET_MAX_FILE_BYTES" in problem["detail"]
    files = {f"part{n}.txt": b"word " * 400 for n in range(6)}
    response = small.test_client().post(
        f"/api/v1/datasets/{dataset['id']}/documents",
        data={"files": [(io.BytesIO(v), k) for k, v in files.items()]},
        content_type="multipart/form-data",
        headers=datasets.auth,
    )
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"
    limited.cleanup()


def test_uploads_larger_than_the_app_wide_request_limit_are_accepted(
    datasets: DatasetApi,
) -> None:
    # MAX_REQUEST_BYTES (1 MiB) guards the other endpoints; uploads have their own limit.
    dataset = datasets.create("large")
    text = ("The quick brown fox jumps over the lazy dog. " * 20 + "\n\n") * 1500
    accepted = datasets.upload(dataset["id"], {"large.txt": text.encode()})
    assert len(text) > 1024 * 1024
    datasets.wait_batch(dataset["id"], accepted["batch_id"])


def test_bad_requests_get_problem_json(datasets: DatasetApi, client: Any) -> None:
    assert client.get("/api/v1/datasets").status_code == 401
    missing = datasets.call("GET", "/no-such-dataset", 404)
    assert missing["title"] == "Dataset not found"
    dataset = datasets.create("bad")
    datasets.call("POST", f"/{dataset['id']}/documents", 400, json={"documents": []})
    datasets.call("POST", f"/{dataset['id']}/documents", 415, data="x", content_type="text/plain")
    no_vectors = datasets.call(
        "POST", f"/{dataset['id']}/retrieve", 422, json={"query": "x", "mode": "vector"}
    )
    assert "EMBEDDING_BASE_URL" in no_vectors["detail"]
    stop_words = datasets.call(
        "POST", f"/{dataset['id']}/retrieve", 422, json={"query": "to be or not to be"}
    )
    assert stop_words["title"] == "Query has no indexable term"
    assert "stop word" in stop_words["detail"] and "vector" in stop_words["detail"]
    datasets.call("POST", "", 422, json={"name": "x", "chunk_size": 200, "chunk_overlap": 300})
