"""Ledger notifications: each committed state or progress change of a job, told on Redis.

The ledger calls `publish` right AFTER a transition committed, never inside its transaction,
so a follower told "succeeded" always finds the row succeeded. One sender thread per process
publishes them in the order they were committed, off the task's path. A notification is a wake-up
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
import os
import queue
import threading
import time
from collections.abc import Iterable
from datetime import UTC
from datetime import datetime
from typing import Any

import redis
from flask import current_app
from flask import has_app_context
from opentelemetry.instrumentation.utils import suppress_instrumentation

from app.ledger.per_process import PerProcess
from app.models import JobState

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
    """Hand (job id, payload) pairs to this process's sender; never blocks, never raises.

    A PUBLISH is a Redis round trip, and a job's start and finish each make one: in the
    task's own path that was a quarter of a short job's time in a prefork child (py-spy). The
    sender thread sends them in order, everything queued meanwhile in one pipeline.
    """
    pending = list(items)
    client = _client()
    if not pending or client is None or time.monotonic() < _down_until:
        return
    _sender().put((client, pending))


_Batch = tuple[redis.Redis, list[tuple[str, str]]]


class _Sender:
    """This process's queue of notifications and the thread that sends them, started on
    first use (never at import: a gevent worker patches threading after importing us)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.batches: queue.Queue[_Batch] = queue.Queue()
        self._lock = threading.Lock()
        self._started = False

    def put(self, batch: _Batch) -> None:
        if not self._started:
            with self._lock:
                if not self._started:
                    threading.Thread(target=self._send_forever, daemon=True).start()
                    self._started = True
        self.batches.put(batch)

    def _send_forever(self) -> None:
        # No spans from here: outside any job's context every PUBLISH would be a trace root
        # of its own (sampled like a request), which cost tracing-on drains a fifth of
        # their rate; inside the task, as before, they were unsampled children.
        with suppress_instrumentation():
            self._send_batches()

    def _send_batches(self) -> None:
        while True:
            client, pending = self.batches.get()
            while True:  # whatever else is queued goes in the same round trip
                try:
                    more_client, more = self.batches.get_nowait()
                except queue.Empty:
                    break
                if more_client is not client:
                    _send(client, pending)
                    client, pending = more_client, []
                pending += more
            _send(client, pending)


_sender = PerProcess(_Sender)


def _send(client: redis.Redis, pending: list[tuple[str, str]]) -> None:
    global _down_until
    if time.monotonic() < _down_until:
        return
    try:
        if len(pending) == 1:
            job_id, body = pending[0]
            client.publish(channel(job_id), body)
            return
        pipe = client.pipeline(transaction=False)
        for job_id, body in pending:
            pipe.publish(channel(job_id), body)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _down_until = time.monotonic() + BACKOFF_SECONDS
        # The job is recorded; its followers fall back to reading the row.
        log.warning(
            "could not publish %d job notification(s) (%s); skipping them for %.0fs",
            len(pending),
            exc,
            BACKOFF_SECONDS,
        )


def changed(job_ids: Iterable[str]) -> None:
    """Tell followers of `job_ids` to re-read their rows (outcome not known here)."""
    publish_many((job_id, "{}") for job_id in job_ids)
