"""A generation's ops_trace spans join the trace of the request that submitted it: the same
trace id as the job row and the API's request span, parented on the task's run span, at
the OTLP collector and at Langfuse's OTLP endpoint alike. The provider call's HTTP span
(the `openai` package's httpx2 client, instrumented) is a child of the run span too."""

from __future__ import annotations

import uuid

import pytest

from tests.support.fake_openai import Reply
from tests.support.generation_stubs import GenerationStubs
from tests.support.observability import Stack
from tests.support.otlp_receiver import Span
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
CLIENT = 3  # OTLP's SpanKind: 3 is a client span


def test_ops_trace_spans_join_the_jobs_trace(
    observability_stack: Stack, generation_stubs: GenerationStubs
) -> None:
    stack = observability_stack
    marker = f"otel-trace-{uuid.uuid4().hex[:8]}"
    generation_stubs.openai.script(marker, Reply(text="traced all the way"))

    reply = stack.request(
        "POST", "/api/v1/generations", {"provider": "fake", "model": "gpt-test", "prompt": marker}
    )
    assert reply.status == 202, reply.body
    trace_id = reply.headers["traceresponse"].split("-")[1]
    job_id = reply.body["id"]
    assert stack.wait(job_id)["state"] == "succeeded"
    assert stack.job(job_id)["trace_id"] == trace_id

    def run_span() -> Span | None:
        spans = stack.otlp.trace(trace_id)
        names = {s.name for s in spans}
        if "POST /api/v1/generations" not in names:
            return None
        return next((s for s in spans if s.name == "run/generation.complete"), None)

    run = wait_for(run_span, what=f"the request and run spans of trace {trace_id}")

    def llm_call() -> Span | None:
        spans = stack.otlp.trace(trace_id)
        return next((s for s in spans if s.name == "POST" and s.kind == CLIENT), None)

    http = wait_for(llm_call, what=f"the provider call's HTTP span in trace {trace_id}")
    assert http.parent_span_id == run.span_id
    url = http.attributes.get("url.full") or http.attributes.get("http.url")
    assert str(url).endswith("/v1/chat/completions")
    for receiver in (generation_stubs.otlp, generation_stubs.langfuse):
        spans = wait_for(
            lambda r=receiver: r.of_job(job_id), what=f"the ops_trace span of {job_id}"
        )
        [span] = spans
        assert (span.trace_id, span.parent_span_id) == (trace_id, run.span_id)
        assert span.name == "chat gpt-test"
        assert span.attributes["gen_ai.request.model"] == "gpt-test"
