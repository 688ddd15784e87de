"""The provider clients against a local OpenAI-compatible server, and the offline provider."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC
from datetime import datetime

import httpx2
import pytest

from app.services.generation.providers.base import ChatRequest
from app.services.generation.providers.base import ProviderRejected
from app.services.generation.providers.base import ProviderTimeout
from app.services.generation.providers.base import RetryableProviderError
from app.services.generation.providers.offline import OfflineProvider
from app.services.generation.providers.offline import summarise
from app.services.generation.providers.openai import OpenAICompatible
from app.services.generation.providers.transport import DrainingTransport
from app.services.retrying import backoff_delay
from app.services.retrying import parse_retry_after
from app.settings.generation import ProviderSpec
from app.settings.generation import validate_providers
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_openai import Reply


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI.running() as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[httpx2.Client]:
    # The transport the provider registry gives its clients.
    with httpx2.Client(transport=DrainingTransport()) as client:
        yield client


def _client(fake: FakeOpenAI, http: httpx2.Client, **spec: object) -> OpenAICompatible:
    options = {"base_url": fake.base_url, "api_key": fake.api_key, **spec}
    return OpenAICompatible("fake", ProviderSpec.model_validate(options), http)


def _ask(marker: str) -> ChatRequest:
    return ChatRequest("gpt-test", [{"role": "user", "content": marker}], {"temperature": 0})


def test_streams_the_answer_with_usage(fake: FakeOpenAI, http: httpx2.Client) -> None:
    fake.script("u-stream", Reply(text="one two three"))
    deltas = list(_client(fake, http).stream(_ask("u-stream")))
    assert "".join(d.text for d in deltas) == "one two three"
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    assert deltas[-1].completion_tokens == 3
    assert fake.seen("u-stream")[0].body["temperature"] == 0


def test_a_finished_stream_gives_its_connection_back_to_the_pool(fake: FakeOpenAI) -> None:
    # The client's stream stops at [DONE]; unread, the body's last bytes would close the
    # connection, and every generation would open a new one.
    transport = DrainingTransport()
    fake.script("u-reuse", Reply(text="one two"))
    with httpx2.Client(transport=transport) as http:
        client = _client(fake, http)
        for _ in range(3):
            assert "".join(d.text for d in client.stream(_ask("u-reuse"))) == "one two"
        pool = transport._pool
        assert [c.is_idle() for c in pool.connections] == [True]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limits_and_server_errors_are_retryable(
    fake: FakeOpenAI, http: httpx2.Client, status: int
) -> None:
    fake.script(f"u-{status}", Reply(status=status, retry_after=7, error="busy"))
    with pytest.raises(RetryableProviderError) as caught:
        list(_client(fake, http).stream(_ask(f"u-{status}")))
    assert caught.value.retry_after == 7
    assert f"HTTP {status}: busy" in str(caught.value)


def test_other_client_errors_are_final_and_carry_the_providers_message(
    fake: FakeOpenAI, http: httpx2.Client
) -> None:
    fake.script("u-400", Reply(status=400, error="'temperature' must be <= 2"))
    with pytest.raises(ProviderRejected) as caught:
        list(_client(fake, http).stream(_ask("u-400")))
    assert caught.value.status == 400
    assert "'temperature' must be <= 2" in str(caught.value)


def test_a_wrong_key_is_final(fake: FakeOpenAI, http: httpx2.Client) -> None:
    with pytest.raises(ProviderRejected, match="HTTP 401: Incorrect API key"):
        list(_client(fake, http, api_key="sk-wrong").stream(_ask("anything")))


def test_a_silent_provider_times_out(fake: FakeOpenAI, http: httpx2.Client) -> None:
    fake.script("u-slow", Reply(delay=3))
    with pytest.raises(ProviderTimeout):
        list(_client(fake, http, timeout=0.5).stream(_ask("u-slow")))


def test_a_trickling_stream_hits_the_deadline(fake: FakeOpenAI, http: httpx2.Client) -> None:
    fake.script("u-trickle", Reply(text=" ".join(["w"] * 50), chunk_delay=0.1))
    received = []
    with pytest.raises(ProviderTimeout):
        for delta in _client(fake, http, timeout=0.6).stream(_ask("u-trickle")):
            received.append(delta.text)
    assert 0 < len([t for t in received if t]) < 50


def test_an_unreachable_provider_is_retryable(http: httpx2.Client) -> None:
    spec = ProviderSpec(base_url="http://127.0.0.1:9/v1", connect_timeout=0.5)
    client = OpenAICompatible("gone", spec, http)
    with pytest.raises(RetryableProviderError, match="ConnectError"):
        list(client.stream(_ask("x")))


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_is_capped_and_never_undercuts_retry_after() -> None:
    delays = [backoff_delay(n, base=1, cap=8) for n in range(10) for _ in range(20)]
    assert all(0 <= d <= 8 for d in delays)
    assert max(backoff_delay(0, base=1, cap=8) for _ in range(50)) <= 1
    assert all(backoff_delay(0, base=1, cap=8, retry_after=5) >= 5 for _ in range(50))


def test_offline_provider_extracts_the_central_sentences() -> None:
    text = (
        "Queues carry jobs to workers. Workers run jobs from queues. "
        "Bananas are yellow. The ledger records jobs and queues."
    )
    summary = summarise(text, 2)
    assert summary == "Queues carry jobs to workers. Workers run jobs from queues."
    assert summarise(text, 2) == summary  # deterministic


def test_offline_provider_streams_words_and_refuses_an_empty_prompt() -> None:
    provider = OfflineProvider()
    deltas = list(
        provider.stream(
            ChatRequest("extractive-summary", [{"role": "user", "content": "Hi there."}])
        )
    )
    assert "".join(d.text for d in deltas) == "Hi there."
    assert deltas[-1].completion_tokens == 2
    with pytest.raises(ProviderRejected, match="no user text"):
        list(
            provider.stream(ChatRequest("extractive-summary", [{"role": "system", "content": "x"}]))
        )


def test_provider_settings_are_validated() -> None:
    ok = validate_providers('{"a": {"base_url": "https://api.example.com/v1/", "models": ["m"]}}')
    assert ok["a"].base_url == "https://api.example.com/v1"
    assert ok["a"].timeout == 120.0
    with pytest.raises(ValueError, match="base_url must be an http"):
        validate_providers({"a": {"base_url": "ftp://x"}})
    with pytest.raises(ValueError, match="reserved"):
        validate_providers({"offline": {"base_url": "http://x"}})
    with pytest.raises(ValueError, match="Extra inputs"):
        validate_providers({"a": {"base_url": "http://x", "tiemout": 3}})
