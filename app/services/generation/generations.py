"""Generations: create the request row, submit its job, and stream the answer into it.

The answer streams into the `generations` row (the whole text so far) and into the job's
progress (token count and the text's tail), at most every GENERATION_PROGRESS_INTERVAL
seconds, so a fast stream does not hammer the database. Whatever ends the stream early -
a cancel, a provider error, the deadline - the partial text is kept.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import delete

from app.extensions.ext_database import db
from app.models import Job
from app.models.generation import Generation
from app.services import jobs
from app.services.errors import JobError
from app.services.generation.cancel import interrupt_on_cancel
from app.services.generation.providers.base import ChatRequest
from app.services.generation.providers.base import Delta
from app.services.generation.providers.registry import registry
from app.services.jobs import Submission
from app.tasking import JobCancelled
from config import Settings

TASK = "generation.complete"
PROGRESS_MESSAGE_CHARS = 500
# How often a silent stream checks for a cancel: well within the promised second.
CANCEL_POLL_INTERVAL = 0.5
# Keys the API sets itself; a caller's `parameters` may not override them.
RESERVED_PARAMETERS = frozenset({"model", "messages", "stream", "stream_options"})

Reporter = Callable[[int, int | None, str | None], None]


class InvalidGeneration(JobError):
    status = 422
    title = "Invalid generation request"


class GenerationNotFound(JobError):
    status = 404
    title = "Generation not found"


@dataclass(frozen=True)
class GenerationRequest:
    provider: str
    model: str
    messages: list[dict[str, Any]]
    parameters: dict[str, Any]


def build_request(settings: Settings, body: dict[str, Any]) -> GenerationRequest:
    """Check a request body against the configured providers; 422 on anything unusable."""
    messages = body.get("messages")
    prompt = body.get("prompt")
    if (messages is None) == (prompt is None):
        raise InvalidGeneration("send exactly one of `messages` and `prompt`")
    if prompt is not None:
        messages = [{"role": "user", "content": prompt}]
    parameters = dict(body.get("parameters") or {})
    reserved = sorted(RESERVED_PARAMETERS & parameters.keys())
    if reserved:
        raise InvalidGeneration(f"parameters may not set {', '.join(reserved)}")
    providers = registry(settings)
    provider = body.get("provider", "offline")
    model = body.get("model")
    if model is None:
        offered = providers.models(provider)
        if len(offered) != 1:
            raise InvalidGeneration(f"name a `model` for provider {provider!r}")
        model = offered[0]
    providers.resolve(provider, model)
    return GenerationRequest(provider, model, list(messages or []), parameters)


def create(requests: list[GenerationRequest]) -> list[Generation]:
    """Commit the generation rows; their jobs are submitted after, so a task finds its row."""
    rows = [
        Generation(provider=r.provider, model=r.model, messages=r.messages, parameters=r.parameters)
        for r in requests
    ]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def discard(generation_ids: list[str]) -> None:
    """Remove rows whose job could not be submitted."""
    db.session.rollback()
    db.session.execute(delete(Generation).where(Generation.id.in_(generation_ids)))
    db.session.commit()


def submit_job(
    celery_app: Celery,
    generation: Generation,
    *,
    broker_timeout: float,
    api_key_id: int | None = None,
    parent_id: str | None = None,
    idempotency_key: str | None = None,
    task: str = TASK,
    extra_args: dict[str, Any] | None = None,
    notify_to: list[str] | None = None,
) -> Job:
    """Submit the job of a committed generation row and link the two."""
    job, _created = jobs.submit(
        celery_app,
        Submission(
            task=task,
            args={"generation_id": generation.id, **(extra_args or {})},
            api_key_id=api_key_id,
            parent_id=parent_id,
            idempotency_key=idempotency_key,
            notify_to=notify_to,
        ),
        broker_timeout=broker_timeout,
    )
    generation.job_id = job.id
    db.session.commit()
    return job


def submit(
    celery_app: Celery,
    request: GenerationRequest,
    *,
    broker_timeout: float,
    api_key_id: int | None = None,
    notify_to: list[str] | None = None,
) -> Job:
    """Commit the generation row, then submit its job (which commits before publishing)."""
    [generation] = create([request])
    try:
        return submit_job(
            celery_app,
            generation,
            broker_timeout=broker_timeout,
            api_key_id=api_key_id,
            notify_to=notify_to,
        )
    except JobError:
        discard([generation.id])
        raise


def get_by_job(job_id: str) -> Generation:
    generation = db.session.query(Generation).filter_by(job_id=job_id).one_or_none()
    if generation is None:
        raise GenerationNotFound(f"no generation with job id {job_id!r}")
    return generation


def _tail(text: str) -> str | None:
    if not text:
        return None
    if len(text) <= PROGRESS_MESSAGE_CHARS:
        return text
    return "…" + text[-(PROGRESS_MESSAGE_CHARS - 1) :]


def _estimate_tokens(messages: list[dict[str, Any]]) -> int:
    # The common rule of thumb of four characters a token; only used when the provider
    # reports no usage, and flagged as an estimate.
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return math.ceil(chars / 4)


class _Stream:
    """The state of one attempt: text so far, counts and timings."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.parts: list[str] = []
        self.chunks = 0
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.finish_reason: str | None = None
        self.started = time.monotonic()
        self.first_token_ms: float | None = None

    def add(self, delta: Delta) -> None:
        if delta.text:
            if self.first_token_ms is None:
                self.first_token_ms = (time.monotonic() - self.started) * 1000
            self.parts.append(delta.text)
            self.chunks += 1
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.prompt_tokens is not None:
            self.prompt_tokens = delta.prompt_tokens
        if delta.completion_tokens is not None:
            self.completion_tokens = delta.completion_tokens

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def tokens(self) -> int:
        return self.completion_tokens if self.completion_tokens is not None else self.chunks

    def save(self, status: str, error: str | None = None) -> None:
        g = self.generation
        g.text = self.text
        g.status = status
        g.error = error
        g.finish_reason = self.finish_reason
        g.usage_estimated = self.completion_tokens is None
        g.completion_tokens = self.tokens
        g.prompt_tokens = (
            self.prompt_tokens if self.prompt_tokens is not None else _estimate_tokens(g.messages)
        )
        g.first_token_ms = self.first_token_ms
        g.latency_ms = (time.monotonic() - self.started) * 1000
        db.session.commit()


