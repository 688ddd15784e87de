"""Streaming one attempt of a generation: the provider's deltas into Redis, then the row.

A run costs two statements of its own, whatever the stream's length up to
GENERATION_DB_WRITE_INTERVAL: it reads its row once and writes its outcome once (the ledger
adds one to start the job and one to finish it). While tokens flow, the text so far goes to
Redis every GENERATION_PROGRESS_INTERVAL from the first token (the API reads it there while
the job runs); the database gets the text and the job its progress only every
GENERATION_DB_WRITE_INTERVAL seconds of a long stream, which is also when a progress write
notices a cancel. Under gevent
a watcher notices a cancel in between (app/services/generation/cancel.py); elsewhere the loop
asks the ledger every CANCEL_POLL_INTERVAL. Whatever ends the stream early - a cancel, a
provider error, the deadline - the partial text is kept.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import current_app

from app.ledger import transitions as ledger
from app.ledger.execute import ledger_engine
from app.services import tracing
from app.services.errors import JobError
from app.services.generation import store
from app.services.generation.cancel import interrupt_on_cancel
from app.services.generation.providers.base import ChatRequest
from app.services.generation.providers.base import Delta
from app.services.generation.providers.registry import registry
from app.services.generation.store import Facts
from app.tasking import JobCancelled
from config import Settings

log = logging.getLogger(__name__)

PROGRESS_MESSAGE_CHARS = 500
# How often a stream checks for a cancel when nothing else does: well within the promised
# second.
CANCEL_POLL_INTERVAL = 0.5
Reporter = Callable[[int, int | None, str | None], None]


class GenerationNotFound(JobError):
    status = 404
    title = "Generation not found"


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

    def __init__(self) -> None:
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

    def outcome(self, facts: Facts, error: str | None) -> Facts:
        return facts.with_outcome(
            text=self.text,
            error=error,
            finish_reason=self.finish_reason,
            usage_estimated=self.completion_tokens is None,
            completion_tokens=self.tokens,
            prompt_tokens=(
                self.prompt_tokens
                if self.prompt_tokens is not None
                else _estimate_tokens(facts.messages)
            ),
            first_token_ms=self.first_token_ms,
            latency_ms=(time.monotonic() - self.started) * 1000,
        )


def run(
    generation_id: str,
    settings: Settings,
    report: Reporter,
    job_id: str | None = None,
    *,
    messages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Stream the generation's answer; returns the job result. Provider errors propagate.

    `messages` replaces the stored ones (an answer composes them from its sources); they
    are stored with the outcome.
    """
    engine = ledger_engine()
    facts = store.load(engine, generation_id)
    if facts is None:
        raise GenerationNotFound(f"no generation {generation_id!r}")
    if facts.complete:
        # A redelivered message: the answer is already complete.
        return result(facts)
    if messages is not None:
        facts = facts.with_outcome(messages=messages)
    provider = registry(settings).resolve(facts.provider, facts.model)
    redis_client = current_app.extensions["redis"]
    stream = _Stream()
    max_tokens = facts.parameters.get("max_tokens")
    total = max_tokens if isinstance(max_tokens, int) else None
    live_every = settings.generation.progress_interval
    db_every = settings.generation.db_write_interval
    next_live: float | None = None
    next_db = stream.started + db_every
    next_cancel_check = stream.started + CANCEL_POLL_INTERVAL
    request = ChatRequest(facts.model, facts.messages, facts.parameters)
    error: str | None = None
    try:
        with (
            interrupt_on_cancel(job_id, CANCEL_POLL_INTERVAL) as watch,
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
                now = time.monotonic()
                if next_live is None and stream.first_token_ms is not None:
                    # Counted from the first token: a reader sees nothing before it, and a
                    # short answer is over before anyone could read it live.
                    next_live = now + live_every
                if next_live is not None and now >= next_live:
                    store.live_write(redis_client, generation_id, stream.text, stream.tokens)
                    next_live = now + live_every
                if now >= next_db:
                    store.save_partial(engine, generation_id, stream.text, stream.tokens)
                    # Raises JobCancelled once a cancel was requested.
                    report(stream.tokens, total, _tail(stream.text))
                    watch.touch()
                    next_db = next_cancel_check = now + db_every
                elif job_id and not watch.polling and now >= next_cancel_check:
                    if ledger.cancel_requested(job_id):
                        raise JobCancelled(f"job {job_id} was cancelled")
                    next_cancel_check = now + CANCEL_POLL_INTERVAL
    except JobCancelled:
        error = "cancelled while streaming"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        facts = stream.outcome(facts, error)
        _save(engine, facts, messages is not None, settings, quietly=error is not None)
        # What this run's trace shows beside the job's result (app/services/tracing).
        tracing.note(**trace_facts(facts))
    return result(facts)


def _save(engine: Any, facts: Facts, messages: bool, settings: Settings, *, quietly: bool) -> None:
    durable = bool(settings.ledger.synchronous_commit)
    if not quietly:
        store.save(engine, facts, messages=messages, durable=durable)
        return
    # Keeping the partial text must never hide the error that ended the stream.
    try:
        store.save(engine, facts, messages=messages, durable=durable)
    except Exception:
        log.warning("could not keep the partial text of generation %s", facts.id, exc_info=True)


def trace_facts(facts: Facts) -> dict[str, Any]:
    return {
        "provider": facts.provider,
        "model": facts.model,
        "prompt_tokens": facts.prompt_tokens,
        "completion_tokens": facts.completion_tokens,
        "latency_ms": facts.latency_ms,
        "inputs": {"messages": facts.messages, "parameters": facts.parameters},
        "outputs": {"text": facts.text, "finish_reason": facts.finish_reason},
    }


def result(facts: Facts) -> dict[str, Any]:
    prompt = facts.prompt_tokens or 0
    completion = facts.completion_tokens or 0
    return {
        "generation_id": facts.id,
        "provider": facts.provider,
        "model": facts.model,
        "text": facts.text,
        "finish_reason": facts.finish_reason,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "estimated": facts.usage_estimated,
        },
        "latency_ms": facts.latency_ms,
        "first_token_ms": facts.first_token_ms,
    }
