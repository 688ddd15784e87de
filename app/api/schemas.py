"""Request and response schemas; they also make the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import current_app
from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate
from marshmallow import validates_schema

from app import queues
from app.api import paging
from app.api import task_arguments
from app.api.notify import Notify
from app.models import Job
from app.models import JobAttempt
from app.models import JobState
from app.services.bulk_submit import MAX_BATCH

STATES = [state.value for state in JobState]
# The schema's bound; the configured TASK_MAX_COUNTDOWN (checked in the view) is lower.
MAX_COUNTDOWN = 2**31 - 1


class JobSubmitSchema(Schema):
    task = fields.String(required=True, validate=validate.Length(1, 200))
    args = fields.Dict(keys=fields.String(), load_default=dict)
    idempotency_key = fields.String(validate=validate.Length(1, 200))
    countdown = fields.Integer(
        strict=True,
        validate=validate.Range(0, MAX_COUNTDOWN),
        metadata={"description": "seconds to wait first; at most TASK_MAX_COUNTDOWN"},
    )
    priority = fields.Integer(
        strict=True,
        validate=validate.Range(0, 9),
        metadata={"description": "0-9, 9 is most urgent"},
    )
    notify = Notify()

    @validates_schema
    def _argument_types(self, data: dict[str, Any], **_kw: Any) -> None:
        task = current_app.extensions["celery"].tasks.get(data.get("task"))
        if task is not None and getattr(task, "public", False):
            task_arguments.check_types(task, data.get("args") or {})


class JobBatchSchema(Schema):
    # Nested(many=True) rather than List(Nested): one load over the items, not a load per
    # item (1,000 items: 22 -> 14 ms); the same document and the same per-index errors.
    jobs = fields.Nested(
        JobSubmitSchema,
        many=True,
        required=True,
        validate=validate.Length(1, MAX_BATCH),
        metadata={"description": f"1 to {MAX_BATCH} jobs, each as POST /jobs takes it"},
    )


class JobBatchItemSchema(Schema):
    id = fields.String()
    task = fields.String()
    queue = fields.String()
    state = fields.String(metadata={"enum": STATES})
    idempotency_key = fields.String(allow_none=True)
    created_at = fields.DateTime()
    replayed = fields.Boolean(
        metadata={"description": "its idempotency key named an earlier job, answered here"}
    )


class JobBatchAcceptedSchema(Schema):
    jobs = fields.List(
        fields.Nested(JobBatchItemSchema),
        metadata={"description": "one per submitted job, in the order submitted"},
    )


class ProgressSchema(Schema):
    current = fields.Integer(allow_none=True)
    total = fields.Integer(allow_none=True)
    message = fields.String(allow_none=True)


class ErrorSchema(Schema):
    type = fields.String()
    message = fields.String()


class AttemptSchema(Schema):
    number = fields.Integer()
    worker = fields.String(allow_none=True)
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    outcome = fields.String(
        allow_none=True,
        metadata={
            "description": "succeeded, failed, retrying, cancelled, or lost (its worker "
            "died); null while it runs"
        },
    )
    error = fields.Method("_error", allow_none=True, metadata={"type": "object"})

    def _error(self, attempt: JobAttempt) -> dict[str, Any] | None:
        if attempt.error_type is None:
            return None
        return {"type": attempt.error_type, "message": attempt.error_message}


class JobSchema(Schema):
    id = fields.String()
    task = fields.String()
    queue = fields.String()
    state = fields.String(metadata={"enum": STATES})
    args = fields.Dict()
    priority = fields.Integer(allow_none=True)
    eta = fields.DateTime(allow_none=True)
    progress = fields.Method("_progress", metadata={"type": "object"})
    result = fields.Raw(allow_none=True)
    error = fields.Method("_error", allow_none=True, metadata={"type": "object"})
    attempts = fields.Integer(metadata={"description": "how many attempts have started"})
    max_attempts = fields.Integer()
    attempt_log = fields.List(
        fields.Nested(AttemptSchema), metadata={"description": "every attempt, oldest first"}
    )
    worker = fields.String(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    cancel_requested = fields.Method("_cancel_requested", metadata={"type": "boolean"})
    parent_id = fields.String(allow_none=True)
    notify = fields.List(
        fields.String(),
        attribute="notify_to",
        allow_none=True,
        metadata={"description": "addresses sent the job_finished mail when the job finishes"},
    )
    trace_id = fields.String(allow_none=True)
    sentry_event_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()

    def _progress(self, job: Job) -> dict[str, Any]:
        return {
            "current": job.progress_current,
            "total": job.progress_total,
            "message": job.progress_message,
        }

    def _error(self, job: Job) -> dict[str, Any] | None:
        if job.error_type is None:
            return None
        return {"type": job.error_type, "message": job.error_message}

    def _cancel_requested(self, job: Job) -> bool:
        return job.cancel_requested_at is not None


class JobListQuerySchema(Schema):
    state = fields.String(validate=validate.OneOf(STATES))
    queue = fields.String(validate=validate.OneOf(list(queues.QUEUES)))
    task = fields.String(validate=validate.Length(1, 200))
    limit = paging.limit_field()
    cursor = paging.cursor_field()


# ?wait= is bounded: a long-poll holds a request slot (a greenlet) for its whole wait.
MAX_WAIT_SECONDS = 60


class JobGetQuerySchema(Schema):
    wait = fields.Float(
        validate=validate.Range(min=0, max=MAX_WAIT_SECONDS),
        metadata={
            "description": (
                "long-poll: answer as soon as the job is final (succeeded, failed or "
                f"cancelled), or after this many seconds (at most {MAX_WAIT_SECONDS}) with "
                "its state then; 0 or absent answers at once"
            )
        },
    )


class JobPageSchema(Schema):
    items = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.String(allow_none=True)


class ConsumerSchema(Schema):
    worker = fields.String()
    pool = fields.String(allow_none=True)
    concurrency = fields.Integer(allow_none=True)


class QueueStatusSchema(Schema):
    name = fields.String()
    profile = fields.String()
    pool = fields.String()
    waiting = fields.Integer(allow_none=True)
    oldest_waiting_age_seconds = fields.Float(allow_none=True)
    consumers = fields.Integer()
    workers = fields.List(fields.Nested(ConsumerSchema))


class QueuesSchema(Schema):
    queues = fields.List(fields.Nested(QueueStatusSchema))
