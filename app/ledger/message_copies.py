"""Many messages of one shape: Celery builds the first whole, the others are its copies.

Celery's `apply_async` costs about 200 us per message (option merging, routing, the
protocol-2 headers, kombu's retry wrapper): 43 % of a 1,000-job `POST /jobs/batch`
(cProfile), four times what kombu's own publish of the same messages costs. Jobs of a batch
that share task, queue, priority and headers differ only in their id and arguments, so the
first of each shape goes through `apply_async` (signals, tracing headers, time limits,
routing, all as Celery does them) on a recording producer, and the others reuse the message
it published with their own id, `root_id`, `kwargsrepr`, `correlation_id` and kwargs.

A message Celery builds in a way this does not know (a header that carries the id under
another name, positional args, a task-sent event published with it) is not copied: each
such job goes through `apply_async` whole. tests/unit/test_message_copies.py compares the
copies with what `apply_async` publishes for the same jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from celery.utils.saferepr import saferepr
from kombu import Producer

# What names a job's id in a message Celery builds for a top-level job; anything else that
# equals the id means the message is not understood here, and is not copied.
ID_HEADERS = frozenset({"id", "root_id"})
ID_PROPERTIES = frozenset({"correlation_id"})

Shape = tuple[str, str, int | None, bool]


def shape_of(job: dict[str, Any]) -> Shape | None:
    """What a job's message depends on besides its id and arguments; None: not copyable
    (an `eta` is computed per job)."""
    if job.get("eta") is not None:
        return None
    return (job["task"], job["queue"], job.get("priority"), bool(job.get("notify_to")))


class _Recording:
    """The producer Celery publishes the first message of a shape on: it passes each
    publish on to the real producer and keeps what was published."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self.published: list[tuple[Any, dict[str, Any]]] = []

    def publish(self, body: Any, **kwargs: Any) -> Any:
        self.published.append((body, kwargs))
        return self._producer.publish(body, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


@dataclass(frozen=True)
class _Template:
    headers: dict[str, Any]
    embed: Any
    options: dict[str, Any]
    root_is_id: bool

    @classmethod
    def of(cls, recording: _Recording, job: dict[str, Any]) -> _Template | None:
        if len(recording.published) != 1:
            return None  # a task-sent event went with it
        body, kwargs = recording.published[0]
        job_id = job["id"]
        headers = dict(kwargs.get("headers") or {})
        if not (isinstance(body, tuple | list) and len(body) == 3):
            return None
        args, job_kwargs, embed = body
        if args or job_kwargs != (job["args"] or {}) or headers.get("id") != job_id:
            return None
        if any(v == job_id for k, v in headers.items() if k not in ID_HEADERS):
            return None
        options = {k: v for k, v in kwargs.items() if k != "headers"}
        if any(v == job_id for k, v in options.items() if k not in ID_PROPERTIES):
            return None
        if options.get("correlation_id") != job_id:
            return None
        # Inside a batch kombu only buffers; the flush is what can fail (BatchPublishError).
        options["retry"] = False
        return cls(headers, embed, options, root_is_id=headers.get("root_id") == job_id)

    def message(self, job: dict[str, Any], kwargsrepr: str) -> tuple[Any, dict[str, Any]]:
        job_id = job["id"]
        headers = {**self.headers, "id": job_id, "kwargsrepr": kwargsrepr}
        if self.root_is_id:
            headers["root_id"] = job_id
        return ((), job["args"] or {}, self.embed), {
            **self.options,
            "headers": headers,
            "correlation_id": job_id,
        }


class Copies:
    """One batch's publishes on `producer`: whole for the first job of a shape, copied for
    the rest."""

    def __init__(self, celery_app: Celery, producer: Producer) -> None:
        self.producer = producer
        # A task-sent event is built per message beside it; with events on, no copies.
        self.enabled = not celery_app.conf.task_send_sent_event
        self.maxsize = celery_app.amqp.kwargsrepr_maxsize
        self.maxlevels = celery_app.conf.task_repr_maxlevels
        self.templates: dict[Shape, _Template | None] = {}

    def publish(self, job: dict[str, Any], whole: Callable[..., None]) -> None:
        """Publish `job`: a copy when its shape has a template, else `whole(producer=...)`."""
        shape = shape_of(job) if self.enabled else None
        template = self.templates.get(shape) if shape is not None else None
        if template is not None:
            kwargsrepr = saferepr(job["args"] or {}, self.maxsize, maxlevels=self.maxlevels)
            body, options = template.message(job, kwargsrepr)
            self.producer.publish(body, **options)
        elif shape is None or shape in self.templates:
            whole(producer=self.producer)  # not copyable
        else:
            recording = _Recording(self.producer)
            whole(producer=recording)
            self.templates[shape] = _Template.of(recording, job)
