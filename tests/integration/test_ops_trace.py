"""Every generation is traced after it ends, to the database, OTLP and Langfuse sinks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api import Api
from tests.support.fake_openai import Reply
from tests.support.generation_stubs import GenerationStubs
from tests.support.trace_receivers import Receiver
from tests.support.waiting import wait_for


def _generate(api: Api, **body: Any) -> dict[str, Any]:
    response = api.client.post("/api/v1/generations", json=body, headers=api.auth)
    assert response.status_code == 202, response.get_json()
    return dict(response.get_json())


def _traces(api: Api, **query: str) -> list[dict[str, Any]]:
    response = api.client.get("/api/v1/traces", query_string=query, headers=api.auth)
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["items"])


def _trace_of(api: Api, job_id: str) -> dict[str, Any]:
    traces = wait_for(lambda: _traces(api, job_id=job_id), what=f"a trace of job {job_id}")
    return traces[0]


def _sinks(api: Api) -> dict[str, dict[str, Any]]:
    response = api.client.get("/api/v1/traces/sinks", headers=api.auth)
    assert response.status_code == 200, response.get_json()
    return {sink["name"]: sink for sink in response.get_json()}


def _otlp_spans(receiver: Receiver, job_id: str) -> list[dict[str, Any]]:
    spans = []
    for batch in receiver.received():
        for resource in batch["resourceSpans"]:
            for scope in resource["scopeSpans"]:
                for span in scope["spans"]:
                    attributes = {a["key"]: a["value"] for a in span["attributes"]}
                    if attributes.get("tasklane.job_id") == {"stringValue": job_id}:
                        spans.append({**span, "attributes": attributes})
    return spans


def _langfuse_events(receiver: Receiver, job_id: str) -> list[dict[str, Any]]:
    return [
        event
        for batch in receiver.received()
        for event in batch["batch"]
        if event["body"].get("metadata", {}).get("job_id") == job_id
    ]


@pytest.fixture
def otlp_down(generation_stubs: GenerationStubs) -> Iterator[Receiver]:
    generation_stubs.otlp.down = True
    try:
        yield generation_stubs.otlp
    finally:
        generation_stubs.otlp.down = False


def test_a_generation_is_traced_to_every_sink(api: Api, generation_stubs: GenerationStubs) -> None:
    marker = f"trace-{uuid.uuid4().hex[:8]}"
    generation_stubs.openai.script(marker, Reply(text="the answer is 42"))
    secret = "sk-live-" + "a1b2c3d4" * 4
    prompt = f"{marker} my key is {secret} " + "x" * 5000

    job = _generate(api, provider="fake", model="gpt-test", prompt=prompt)
    assert api.wait(job["id"])["state"] == "succeeded"

    trace = _trace_of(api, job["id"])
    assert trace["operation"] == "generation.complete"
    assert trace["status"] == "succeeded"
    assert (trace["provider"], trace["model"]) == ("fake", "gpt-test")
    assert (trace["prompt_tokens"], trace["completion_tokens"]) == (6, 4)
    assert trace["latency_ms"] > 0
    assert trace["outputs"]["text"] == "the answer is 42"
    content = trace["inputs"]["messages"][0]["content"]
    assert secret not in content and "[REDACTED]" in content
    assert len(content) < 2100 and content.endswith("more chars]")  # TRACE_MAX_FIELD_CHARS

    span = wait_for(lambda: _otlp_spans(generation_stubs.otlp, job["id"]), what="OTLP span")[0]
    assert span["name"] == "generation.complete"
    assert span["status"] == {"code": 1}
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
    assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
    assert span["attributes"]["gen_ai.request.model"] == {"stringValue": "gpt-test"}
    assert span["attributes"]["gen_ai.usage.output_tokens"] == {"intValue": "4"}

    events = wait_for(
        lambda: _langfuse_events(generation_stubs.langfuse, job["id"]), what="Langfuse events"
    )
    generation = next(e for e in events if e["type"] == "generation-create")["body"]
    assert generation["model"] == "gpt-test"
    assert generation["usage"] == {"input": 6, "output": 4, "total": 10, "unit": "TOKENS"}
    assert generation["output"]["text"] == "the answer is 42"
    assert secret not in str(generation["input"])
    assert {e["type"] for e in events} == {"trace-create", "generation-create"}


def test_a_failed_generation_is_traced_with_its_error(
    api: Api, generation_stubs: GenerationStubs
) -> None:
    marker = f"trace-{uuid.uuid4().hex[:8]}"
    generation_stubs.openai.script(marker, Reply(status=400, error="unsupported parameter"))

    job = _generate(api, provider="fake", model="gpt-test", prompt=marker)
    assert api.wait(job["id"])["state"] == "failed"

    trace = _trace_of(api, job["id"])
    assert trace["status"] == "failed"
    assert trace["error_type"] == "ExpectedFailure"
    assert "unsupported parameter" in trace["error_message"]
    assert _traces(api, status="failed", operation="generation.complete", job_id=job["id"])


def test_a_sink_that_is_down_never_fails_the_traced_job(api: Api, otlp_down: Receiver) -> None:
    before = _sinks(api)["otlp"]
    jobs = [_generate(api, prompt=f"Sentence {i}. Another one.") for i in range(3)]

    for job in jobs:
        assert api.wait(job["id"])["state"] == "succeeded"
        _trace_of(api, job["id"])  # the database sink still has it

    after = wait_for(
        lambda: (sink := _sinks(api)["otlp"])["dropped"] > before["dropped"] and sink,
        what="the down OTLP sink to give up on a batch",
    )
    assert after["failed_attempts"] >= before["failed_attempts"] + 3  # retried, then dropped
    assert "HTTP 503" in after["last_error"]
    assert not any(_otlp_spans(otlp_down, job["id"]) for job in jobs)

    # Back up: new traces ship again.
    otlp_down.down = False
    job = _generate(api, prompt="Recovered. Shipping works again.")
    api.wait(job["id"])
    wait_for(lambda: _otlp_spans(otlp_down, job["id"]), what="a span once the sink is back")
