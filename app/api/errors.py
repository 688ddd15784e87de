"""Every error leaves as `application/problem+json` (RFC 9457), never as an HTML page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask import Response
from flask import jsonify
from flask import request
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import InternalServerError

from app.ledger.errors import database_unavailable
from app.services.errors import JobError

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://tasklane.dev/problems/"


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {
        "type": type_ or "about:blank",
        "title": title,
        "status": status,
        "instance": request.path,
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _slug(name: str) -> str:
    return PROBLEM_TYPE_BASE + "".join(
        "-" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name)
    )


def handle_http_exception(exc: HTTPException) -> Response:
    data = getattr(exc, "data", None) or {}
    extra: dict[str, Any] = {}
    detail = exc.description
    messages = data.get("messages")
    if messages:
        # webargs puts validation messages by location: {"json": {"field": [...]}}.
        extra["errors"] = messages
        detail = "the request did not pass validation; see errors"
    headers = dict(data.get("headers") or {})
    # Headers the exception itself carries (`Allow` on a 405, ...), except its own HTML type.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            headers.setdefault(name, value)
    status = exc.code or 500
    return problem(status, exc.name, detail, headers=headers, **extra)


def handle_job_error(exc: JobError) -> Response:
    headers = {"Retry-After": "5"} if exc.status == 503 else None
    return problem(
        exc.status, exc.title, str(exc), type_=_slug(type(exc).__name__), headers=headers
    )


# Seconds a client is told to wait while the database is away.
DATABASE_RETRY_AFTER = "5"


def handle_unexpected(exc: Exception) -> Response:
    if database_unavailable(exc):
        # Every write is one statement or one transaction, so nothing is half-written:
        # the client retries the same request (an idempotency key makes that safe).
        _rollback_quietly()
        log.warning("database unavailable on %s %s: %s", request.method, request.path, exc)
        return problem(
            503,
            "Database unavailable",
            "the job ledger cannot be reached right now; nothing was changed. Retry the "
            "request after the Retry-After delay.",
            type_=PROBLEM_TYPE_BASE + "database-unavailable",
            headers={"Retry-After": DATABASE_RETRY_AFTER},
        )
    log.exception("unhandled error on %s %s", request.method, request.path)
    return handle_http_exception(InternalServerError())


def _rollback_quietly() -> None:
    from app.extensions.ext_database import db

    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the session is discarded at teardown
        log.debug("rollback after a database error failed", exc_info=True)


def register_error_handlers(app: Flask) -> None:
    # Registered after flask-smorest's own handler, so these win.
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(JobError, handle_job_error)
    app.register_error_handler(Exception, handle_unexpected)
