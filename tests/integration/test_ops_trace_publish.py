"""The trace hand-off builds its record from the after-run hook's context alone and sends it
as a plain Celery message: no ledger row, no re-read. Without a broker it never raises and
keeps the database sink's copy; with one, a worker ships the span into the run's trace."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Task
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import select

from app import create_app
from app.extensions.ext_database import db
from app.hooks import Outcome
from app.models import Job
from app.models import JobState
from app.models.trace import Trace
from app.observability import redaction
from app.services import tracing
from app.tasking import ATTEMPT
from tests.conftest import make_settings
from tests.support.generation_stubs import GenerationStubs
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

SECRET = "sk-live-" + "f00dfeed" * 4
RESULT = {"provider": "fake", "model": "gpt-test", "text": "hi", "usage": {"prompt_tokens": 3}}


@pytest.fixture
def app_without_broker(app: Flask, base_settings: dict[str, Any]) -> Iterator[Flask]:
    # Same database; the broker is a port nothing listens on.
    broken = create_app(
        make_settings(
            base_settings, CELERY_BROKER_URL="redis://127.0.0.1:9/0", LEDGER_RELAY_IN_API=False
        )
    )
    try:
        yield broken
    finally:
        app.extensions["celery"].set_default()


def _outcome(app: Flask, job_id: str) -> Outcome:
    """What the task base hands its hooks after a generation succeeded, in its worker."""
    task: Task = app.extensions["celery"].tasks["generation.complete"]
    task.push_request(id=job_id, args=[], kwargs={"generation_id": f"g {SECRET}"})
    setattr(task.request, ATTEMPT, 2)
    return Outcome(task, job_id, JobState.SUCCEEDED, result=RESULT)


def _hand_off_in_a_run_span(app: Flask, job_id: str) -> tuple[bool, str, str]:
    outcome = _outcome(app, job_id)
    run_span = TracerProvider().get_tracer("test").start_as_current_span("run")
    try:
        with run_span as run:
            sent = tracing.hand_off(outcome)
    finally:
        outcome.task.pop_request()
    ids = run.get_span_context()
    return sent, f"{ids.trace_id:032x}", f"{ids.span_id:016x}"


@contextmanager
def _statements(app: Flask) -> Iterator[list[str]]:
    """The SQL statements both engines (the app's and the ledger's) run inside the block,
    on this thread: the outbox relay's thread in this process runs its own claims at any
    moment (one landed inside the block in a run under a CPU hog)."""
    seen: list[str] = []
    here = threading.get_ident()

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() == here:
            seen.append(statement)

    engines = [db.engine, app.extensions["ledger_engine"]]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)


def _ship_rows() -> int:
    return int(db.session.scalar(select(func.count()).where(Job.task == "ops_trace.ship")) or 0)


def test_without_a_broker_the_hand_off_keeps_the_database_copy_and_never_raises(
    app_without_broker: Flask,
) -> None:
    job_id = str(uuid.uuid4())
    with app_without_broker.app_context():
        # The traced job has no row at all: the hand-off never needed one.
        sent, _trace_id, _span_id = _hand_off_in_a_run_span(app_without_broker, job_id)
        assert sent is False
        [stored] = db.session.scalars(select(Trace).where(Trace.job_id == job_id))
        assert (stored.operation, stored.status) == ("generation.complete", "succeeded")
        assert (stored.attempt, stored.provider, stored.prompt_tokens) == (2, "fake", 3)
        assert SECRET not in str(stored.inputs) and redaction.FILTERED in str(stored.inputs)
        assert _ship_rows() == 0


def test_a_worker_ships_the_handed_off_record_into_the_run_span(
    app: Flask, generation_stubs: GenerationStubs, workers: dict[str, WorkerProcess]
) -> None:
    job_id = str(uuid.uuid4())
    with app.app_context():
        _hand_off_in_a_run_span(app, str(uuid.uuid4()))  # warm: the broker connection
        with _statements(app) as statements:
            sent, trace_id, span_id = _hand_off_in_a_run_span(app, job_id)
        assert sent is True
        # The hand-off neither reads the job nor writes a row: not one statement.
        assert statements == []
        [span] = wait_for(
            lambda: generation_stubs.otlp.of_job(job_id), what=f"the span of job {job_id}"
        )
        assert (span.trace_id, span.parent_span_id) == (trace_id, span_id)
        assert (span.name, span.attributes["tasklane.attempt"]) == ("chat gpt-test", 2)
        assert span.attributes["gen_ai.usage.input_tokens"] == 3
        assert SECRET not in span.attributes["langfuse.observation.input"]
        # No ledger row, neither for the ship message nor re-read for the traced job.
        assert _ship_rows() == 0
