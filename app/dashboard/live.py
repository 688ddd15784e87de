"""What the broker and the workers say right now: waiting messages, consumers, pools.

A Celery inspect broadcast without a reply limit always waits its whole timeout, which
would make every refresh of the overview take INSPECT_TIMEOUT. So the broadcast asks for as
many replies as there were workers last time and returns as soon as they all answered; only
when a worker has gone away does a refresh wait the full timeout (and then forgets it). A
new worker shows at the latest on the refresh after the one whose replies it joined.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any

from celery import Celery

from app import queues
from app.models.base import utcnow
from app.services.operations import queue_status

_known_lock = threading.Lock()
_known_workers: set[str] = set()


@dataclass
class WorkerRow:
    name: str
    pool: str | None
    concurrency: int | None
    queues: list[str] = field(default_factory=list)
    running: int = 0


@dataclass
class QueueRow:
    name: str
    profile: str
    pool: str
    waiting: int | None
    oldest_age_seconds: float | None
    consumers: list[str]


@dataclass
class Snapshot:
    queues: list[QueueRow]
    workers: list[WorkerRow]
    taken_at: datetime


def _pool_name(stats: dict[str, Any]) -> str | None:
    implementation = str((stats.get("pool") or {}).get("implementation", ""))
    # "celery.concurrency.prefork:TaskPool" -> "prefork"
    return implementation.rsplit(":", 1)[0].rsplit(".", 1)[-1] or None


def inspect_workers(celery_app: Celery, timeout: float) -> list[WorkerRow]:
    """Every worker that answers, with its pool, concurrency and the queues it consumes."""
    with _known_lock:
        expected = len(_known_workers)
    inspect = celery_app.control.inspect(timeout=timeout, limit=expected or None)
    with ThreadPoolExecutor(max_workers=2) as pool:
        active_f = pool.submit(inspect.active_queues)
        stats_f = pool.submit(inspect.stats)
        active: dict[str, Any] = active_f.result() or {}
        stats: dict[str, Any] = stats_f.result() or {}
    answered = set(active) | set(stats)
    with _known_lock:
        if len(answered) < expected:
            # Someone known did not answer within the timeout: forget who is gone.
            _known_workers.intersection_update(answered)
        _known_workers.update(answered)
    rows = []
    for name in sorted(answered):
        info = stats.get(name) or {}
        rows.append(
            WorkerRow(
                name=name,
                pool=_pool_name(info),
                concurrency=(info.get("pool") or {}).get("max-concurrency"),
                queues=sorted(q["name"] for q in active.get(name, []) if q.get("name")),
            )
        )
    return rows


def snapshot(celery_app: Celery, timeout: float, running: dict[str, int]) -> Snapshot:
    """Queues and workers now; `running` is the ledger's started-job count per worker."""
    # Ask the broker while the workers answer the broadcast: the panel costs the slower of
    # the two round trips, not their sum. The ledger read stays on this thread (its session).
    with ThreadPoolExecutor(max_workers=1) as pool:
        waiting_f = pool.submit(queue_status.waiting_counts, celery_app)
        workers = inspect_workers(celery_app, timeout)
        oldest = queue_status.oldest_waiting()
        waiting = waiting_f.result()
    for worker in workers:
        worker.running = running.get(worker.name, 0)
    now = utcnow()
    rows = []
    for spec in queues.QUEUES.values():
        first = oldest.get(spec.name)
        rows.append(
            QueueRow(
                name=spec.name,
                profile=spec.profile,
                pool=queues.PROFILES[spec.profile].pool,
                waiting=waiting.get(spec.name),
                oldest_age_seconds=(now - first).total_seconds() if first else None,
                consumers=[w.name for w in workers if spec.name in w.queues],
            )
        )
    return Snapshot(queues=rows, workers=workers, taken_at=now)
