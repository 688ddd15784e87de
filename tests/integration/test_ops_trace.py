"""Every generation is traced after it ends: to the database, and as spans over OTLP to a
collector and to Langfuse's OTLP endpoint; a sink that is down is retried by Celery. The
record travels as a plain Celery message: no ledger row is ever made for it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from app.observability import redaction
from tests.support.api import Api
from tests.support.fake_openai import Reply
from tests.support.generation_stubs import GenerationStubs
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.otlp_receiver import Span
from tests.support.waiting import wait_for

STATUS_OK, STATUS_ERROR = 1, 2


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


def _span_of(receiver: OtlpReceiver, job_id: str) -> Span:
    spans = wait_for(lambda: receiver.of_job(job_id), what=f"a span of job {job_id}")
    return spans[0]


def _ship_jobs(api: Api) -> list[dict[str, Any]]:
    response = api.client.get(
        "/api/v1/jobs", query_string={"task": "ops_trace.ship", "limit": 100}, headers=api.auth
    )
    assert response.status_code == 200, response.get_json()
    return list(response.get_json()["items"])


@pytest.fixture
def otlp_down(generation_stubs: GenerationStubs) -> Iterator[OtlpReceiver]:
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
    assert secret not in content and redaction.FILTERED in content
    assert len(content) < 2100 and content.endswith("more chars]")  # TRACE_MAX_FIELD_CHARS

    span = _span_of(generation_stubs.otlp, job["id"])
    assert (span.name, span.status) == ("chat gpt-test", STATUS_OK)
    assert span.end_ns >= span.start_ns > 0
    assert span.attributes["gen_ai.request.model"] == "gpt-test"
    assert span.attributes["gen_ai.usage.output_tokens"] == 4

    generation = _span_of(generation_stubs.langfuse, job["id"])
    assert generation.trace_id == span.trace_id
    assert generation.attributes["langfuse.observation.type"] == "generation"
    assert generation.attributes["gen_ai.usage.input_tokens"] == 6
    assert "the answer is 42" in generation.attributes["langfuse.observation.output"]
    assert secret not in generation.attributes["langfuse.observation.input"]
    # Handed off as a plain message: the ledger holds no ship job.
    assert _ship_jobs(api) == []


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
    span = _span_of(generation_stubs.otlp, job["id"])
    assert span.status == STATUS_ERROR and "unsupported parameter" in span.status_message
    assert span.attributes["error.type"] == "ExpectedFailure"


def test_a_sink_that_is_down_never_fails_the_job_and_gets_the_span_once_back(
    api: Api, generation_stubs: GenerationStubs, otlp_down: OtlpReceiver
) -> None:
    job = _generate(api, prompt="Sentence one. Another one.")
    assert api.wait(job["id"])["state"] == "succeeded"
    _trace_of(api, job["id"])  # the database sink has it
    _span_of(generation_stubs.langfuse, job["id"])  # so has the sink that is up

    def back_after_two_refusals() -> bool:
        # Up again at once, so the ship's remaining tries (3 here) find it up.
        if otlp_down.refused >= 2:
            otlp_down.down = False
        return not otlp_down.down

    wait_for(back_after_two_refusals, what="the down collector to refuse the span twice")

    # The ship message was tried again (by the exporter, then by Celery, to the failed sink
    # only): the collector that is back gets the span, and Langfuse still holds it once.
    _span_of(otlp_down, job["id"])
    assert len(generation_stubs.langfuse.of_job(job["id"])) == 1
    assert len(_traces(api, job_id=job["id"])) == 1
    assert _ship_jobs(api) == []
