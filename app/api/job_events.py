"""Following a job: GET /api/v1/jobs/<id>/events (Server-Sent Events).

A stream follows the ledger's notifications (app/ledger/notify.py, fanned out by this
process's one listener, app/extensions/ext_notify.py) instead of reading the row on a timer,
as the long-polls do (app/api/waiting.py). A follower registers first and reads the row
once after, so a change committed before it listened is in that read and one after it
arrives as a message. It reads the row again only when the job ended (the final row carries
the result), when a message says "re-read", or while the listener is down (then at
FALLBACK_INTERVAL, so a Redis outage makes it slower, never wrong, never a 500).
Between reads it holds no database connection.

The stream sends a `state` event when the state changes, `progress` when progress does, a
comment line as a keep-alive after KEEPALIVE_INTERVAL of quiet, and ends with an `end`
event (the whole job) once the job reached a final state, or without one once it lasted
API_EVENTS_MAX_SECONDS (the client reconnects; its first event is the job as it is then).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import Response
from flask import stream_with_context
from flask.views import MethodView

from app.api import auth
from app.api import waiting
from app.api.schemas import JobSchema
from app.extensions import ext_notify
from app.extensions.ext_database import db
from app.extensions.ext_notify import REREAD
from app.extensions.ext_notify import Follower
from app.extensions.ext_notify import Update
from app.ledger import notify
from app.models import Job
from app.services.jobs import JobNotFound
from config import current_settings

KEEPALIVE_INTERVAL = 15.0
# A stream quiet this long reads its row once (at a keep-alive): a notification lost while
# the listener stayed connected (a worker's PUBLISH failed) delays it at most this much.
QUIET_REREAD = 60.0

blp = auth.blueprint(
    "job_events", __name__, url_prefix="/api/v1/jobs", description="Job events", json_body=False
)


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _snapshot(job: Job) -> dict[str, Any]:
    dumped: dict[str, Any] = JobSchema(only=("id", "state", "progress", "error")).dump(job)
    return dumped


@dataclass
class _Row:
    snapshot: dict[str, Any]
    updated_at: float
    final: dict[str, Any] | None  # the whole job, once it is final


def _read(job_id: str) -> _Row | None:
    """The row now, dumped; the read transaction ends at once (no connection is held)."""
    try:
        job = waiting.load(job_id)
        if job is None:
            return None
        final = JobSchema().dump(job) if job.state.terminal else None
        return _Row(_snapshot(job), notify.stamp(job.updated_at), final)
    finally:
        db.session.rollback()


class _Stream:
    """What the client was last sent, and the events that bring it up to date."""

    def __init__(self, job_id: str, row: _Row) -> None:
        self.job_id = job_id
        self.sent = row.snapshot
        self.seen_at = row.updated_at
        self.final = row.final

    def first(self) -> Iterator[str]:
        yield _event("state", self.sent)
        if self.final is not None:
            yield _event("end", self.final)

    def _send(self, snapshot: dict[str, Any]) -> Iterator[str]:
        if snapshot["state"] != self.sent["state"]:
            yield _event("state", snapshot)
        elif snapshot["progress"] != self.sent["progress"]:
            yield _event("progress", snapshot)
        self.sent = snapshot

    def apply(self, updates: list[Update]) -> Iterator[str]:
        """Events for `updates`, in their order; reads the row once if one asks for it."""
        read = False
        for update in updates:
            if waiting.needs_read(update):
                read = True
                continue
            if update.at is not None:
                if update.at < self.seen_at:
                    continue  # committed before the row this stream last read
                self.seen_at = update.at
            snapshot = dict(self.sent)
            if update.state is not None:
                snapshot["state"] = update.state
            if update.progress is not None:
                snapshot["progress"] = update.progress
            yield from self._send(snapshot)
        if not read:
            return
        row = _read(self.job_id)
        if row is None:
            self.final = {"id": self.job_id, "state": "deleted"}
            yield _event("end", self.final)
            return
        self.seen_at = max(self.seen_at, row.updated_at)
        yield from self._send(row.snapshot)
        if row.final is not None:
            self.final = row.final
            yield _event("end", row.final)


def _events(follower: Follower, row: _Row, lasts: float) -> Iterator[str]:
    try:
        stream = _Stream(follower.job_id, row)
        yield from stream.first()
        quiet_since = heard_at = time.monotonic()
        closes_at = quiet_since + lasts
        while stream.final is None and time.monotonic() < closes_at:
            waited = time.monotonic() - quiet_since
            pause = min(KEEPALIVE_INTERVAL - waited, closes_at - time.monotonic())
            updates = follower.wait(max(0.0, pause))
            if updates:
                heard_at = time.monotonic()
            elif time.monotonic() - heard_at >= QUIET_REREAD:
                updates, heard_at = [REREAD], time.monotonic()
            sent = list(stream.apply(updates))
            yield from sent
            if sent:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= KEEPALIVE_INTERVAL:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
    finally:
        follower.close()


def stream(job_id: str) -> Response:
    """The job's event stream; 404 (JobNotFound) when there is no such job for the caller.

    The row is read here, once, after subscribing: it answers the 404 and is the stream's
    first event, so a follower costs one read to connect.
    """
    follower = ext_notify.hub().follow(job_id)
    try:
        row = _read(job_id)
    except BaseException:
        follower.close()
        raise
    if row is None:
        follower.close()
        raise JobNotFound(f"no job with id {job_id!r}")
    response = Response(
        stream_with_context(_events(follower, row, current_settings().api.events_max_seconds)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    # A client gone before the first chunk never starts the generator: leave here too.
    response.call_on_close(follower.close)
    return response


@blp.route("/<id:job_id>/events")
class JobEvents(MethodView):
    @blp.response(200, description="text/event-stream of `state`, `progress` and `end` events")
    @blp.alt_response(404, description="No such job")
    def get(self, job_id: str) -> Response:
        """Follow a job live: its state and progress changes until it ends."""
        return stream(job_id)
