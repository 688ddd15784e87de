"""Leases: a started attempt is owned by the process running it, for as long as it renews.

The process that runs the task (a prefork child, a gevent or solo worker) renews the leases
of all its running jobs with ONE statement per interval, from a heartbeat thread (a greenlet
under gevent) started at its first job. When the process dies the renewals stop; once the
lease expired, `recover_expired` (run by the relay, app/ledger/outbox.py) sends the job back
for its next attempt, or fails it `WorkerLost` when it is out of attempts. A delivery of a
job whose lease is live does not run it (the start statement's WHERE), so a duplicate or a
stale redelivery never runs a second attempt beside the first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any

from flask import Flask
from flask import current_app
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.engine import Engine

from app.ledger import core_statements as core
from app.ledger import notify
from app.ledger import statements as st
from app.ledger.errors import DATABASE_ERRORS
from app.ledger.execute import is_postgres
from app.ledger.execute import run
from app.ledger.execute import run_sql
from app.ledger.execute import transaction
from app.ledger.per_process import PerProcess
from app.models import Job
from app.models import JobState
from app.models.base import utcnow
from config import settings_of

log = logging.getLogger(__name__)

# Seconds between retries of a heartbeat the database refused: renew soon after it is back.
RETRY_INTERVAL = 1.0


class _Process:
    """This process's lease owner name and running jobs; rebuilt after a fork."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.owner: str | None = None
        # Running job -> the greenlet running it (None outside gevent), see `_prune_dead`.
        self.held: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.wake = threading.Event()


_current = PerProcess(_Process)


def owner(worker: str | None = None) -> str:
    """The lease owner name of this process: its worker's name and its pid."""
    process = _current()
    if process.owner is None:
        process.owner = f"{worker or socket.gethostname()}:{process.pid}"[:255]
    return process.owner


def _runner() -> Any:
    """The greenlet running this code under gevent (a task's own one); None otherwise."""
    try:
        from gevent import getcurrent
        from gevent.monkey import is_module_patched
    except ImportError:
        return None
    return getcurrent() if is_module_patched("socket") else None


def hold(job_id: str) -> None:
    """Count `job_id` among this process's running jobs; starts the heartbeat if needed."""
    process = _current()
    with process.lock:
        process.held[job_id] = _runner()
        if process.thread is None or not process.thread.is_alive():
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            process.thread = threading.Thread(
                target=_heartbeat,
                args=(process, app.extensions["ledger_engine"], settings_of(app)),
                name="tasklane-lease-heartbeat",
                daemon=True,
            )
            process.thread.start()


def release(job_id: str) -> None:
    process = _current()
    with process.lock:
        process.held.pop(job_id, None)


def running() -> frozenset[str]:
    process = _current()
    with process.lock:
        return frozenset(process.held)


def renew(engine: Engine, lease_owner: str, ttl: float) -> None:
    """One statement: every running job of `lease_owner` keeps its lease `ttl` more seconds."""
    lease = utcnow() + timedelta(seconds=ttl)
    if is_postgres(engine):
        run_sql(engine, st.PG_HEARTBEAT, {"owner": lease_owner, "lease": lease, "sync": "off"})
    else:
        run(engine, core.HEARTBEAT, {"p_owner": lease_owner, "p_lease": lease})


def _prune_dead(process: _Process) -> None:
    """Forget jobs whose greenlet is gone without releasing them, so their leases lapse.

    Celery kills a gevent job's greenlet from outside (a broker connection loss) at any
    point: in the task, storing its result, recording its outcome. Wherever that was, a
    dead greenlet runs nothing, and its job must come back through recovery rather than
    stay `started` under a lease renewed forever.
    """
    with process.lock:
        dead = [job for job, runner in process.held.items() if runner is not None and runner.dead]
        for job_id in dead:
            del process.held[job_id]
    if dead:
        log.warning("jobs %s: their runs were killed; their leases lapse", ", ".join(dead))


def _heartbeat(process: _Process, engine: Engine, settings: Any) -> None:
    interval = float(settings.ledger.lease_renew)
    while True:
        process.wake.wait(interval)
        if process.pid != os.getpid():
            return
        _prune_dead(process)
        with process.lock:
            busy = bool(process.held)
        if not busy or process.owner is None:
            continue
        try:
            renew(engine, process.owner, float(settings.ledger.lease_ttl))
        except DATABASE_ERRORS as exc:
            log.warning("could not renew the leases of %s (%s); retrying", process.owner, exc)
            process.wake.wait(RETRY_INTERVAL)


def expire(engine: Engine, job_id: str) -> None:
    """End the lease of a job whose process is known dead (the pool saw its child die)."""
    now = utcnow()
    if is_postgres(engine):
        run_sql(engine, st.PG_EXPIRE, {"id": job_id, "now": now})
    else:
        run(engine, core.EXPIRE, {"p_id": job_id, "p_now": now})


def recover_expired(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Jobs whose lease expired: back to `queued` (next attempt), or `failed` WorkerLost.

    Returns the moved jobs; those now `queued` are for the caller to publish.
    """
    now = utcnow()
    if is_postgres(engine):
        conn = engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute(
                st.PG_RECOVER,
                {
                    "now": now,
                    "limit": limit,
                    "lost_message": core.LOST_MESSAGE,
                    "give_up_message": core.GIVE_UP_MESSAGE,
                },
            )
            columns = [c[0] for c in cursor.description or ()]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            cursor.close()
        finally:
            conn.close()
    else:
        rows = _recover_sqlite(engine, now, limit)
    # Queued again, failed or cancelled: their followers re-read the rows.
    notify.changed(str(row["id"]) for row in rows)
    return rows


def _recover_sqlite(engine: Engine, now: Any, limit: int) -> list[dict[str, Any]]:
    moved: list[dict[str, Any]] = []
    with transaction(engine) as conn:
        ids = [row.id for row in conn.execute(core.EXPIRED, {"p_now": now, "p_limit": limit})]
        for job_id in ids:
            job = conn.execute(select(*Job.__table__.c).where(Job.id == job_id)).mappings().first()
            if job is None or job["state"] != JobState.STARTED:
                continue
            values: dict[str, Any] = {
                "lease_owner": None,
                "lease_expires_at": None,
                "updated_at": now,
            }
            if job["cancel_requested_at"] is not None:
                values.update(state=JobState.CANCELLED, finished_at=now)
            elif job["attempts"] < job["max_attempts"]:
                values.update(state=JobState.QUEUED, published_at=None)
            else:
                values.update(
                    state=JobState.FAILED,
                    finished_at=now,
                    error_type="WorkerLost",
                    error_message=core.GIVE_UP_MESSAGE,
                )
            conn.execute(update(Job).where(Job.id == job_id).values(values))
            core.end_attempt(
                conn,
                job_id,
                number=job["attempts"],
                worker=job["worker"],
                started_at=job["started_at"],
                now=now,
            )
            moved.append({**dict(job), **values})
    return moved
