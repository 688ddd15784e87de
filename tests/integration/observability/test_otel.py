"""OpenTelemetry from real processes: one trace from the HTTP request through the publish
into prefork and gevent workers and a chord's callback; the ledger and the response name
it; metrics and logs carry it. Spans go over OTLP/HTTP to a local protobuf receiver."""

from __future__ import annotations

import json

import pytest

from tests.support.observability import Stack
from tests.support.otlp_receiver import Span
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SERVER, PRODUCER, CONSUMER = 2, 4, 5  # OTLP's Span.SpanKind values


def _trace_id_from_header(value: str) -> str:
    version, trace_id, _span_id, _flags = value.split("-")
    assert version == "00"
    return trace_id


def _one(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_one_trace_from_request_to_prefork_gevent_and_chord_callback(
    observability_stack: Stack,
) -> None:
    stack = observability_stack
    reply = stack.submit("obs.fan_out", parts=3)
    trace_id = _trace_id_from_header(reply.headers["traceresponse"])
    job_id = reply.body["id"]
    assert reply.body["trace_id"] == trace_id
    assert stack.wait(job_id)["state"] == "succeeded"

    def complete() -> list[Span]:
        spans = stack.otlp.trace(trace_id)
        names = [s.name for s in spans]
        done = names.count("run/obs.part") == 3 and "run/obs.gather" in names
        return spans if done and "POST /api/v1/jobs" in names else []

    spans = wait_for(complete, timeout=30, what=f"the spans of trace {trace_id}")
    by_id = {s.span_id: s for s in spans}

    request = _one(spans, "POST /api/v1/jobs")
    assert (request.kind, request.service, request.parent_span_id) == (SERVER, "tasklane-api", "")
    publish = _one(spans, "apply_async/obs.fan_out")
    assert (publish.kind, publish.service) == (PRODUCER, "tasklane-api")
    assert publish.parent_span_id == request.span_id
    run = _one(spans, "run/obs.fan_out")
    assert (run.kind, run.service) == (CONSUMER, "tasklane-worker")
    assert run.parent_span_id == publish.span_id

    # The chord's parts ran on the gevent worker, each under a publish made by the task.
    parts = [s for s in spans if s.name == "run/obs.part"]
    for part in parts:
        part_publish = by_id[part.parent_span_id]
        assert part_publish.name == "apply_async/obs.part"
        assert part_publish.parent_span_id == run.span_id
    # The callback was published by whichever part finished last.
    gather = _one(spans, "run/obs.gather")
    gather_publish = by_id[gather.parent_span_id]
    assert gather_publish.name == "apply_async/obs.gather"
    assert by_id[gather_publish.parent_span_id] in parts
    assert {s.resource["process.pid"] for s in parts}.isdisjoint(
        {run.resource["process.pid"], gather.resource["process.pid"]}
    )


def test_database_and_broker_calls_are_spans_of_the_trace(observability_stack: Stack) -> None:
    stack = observability_stack
    reply = stack.submit("tests.echo", value=2)
    trace_id = _trace_id_from_header(reply.headers["traceresponse"])
    stack.wait(reply.body["id"])

    def kinds() -> set[str]:
        systems = {
            str(s.attributes.get("db.system") or s.attributes.get("db.system.name"))
            for s in stack.otlp.trace(trace_id)
        }
        return systems if {"redis"} <= systems and systems & {"postgresql", "sqlite"} else set()

    wait_for(kinds, timeout=30, what=f"database and Redis spans in trace {trace_id}")


def test_job_metrics_are_exported_per_queue_and_task(observability_stack: Stack) -> None:
    stack = observability_stack
    stack.wait(stack.submit("tests.echo", value=3).body["id"])
    stack.wait(stack.submit("tests.fail", message="metrics").body["id"])

    def seen(name: str, task: str) -> bool:
        return any(
            p.name == name and p.attributes.get("task") == task and p.value >= 1
            for p in stack.otlp.points
        )

    wanted = [
        ("tasklane.jobs.started", "tests.echo"),
        ("tasklane.jobs.succeeded", "tests.echo"),
        ("tasklane.jobs.failed", "tests.fail"),
        ("tasklane.jobs.run_time", "tests.echo"),
        ("tasklane.jobs.wait_time", "tests.echo"),
    ]
    for name, task in wanted:
        wait_for(lambda name=name, task=task: seen(name, task), timeout=30, what=name)
    point = next(p for p in stack.otlp.points if p.name == "tasklane.jobs.started")
    assert point.service == "tasklane-worker"
    assert set(point.attributes) == {"queue", "task"}


def test_prometheus_endpoint_shows_queue_depth(observability_stack: Stack) -> None:
    reply = observability_stack.request("GET", "/metrics")
    assert reply.status == 200
    depth = [line for line in reply.body.splitlines() if line.startswith("tasklane_queue_depth")]
    assert {line.split('queue="')[1].split('"')[0] for line in depth} >= {"dataset", "mail"}


def test_task_log_lines_carry_trace_and_job_ids(observability_stack: Stack) -> None:
    stack = observability_stack
    reply = stack.submit("obs.fan_out", parts=1)
    trace_id = _trace_id_from_header(reply.headers["traceresponse"])
    job_id = reply.body["id"]
    stack.wait(job_id)

    def line() -> dict[str, object] | None:
        for raw in stack.logs(stack.processes["cpu"].log_path.stem).splitlines():
            if raw.startswith("{") and job_id in raw:
                record = json.loads(raw)
                if record["message"] == "fanning out into 1 parts":
                    return dict(record)
        return None

    record = wait_for(line, timeout=15, what=f"the task's log line for job {job_id}")
    assert record["trace_id"] == trace_id
    assert record["job_id"] == job_id
    assert record["queue"] == "dataset"
    assert record["task"] == "obs.fan_out"
