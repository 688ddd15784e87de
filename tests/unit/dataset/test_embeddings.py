"""The embeddings client against a local server speaking the OpenAI protocol."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from app.services.dataset.embeddings import EmbeddingClient
from app.services.dataset.embeddings import EmbeddingUnavailable
from tests.fixtures.dataset.embedding_server import EmbeddingServer
from tests.fixtures.dataset.embedding_server import embedding_server


@pytest.fixture
def server() -> Iterator[EmbeddingServer]:
    with embedding_server() as running:
        yield running


def client(server: EmbeddingServer, **options: float) -> EmbeddingClient:
    return EmbeddingClient(base_url=server.url, model="test-embed", batch_size=3, **options)  # type: ignore[arg-type]


def test_texts_are_sent_in_batches_and_come_back_in_order_unit_length(
    server: EmbeddingServer,
) -> None:
    texts = [f"text about topic {n} whales" if n % 2 else f"rabbits {n}" for n in range(7)]
    vectors = client(server).embed(texts)
    assert server.batches == [3, 3, 1]
    assert len(vectors) == 7
    assert all(math.isclose(sum(x * x for x in v), 1.0) for v in vectors)
    similar = sum(a * b for a, b in zip(vectors[1], vectors[3], strict=True))
    different = sum(a * b for a, b in zip(vectors[1], vectors[2], strict=True))
    assert similar > different


def test_overload_is_retried_with_backoff(server: EmbeddingServer) -> None:
    server.fail_next = 2
    vectors = client(server).embed(["one", "two"])
    assert len(vectors) == 2
    assert server.statuses == [503, 503, 200]


def test_a_provider_that_stays_down_gives_an_actionable_error(server: EmbeddingServer) -> None:
    server.fail_always = True
    with pytest.raises(EmbeddingUnavailable, match="EMBEDDING_BASE_URL"):
        client(server, max_attempts=3).embed(["one"])
    assert server.statuses == [503, 503, 503]
