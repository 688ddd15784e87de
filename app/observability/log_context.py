"""A logging filter that puts the trace id and, inside a task, the job id and queue on
every record, so a log line can be joined to its trace, its Sentry event and its job."""

from __future__ import annotations

import logging

from celery import current_task
from opentelemetry import trace
from opentelemetry.trace import format_span_id
from opentelemetry.trace import format_trace_id

FIELDS = ("trace_id", "span_id", "job_id", "queue", "task")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        trace_id = format_trace_id(context.trace_id) if context.is_valid else None
        span_id = format_span_id(context.span_id) if context.is_valid else None
        job_id = queue = task_name = None
        task = current_task
        request = getattr(task, "request", None) if task else None
        if getattr(request, "id", None) and not getattr(request, "called_directly", True):
            delivery = getattr(request, "delivery_info", None) or {}
            job_id = request.id  # type: ignore[union-attr]
            queue = delivery.get("routing_key")
            task_name = task.name
        record.trace_id = trace_id
        record.span_id = span_id
        record.job_id = job_id
        record.queue = queue
        record.task = task_name
        parts = [
            f"{label}={value}"
            for label, value in (("trace", trace_id), ("job", job_id), ("queue", queue))
            if value
        ]
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True
