"""Process-wide logging: level and format (text or JSON) from settings.

Every line carries the trace id and, inside a task, the job id, queue and task name, so a
line can be joined to its trace, its Sentry event and its ledger row.
"""

from __future__ import annotations

import logging

from flask import Flask
from pythonjsonlogger.json import JsonFormatter

from app.observability import redaction
from app.observability.log_context import ContextFilter
from config import Settings
from config import settings_of

# `context` is " [trace=… job=… queue=…]" with only the ids the line has, or empty.
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
JSON_FIELDS = [
    "asctime",
    "levelname",
    "name",
    "message",
    "process",
    "trace_id",
    "span_id",
    "job_id",
    "queue",
    "task",
]


def formatter(settings: Settings) -> logging.Formatter:
    if settings.observability.log_format == "json":
        return JsonFormatter(JSON_FIELDS, rename_fields={"levelname": "level", "asctime": "time"})
    return logging.Formatter(TEXT_FORMAT)


def init_app(app: Flask) -> None:
    settings: Settings = settings_of(app)
    root = logging.getLogger()
    if not root.handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(formatter(settings))
        root.addHandler(stream)
    redaction.configure(settings)
    for handler in root.handlers:
        # Once per handler: the factory may run more than once in a process (tests).
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
        if not any(isinstance(f, redaction.RedactingFilter) for f in handler.filters):
            handler.addFilter(redaction.RedactingFilter())
    root.setLevel(settings.observability.log_level)
    app.logger.setLevel(settings.observability.log_level)
