"""Jobs a dead worker had reserved but not started (Redis brokers).

A started job holds a lease and comes back through it. A message a worker had only
reserved (prefetched) holds none: when the worker's main process is killed outright it
stays in kombu's `unacked` hash until the visibility timeout (hours) restores it. The relay
looks there for messages reserved longer than LEDGER_RESERVED_GRACE whose job the ledger
still has `queued`, and publishes them again ahead of the backlog. A live worker that was
merely slow to start its reserved message later finds the job running or finished and does
nothing, so the worst a false alarm costs is one duplicate message.

A `retrying` job waits for a message too: the one its retry published with a countdown,
or, when Celery cancelled the run on a broker connection loss, the unacknowledged original
(kombu restores it). Either can be lost with the broker (a restart that drops the reserved
message, a killed worker that held it), and then nothing would ever run the job: a job
still `retrying` LEDGER_RESERVED_GRACE after its retry was due is published again by the
relay, on any broker, ahead of the backlog (`overdue_retries`).

A `queued` job whose confirmed message is nowhere in the broker (the Redis campaign of
bench/faults.py saw a few per outage: a message taken off its list by a worker whose
connection then broke, before kombu recorded it as unacknowledged) is found the same way:
`vanished` looks for the message of each job published more than the grace ago and not
yet started, in the queue lists and the `unacked` hash, and the missing ones are claimed.
It reads the lists whole, so it only runs while they are short (VANISHED_SCAN_LIMIT):
under a real backlog a job waiting its turn is not lost, and the check waits for it.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.engine import Engine

from app.ledger.execute import run_all
from app.ledger.requests import MESSAGE_COLUMNS
from app.models import Job
from app.models import JobState
from app.models.base import utcnow

# kombu's Redis transport keys (its defaults; Tasklane sets no key prefix).
UNACKED = "unacked"
UNACKED_INDEX = "unacked_index"
BATCH = 500
# Messages read at most per pass looking for vanished ones: a short backlog only.
VANISHED_SCAN_LIMIT = 5000
# kombu's Redis transport keeps priority N of queue Q in the list "Q\x06\x16N" (N > 0).
PRIORITY_SEP = "\x06\x16"

_clients: dict[tuple[str, int], redis.Redis] = {}


def broker_client(broker_url: str) -> redis.Redis | None:
    """A client of the broker's Redis, or None when the broker is not Redis."""
    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        return None
    key = (broker_url, os.getpid())
    if key not in _clients:
        _clients[key] = redis.Redis.from_url(broker_url, socket_timeout=5)
    return _clients[key]


def stale_reserved_ids(client: redis.Redis, older_than: float) -> list[str]:
    """Job ids of messages reserved (unacknowledged) for more than `older_than` seconds."""
    found: Any = client.zrangebyscore(UNACKED_INDEX, "-inf", time.time() - older_than, 0, BATCH)
    tags: list[bytes] = list(found)
    if not tags:
        return []
    ids: list[str] = []
    raws: Any = client.hmget(UNACKED, tags)
    for raw in raws:
        try:
            ids.append(str(json.loads(raw)[0]["headers"]["id"]))
        except (TypeError, ValueError, KeyError, IndexError):
            continue  # not a Celery message, or already acknowledged
    return ids


def claim(engine: Engine, job_ids: list[str], older_than: float) -> list[dict[str, Any]]:
    """The jobs among `job_ids` still `queued`, due, and published before the grace."""
    if not job_ids:
        return []
    now = utcnow()
    due = now - timedelta(seconds=older_than)
    statement = (
        update(Job)
        .where(
            Job.id.in_(job_ids),
            Job.state == JobState.QUEUED,
            Job.published_at < due,
            or_(Job.eta.is_(None), Job.eta < due),
        )
        # Claimed: published again now, so the next pass leaves it alone for a grace.
        .values(published_at=now)
        .returning(*MESSAGE_COLUMNS)
    )
    return [dict(row._mapping) for row in run_all(engine, statement, {})]


def overdue_retries(engine: Engine, older_than: float) -> list[dict[str, Any]]:
    """`retrying` jobs due more than `older_than` seconds ago, claimed to be published again.

    Due means the retry's eta, or the moment the retry was recorded when it has none (a
    run Celery cancelled). The claim moves `published_at`, so the next pass leaves the job
    alone for a grace; the message goes out without its old eta, which has passed.
    """
    now = utcnow()
    due = now - timedelta(seconds=older_than)
    statement = (
        update(Job)
        .where(
            Job.state == JobState.RETRYING,
            func.coalesce(Job.eta, Job.updated_at) < due,
            or_(Job.published_at.is_(None), Job.published_at < due),
        )
        .values(published_at=now)
        .returning(*MESSAGE_COLUMNS)
    )
    return [{**row._mapping, "eta": None} for row in run_all(engine, statement, {})]


def _message_id(raw: Any) -> str | None:
    try:
        found = json.loads(raw)
        return str((found[0] if isinstance(found, list) else found)["headers"]["id"])
    except (TypeError, ValueError, KeyError, IndexError):
        return None


def vanished(
    client: redis.Redis, engine: Engine, queues: list[str], older_than: float
) -> list[dict[str, Any]]:
    """`queued` jobs published `older_than` seconds ago whose message the broker lost."""
    due = utcnow() - timedelta(seconds=older_than)
    waiting = (
        select(Job.id)
        .where(
            Job.state == JobState.QUEUED,
            Job.published_at < due,
            or_(Job.eta.is_(None), Job.eta < due),
        )
        .limit(BATCH)
    )
    candidates = {row.id for row in run_all(engine, waiting, {})}
    if not candidates:
        return []
    keys = [q if p == 0 else f"{q}{PRIORITY_SEP}{p}" for q in queues for p in range(10)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    lengths: list[int] = pipe.execute()
    if sum(lengths) > VANISHED_SCAN_LIMIT:
        return []
    present: set[str | None] = set()
    for key, length in zip(keys, lengths, strict=True):
        if length:
            raws: Any = client.lrange(key, 0, -1)
            present.update(_message_id(raw) for raw in raws)
    held: Any = client.hvals(UNACKED)
    present.update(_message_id(raw) for raw in held)
    missing = [job_id for job_id in candidates if job_id not in present]
    # The claim checks the row again: one started or published meanwhile is left alone.
    return claim(engine, missing, older_than)
