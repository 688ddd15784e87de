"""Generations: check a request, create its row, submit its job, and show it.

Where the work is (pending, streaming, succeeded, ...) is the job's state, never the row's:
the row holds the domain facts (what was asked, the text, usage, timings). The streaming
itself is in `streaming.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from datetime import datetime
from typing import Any

import redis
from celery import Celery
from sqlalchemy import delete
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.generation import Generation
from app.services import jobs
from app.services.errors import JobError
from app.services.generation import store
from app.services.generation.providers.registry import registry

# Re-exported: the API maps it onto the 404 of a generation in another project.
from app.services.generation.streaming import GenerationNotFound as GenerationNotFound
from app.services.jobs import Submission
from config import Settings

TASK = "generation.complete"
# Keys the API sets itself; a caller's `parameters` may not override them.
RESERVED_PARAMETERS = frozenset({"model", "messages", "stream", "stream_options"})


@dataclass(frozen=True)
class GenerationRequest:
    provider: str
    model: str
    messages: list[dict[str, Any]]
    parameters: dict[str, Any]


class InvalidGeneration(JobError):
    status = 422
    title = "Invalid generation request"


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
    generation = db.session.scalars(select(Generation).filter_by(job_id=job_id)).one_or_none()
    if generation is None:
        raise GenerationNotFound(f"no generation with job id {job_id!r}")
    return generation


@dataclass(frozen=True)
class GenerationView:
    """What GET /generations/{job_id} shows: the row, its job's state, the live text."""

    id: str
    job_id: str | None
    provider: str
    model: str
    status: str
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    usage_estimated: bool
    latency_ms: float | None
    first_token_ms: float | None
    error: str | None
    created_at: datetime
    updated_at: datetime


def describe(job_id: str, redis_client: redis.Redis) -> GenerationView:
    """The generation of `job_id`; while its job runs, with the text so far from Redis."""
    g = get_by_job(job_id)
    text, tokens = g.text, g.completion_tokens
    if g.job is not None and g.job.state in (JobState.STARTED, JobState.RETRYING):
        # The row gets the text only every few seconds while streaming; Redis has it all.
        live = store.live_read(redis_client, g.id)
        if live is not None and len(live[0]) >= len(text or ""):
            text, tokens = live
    # Every other field is the row's own.
    names = [f.name for f in fields(GenerationView) if f.name not in ("text", "completion_tokens")]
    return GenerationView(
        text=text, completion_tokens=tokens, **{name: getattr(g, name) for name in names}
    )
