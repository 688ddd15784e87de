"""Ledger notifications: each committed state or progress change of a job, told on Redis.

The ledger calls `publish` right AFTER a transition committed, never inside its transaction,
so a follower told "succeeded" always finds the row succeeded. Each process publishes them,
in commit order, on one connection Redis sends no replies on. A notification is a wake-up
with the new state, not the record: the database stays the truth, a lost notification costs
a follower a late update (it re-reads the row after it subscribed, and whenever the listener
reconnects), and a failed PUBLISH is logged and never fails the job.

Why Redis pub/sub, one channel per job (`tasklane:job:<id>`), and not a stream: a follower
needs only what happens after it subscribed (the row tells it everything before), so
nothing has to be kept. PUBLISH to a channel nobody follows costs Redis a hash lookup and
keeps no memory; a stream would grow by an entry per transition and need trimming (XADD
with MAXLEN per job, a key per job to expire). Per-job channels let one API process's
listener take every job with one PSUBSCRIBE (app/extensions/ext_notify.py) and let any
other client follow a single job with a plain SUBSCRIBE.

Payload: compact JSON. `{"state": ..., "at": ...}` for a transition, `{"progress": {...},
"at": ...}` for a progress write (`at`: the change's `updated_at`), and `{}` for "something
changed, re-read the row" (rare paths whose outcome the caller does not know: a refused or
settled start, a recovered lease).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from typing import Any

import redis
from flask import current_app
from flask import has_app_context

from app.models import JobState
from app.unanswered_redis import SEND_ERRORS
from app.unanswered_redis import Unanswered

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "tasklane:job:"
PATTERN = CHANNEL_PREFIX + "*"
# After a failed PUBLISH the process skips notifications this long: a Redis outage must not
# add a connect timeout to every transition of every job.
BACKOFF_SECONDS = 2.0

_down_until = 0.0


def channel(job_id: str) -> str:
    return CHANNEL_PREFIX + job_id


def job_id_of(channel_name: str) -> str:
    return channel_name[len(CHANNEL_PREFIX) :]


def payload(
    state: JobState | None = None,
    progress: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> str:
    body: dict[str, Any] = {}
    if state is not None:
        body["state"] = state.value
    if progress is not None:
        body["progress"] = progress
    if at is not None:
        # The change's `updated_at`: a follower drops a message older than the row it read.
        body["at"] = stamp(at)
    return json.dumps(body, separators=(",", ":"))


def stamp(moment: datetime) -> float:
    """Seconds since the epoch; a naive time (SQLite gives those back) is UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def progress_body(current: int | None, total: int | None, message: str | None) -> dict[str, Any]:
    """Progress as GET /jobs/{id} shows it (JobSchema.progress)."""
    return {"current": current, "total": total, "message": message}


def _client() -> redis.Redis | None:
    if not has_app_context():
        return None
    client: redis.Redis | None = current_app.extensions.get("notify_redis")
    return client


def publish(
    job_id: str,
    state: JobState | None = None,
    progress: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Send the job's change committed at `at`; call it after the commit."""
    publish_many([(job_id, payload(state, progress, at))])


def publish_many(items: Iterable[tuple[str, str]]) -> None:
    """Send (job id, payload) pairs on this process's publishing connection; never raises,
    and waits for Redis only to open the connection (once per process, and after an outage).

    A PUBLISH is a Redis round trip, and a job's start and finish each make one: in the task's
    own path that was a quarter of a short job's time in a prefork child (py-spy). Handing
    them to a sender thread instead still cost a fifth of the drain rate (thread wake-ups
    and GIL hand-offs on every transition; 255-286 jobs/s with it against 305-358 without
    any notification). So the connection is put in `CLIENT REPLY OFF`: Redis answers
    nothing on it, and a PUBLISH is one socket write, in commit order, with no reply to await.
    """
    global _down_until
    pending = list(items)
    client = _client()
    if not pending or client is None or time.monotonic() < _down_until:
        return
    commands = [("PUBLISH", channel(job_id), body) for job_id, body in pending]
    try:
        _unanswered.send(client.connection_pool, commands)
    except SEND_ERRORS as exc:
        _down_until = time.monotonic() + BACKOFF_SECONDS
        # The job is recorded; its followers fall back to reading the row.
        log.warning(
            "could not publish %d job notification(s) (%s); skipping them for %.0fs",
            len(pending),
            exc,
            BACKOFF_SECONDS,
        )


# This process's reply-less connection to Redis (afresh in a forked child).
_unanswered = Unanswered()


def changed(job_ids: Iterable[str]) -> None:
    """Tell followers of `job_ids` to re-read their rows (outcome not known here)."""
    publish_many((job_id, "{}") for job_id in job_ids)