def run(
    generation_id: str, settings: Settings, report: Reporter, job_id: str | None = None
) -> dict[str, Any]:
    """Stream the generation's answer; returns the job result. Provider errors propagate."""
    generation = db.session.get(Generation, generation_id)
    if generation is None:
        raise GenerationNotFound(f"no generation {generation_id!r}")
    if generation.status == "succeeded":
        # A redelivered message: the answer is already complete.
        return result(generation)
    provider = registry(settings).resolve(generation.provider, generation.model)
    generation.status = "streaming"
    generation.text = ""
    generation.error = None
    db.session.commit()
    stream = _Stream(generation)
    max_tokens = generation.parameters.get("max_tokens")
    total = max_tokens if isinstance(max_tokens, int) else None
    interval = settings.generation.progress_interval
    last_report = time.monotonic()
    request = ChatRequest(generation.model, generation.messages, generation.parameters)
    try:
        with (
            interrupt_on_cancel(job_id, max(interval, CANCEL_POLL_INTERVAL)) as watch,
            contextlib.closing(provider.stream(request)) as deltas,
        ):
            while True:
                watch.reading = True
                try:
                    delta = next(deltas, None)
                finally:
                    watch.reading = False
                if delta is None:
                    break
                stream.add(delta)
                if time.monotonic() - last_report >= interval:
                    stream.save("streaming")
                    report(stream.tokens, total, _tail(stream.text))
                    last_report = time.monotonic()
                    watch.touch()
    except JobCancelled:
        _save_quietly(stream, "cancelled", "cancelled while streaming")
        raise
    except BaseException as exc:
        _save_quietly(stream, "failed", f"{type(exc).__name__}: {exc}")
        raise
    stream.save("succeeded")
    report(stream.tokens, total, _tail(stream.text))
    return result(generation)


def _save_quietly(stream: _Stream, status: str, error: str) -> None:
    # Keeping the partial text must never hide the error that ended the stream.
    try:
        db.session.rollback()
        stream.save(status, error)
    except Exception:
        db.session.rollback()


def result(generation: Generation) -> dict[str, Any]:
    prompt = generation.prompt_tokens or 0
    completion = generation.completion_tokens or 0
    return {
        "generation_id": generation.id,
        "provider": generation.provider,
        "model": generation.model,
        "text": generation.text,
        "finish_reason": generation.finish_reason,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "estimated": generation.usage_estimated,
        },
        "latency_ms": generation.latency_ms,
        "first_token_ms": generation.first_token_ms,
    }


def trace_details(job_id: str) -> dict[str, Any]:
    """What a generation's trace adds to the ledger's view: model, tokens, prompt, text."""
    generation = db.session.query(Generation).filter_by(job_id=job_id).one_or_none()
    if generation is None:
        return {}
    return {
        "provider": generation.provider,
        "model": generation.model,
        "prompt_tokens": generation.prompt_tokens,
        "completion_tokens": generation.completion_tokens,
        "latency_ms": generation.latency_ms,
        "inputs": {"messages": generation.messages, "parameters": generation.parameters},
        "outputs": {"text": generation.text, "finish_reason": generation.finish_reason},
    }
