"""GET /api/v1/jobs/<id>/events: a job's state and progress as Server-Sent Events.

The stream polls the ledger every POLL_INTERVAL seconds and sends an event whenever the
state or progress changed, a comment line as a keep-alive otherwise, and ends with an
`end` event once the job reached a final state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Response
from flask import stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api.auth import require_api_key
from app.api.schemas import JobSchema
from app.extensions.ext_database import db
from app.models import Job
from app.services import jobs

# Short enough that a streaming generation's text visibly grows.
POLL_INTERVAL = 0.25
KEEPALIVE_INTERVAL = 15.0

blp = Blueprint("job_events", __name__, url_prefix="/api/v1/jobs", description="Job events")
blp.before_request(require_api_key)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _snapshot(job: Job) -> dict[str, Any]:
    dumped: dict[str, Any] = JobSchema(only=("id", "state", "progress", "error")).dump(job)
    return dumped


def events(job_id: str) -> Iterator[str]:
    last: dict[str, Any] | None = None
    quiet_since = time.monotonic()
    while True:
        job = db.session.get(Job, job_id, populate_existing=True)
        # End the read transaction, so the next poll sees the worker's later commits.
        db.session.rollback()
        if job is None:
            yield _event("end", {"id": job_id, "state": "deleted"})
            return
        snapshot = _snapshot(job)
        if last is None or snapshot["state"] != last["state"]:
            yield _event("state", snapshot)
            quiet_since = time.monotonic()
        elif snapshot["progress"] != last["progress"]:
            yield _event("progress", snapshot)
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_INTERVAL:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        last = snapshot
        if job.state.terminal:
            yield _event("end", JobSchema().dump(job))
            return
        time.sleep(POLL_INTERVAL)


@blp.route("/<job_id>/events")
class JobEvents(MethodView):
    @blp.response(200, description="text/event-stream of `state`, `progress` and `end` events")
    @blp.alt_response(404, description="No such job")
    def get(self, job_id: str) -> Response:
        """Follow a job live: its state and progress changes until it ends."""
        jobs.get(job_id)
        db.session.rollback()
        return Response(
            stream_with_context(events(job_id)),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
