"""With an embedding provider configured, segments get vectors and vector/hybrid retrieval work.

The provider is a local server speaking the OpenAI embeddings protocol. These tests run
their own `dataset` worker on their own Redis database, since the shared worker has no
provider configured and would otherwise take some of the documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models.dataset import Segment
from tests.fixtures.dataset.api import DatasetApi
from tests.fixtures.dataset.embedding_server import EmbeddingServer
from tests.fixtures.dataset.embedding_server import embedding_server
from tests.fixtures.dataset.files import CORPUS_QUERIES
from tests.fixtures.dataset.files import corpus_files
from tests.support import services
from tests.support.side_stack import SideStack
from tests.support.side_stack import side_stack


@pytest.fixture(scope="module")
def provider() -> Iterator[EmbeddingServer]:
    with embedding_server() as server:
        yield server


@pytest.fixture(scope="module")
def vectors(
    base_settings: dict[str, Any],
    worker_env: dict[str, str],
    session_tmp: Path,
    provider: EmbeddingServer,
) -> Iterator[SideStack]:
    with (
        services.redis_server(session_tmp / "vectors-redis") as redis_url,
        side_stack(
            base_settings,
            worker_env,
            session_tmp,
            "vectors",
            queues=["dataset"],
            concurrency=2,
            REDIS_URL=redis_url,
            EMBEDDING_BASE_URL=provider.url,
            EMBEDDING_BATCH_SIZE="4",
            EMBEDDING_MAX_ATTEMPTS="3",
        ) as side,
    ):
        yield side


@pytest.fixture(scope="module")
def vector_app(vectors: SideStack) -> Flask:
    return vectors.app


@pytest.fixture(scope="module")
def indexed(vectors: SideStack, provider: EmbeddingServer) -> Iterator[dict[str, Any]]:
    datasets = DatasetApi(vectors.app.test_client(), vectors.database.auth)
    dataset = datasets.create("vectors", chunk_size=400, chunk_overlap=0)
    # The provider is overloaded at first: the client must retry, not fail the documents.
    provider.fail_next = 2
    accepted = datasets.upload(dataset["id"], corpus_files())
    batch = datasets.wait_batch(dataset["id"], accepted["batch_id"])
    yield {"api": datasets, "dataset": dataset, "batch": batch}
    datasets.cleanup()


def test_every_segment_gets_a_vector_through_batched_retried_calls(
    vector_app: Flask, indexed: dict[str, Any], provider: EmbeddingServer
) -> None:
    assert indexed["batch"]["counts"] == {"completed": len(CORPUS_QUERIES)}
    with vector_app.app_context():
        vectors = db.session.scalars(
            select(Segment.vector).where(Segment.dataset_id == indexed["dataset"]["id"])
        ).all()
    assert vectors and all(vector and len(vector) == 256 * 4 for vector in vectors)
    assert 503 in provider.statuses
    assert max(provider.batches) <= 4


@pytest.mark.parametrize("mode", ["vector", "hybrid"])
@pytest.mark.parametrize(
    ("expected", "query"),
    [
        ("gettysburg_address.txt", "four score and seven years ago"),
        ("the_raven.txt", "quoth the raven nevermore"),
        ("orchard.docx", "apple orchard harvest cider press"),
    ],
)
def test_vector_and_hybrid_retrieval_rank_the_right_document_first(
    indexed: dict[str, Any], mode: str, expected: str, query: str
) -> None:
    results = indexed["api"].retrieve(indexed["dataset"]["id"], query, top_k=3, mode=mode)
    assert results[0]["document_name"] == expected, results
    assert 0 < results[0]["score"] <= 1.0 + 1e-9


def test_a_provider_that_stays_down_puts_the_document_in_error(
    indexed: dict[str, Any], provider: EmbeddingServer
) -> None:
    datasets: DatasetApi = indexed["api"]
    provider.fail_always = True
    try:
        accepted = datasets.upload_texts(indexed["dataset"]["id"], {"late.txt": "Late words."})
        [doc] = accepted["documents"]
        failed = datasets.wait_document(indexed["dataset"]["id"], doc["id"], {"error"})
    finally:
        provider.fail_always = False
    assert "embedding provider" in failed["error"]
    assert "EMBEDDING_BASE_URL" in failed["error"]
