"""Trace records leave safe and small, encoded as OTLP and Langfuse expect, shipped boundedly."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from app.services.tracing import stats
from app.services.tracing.redact import clean
from app.services.tracing.shipper import BoundedBuffer
from app.services.tracing.shipper import Shipper
from app.services.tracing.sinks import LangfuseSink
from app.services.tracing.sinks import OtlpSink
from app.services.tracing.sinks import http_sinks
from config import Settings
from tests.support.trace_receivers import Receiver

RECORD: dict[str, Any] = {
    "id": "7a0c5c8e-3f1c-4d39-a9c4-4b0a0f7f5b11",
    "operation": "generation.complete",
    "status": "failed",
    "job_id": "job-1",
    "parent_job_id": "batch-1",
    "attempt": 2,
    "inputs": {"messages": [{"role": "user", "content": "hi"}]},
    "outputs": {"text": "partial"},
    "error_type": "ProviderTimeout",
    "error_message": "no complete answer within 1.0s",
    "latency_ms": 1000.5,
    "provider": "fake",
    "model": "gpt-test",
    "prompt_tokens": 3,
    "completion_tokens": 5,
    "started_at": "2026-01-01T12:00:00+00:00",
    "finished_at": "2026-01-01T12:00:01+00:00",
}


def test_secrets_are_redacted_by_key_and_by_shape() -> None:
    cleaned = clean(
        {
            "api_key": "abc",
            "headers": {"Authorization": "Bearer abcdefghijkl"},
            "max_tokens": 100,
            "prompt": "key sk-abcdefghijklmnop, db postgres://app:hunter2@db/x",
        },
        max_chars=1000,
    )
    assert cleaned["api_key"] == "[REDACTED]"
    assert cleaned["headers"]["Authorization"] == "[REDACTED]"
    assert cleaned["max_tokens"] == 100  # a count, not a secret
    assert "sk-abcdef" not in cleaned["prompt"] and "hunter2" not in cleaned["prompt"]


def test_long_values_are_truncated_and_say_so() -> None:
    cleaned = clean({"text": "a" * 500, "items": list(range(80))}, max_chars=100)
    assert cleaned["text"] == "a" * 100 + "…[400 more chars]"
    assert len(cleaned["items"]) == 51 and cleaned["items"][-1] == "…30 more items"


def test_otlp_span_carries_the_record() -> None:
    body = OtlpSink("http://x", httpx.Client(), {}).encode([RECORD])
    resource = body["resourceSpans"][0]
    assert resource["resource"]["attributes"][0]["value"] == {"stringValue": "tasklane"}
    span = resource["scopeSpans"][0]["spans"][0]
    assert span["status"] == {"code": 2, "message": "no complete answer within 1.0s"}
    assert span["startTimeUnixNano"] == "1767268800000000000"
    assert span["endTimeUnixNano"] == "1767268801000000000"
    attributes = {a["key"]: a["value"] for a in span["attributes"]}
    assert attributes["gen_ai.usage.input_tokens"] == {"intValue": "3"}
    assert attributes["tasklane.parent_job_id"] == {"stringValue": "batch-1"}
    # Children of one parent job share a trace id.
    sibling = OtlpSink("http://x", httpx.Client(), {}).span({**RECORD, "id": "other"})
    assert sibling["traceId"] == span["traceId"] and sibling["spanId"] != span["spanId"]


def test_langfuse_events_for_a_child_generation_and_a_root_span() -> None:
    sink = LangfuseSink("http://x", httpx.Client(), {})
    child = sink.events(RECORD)
    assert [e["type"] for e in child] == ["generation-create"]
    body = child[0]["body"]
    assert body["traceId"] == "batch-1" and body["level"] == "ERROR"
    assert body["usage"] == {"input": 3, "output": 5, "total": 8, "unit": "TOKENS"}
    root = sink.events({**RECORD, "parent_job_id": None, "provider": None, "status": "succeeded"})
    assert [e["type"] for e in root] == ["trace-create", "span-create"]
    assert root[1]["body"]["traceId"] == "job-1" and root[1]["body"]["level"] == "DEFAULT"


def test_sinks_come_from_settings_with_langfuse_basic_auth() -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TRACE_SINKS="database,otlp,langfuse",
        TRACE_OTLP_ENDPOINT="http://otel:4318/v1/traces",
        TRACE_LANGFUSE_HOST="http://lf:3000/",
        TRACE_LANGFUSE_PUBLIC_KEY="pk",
        TRACE_LANGFUSE_SECRET_KEY="sk",
    )
    otlp, langfuse = http_sinks(settings, httpx.Client())
    assert otlp.url == "http://otel:4318/v1/traces"
    assert langfuse.url == "http://lf:3000/api/public/ingestion"
    assert langfuse._headers["Authorization"] == "Basic " + base64.b64encode(b"pk:sk").decode()


def test_an_otlp_sink_without_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="TRACE_OTLP_ENDPOINT must be set"):
        Settings(_env_file=None, TRACE_SINKS="otlp")  # type: ignore[call-arg]


def test_a_full_buffer_drops_the_oldest() -> None:
    buffer = BoundedBuffer(3)
    assert all(buffer.put({"n": n}) for n in range(3))
    assert buffer.put({"n": 3}) is False
    assert [r["n"] for r in buffer.take(10, linger=0.01)] == [1, 2, 3]


def test_take_returns_a_full_batch_without_waiting_for_the_linger() -> None:
    buffer = BoundedBuffer(100)
    for n in range(5):
        buffer.put({"n": n})
    assert len(buffer.take(5, linger=60)) == 5


@pytest.fixture
def counters(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.delete(stats.PREFIX + "otlp")
    client.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver.running("/v1/traces") as server:
        yield server


def _shipper(receiver: Receiver, counters: redis.Redis, **overrides: Any) -> Shipper:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        TRACE_SINKS="otlp",
        TRACE_OTLP_ENDPOINT=receiver.endpoint,
        TRACE_SHIP_RETRY_DELAY=0.01,
        TRACE_SHIP_MAX_ATTEMPTS=3,
        TRACE_FLUSH_INTERVAL=0.05,
        **overrides,
    )
    return Shipper(OtlpSink(receiver.endpoint, httpx.Client(), {}), settings, counters)


def test_a_failed_batch_is_retried_then_shipped(receiver: Receiver, counters: redis.Redis) -> None:
    shipper = _shipper(receiver, counters)
    # Workers elsewhere in the session ship to "otlp" too: compare before and after.
    before = stats.read(counters, ["otlp"])["otlp"]
    receiver.down = True
    flip = threading.Timer(0.02, lambda: setattr(receiver, "down", False))
    flip.start()
    assert shipper.ship([RECORD]) is True
    flip.join()
    after = stats.read(counters, ["otlp"])["otlp"]
    assert after["shipped"] - before["shipped"] == 1
    assert after["failed_attempts"] - before["failed_attempts"] >= 1
    assert len(receiver.received()) == 1


def test_a_sink_that_stays_down_costs_bounded_memory_and_counts_drops(
    receiver: Receiver, counters: redis.Redis
) -> None:
    receiver.down = True
    shipper = _shipper(receiver, counters, TRACE_BUFFER_LIMIT=5, TRACE_BATCH_SIZE=2)
    before = stats.read(counters, ["otlp"])["otlp"]
    for n in range(50):
        shipper.offer({**RECORD, "id": str(n)})
        assert len(shipper.buffer) <= 5
    figures = stats.read(counters, ["otlp"])["otlp"]
    # At most a buffer and one batch in hand; the rest is dropped and counted.
    assert figures["dropped"] - before["dropped"] >= 50 - 5 - 2
    assert "HTTP 503" in figures["last_error"]
    assert receiver.received() == []
