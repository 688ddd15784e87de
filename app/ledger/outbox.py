"""The transactional outbox: a job's row is its own publish intent.

A job row commits with `published_at` NULL in the same INSERT that creates it, so a job
and its intent to be published can never be apart. The message goes out after the commit;
its confirmation (`published_at`) is written lazily, in bulk, by a flusher thread of the
process that published, or by the job's start. The relay publishes every intent not
confirmed within LEDGER_RELAY_GRACE seconds (an API process killed between commit and
publish, a database hiccup, a broker outage), and sends jobs whose lease expired back for
their next attempt (app/ledger/leases.py), and jobs whose reserved or retry message the
broker lost (app/ledger/reserved.py), ahead of the backlog.

The relay runs in every worker's main process (started when the worker is ready) and in
every API process (started at its first submit); relays claim intents with one UPDATE
(`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several never publish the same intent at once.
A job published twice still runs once at a time: an attempt starts only from `queued` or
from an expired lease.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from datetime import timedelta
from typing import Any

from celery import Celery
from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy.engine import Engine

from app.ledger import core_statements as core
from app.ledger import leases
from app.ledger import reserved
from app.ledger import statements as st
from app.ledger.errors import DATABASE_ERRORS
from app.ledger.execute import is_postgres
from app.ledger.execute import run
from app.ledger.execute import run_all
from app.ledger.execute import run_sql
from app.ledger.per_process import PerProcess
from app.ledger.publishing import BROKER_ERRORS
from app.ledger.publishing import publish
from app.models import JobState
from app.models.base import utcnow
from app.queues import QUEUES
from config import settings_of

log = logging.getLogger(__name__)

CLAIM_BATCH = 200


_in_worker = False


def mark_worker() -> None:
    """Called in worker processes: their main process runs the relay, not each submit."""
    global _in_worker
    _in_worker = True


def in_worker() -> bool:
    return _in_worker


class _Confirmations:
    """Published job ids waiting for their bulk `published_at`; one flusher per process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None


_current = PerProcess(_Confirmations)


def confirm(app: Flask, *job_ids: str) -> None:
    """Remember that these jobs' messages reached the broker; written within a second."""
    pending = _current()
    with pending.lock:
        pending.ids.update(job_ids)
        if pending.thread is None or not pending.thread.is_alive():
            pending.thread = threading.Thread(
                target=_flush_forever,
                args=(pending, app.extensions["ledger_engine"]),
                name="tasklane-outbox-confirm",
                daemon=True,
            )
            pending.thread.start()


def _take(pending: _Confirmations) -> list[str]:
    with pending.lock:
        ids, pending.ids = list(pending.ids), set()
    return ids


def flush(engine: Engine, ids: Iterable[str]) -> None:
    """One statement confirms a batch of published jobs."""
    ids = list(ids)
    if not ids:
        return
    if is_postgres(engine):
        run_sql(engine, st.PG_CONFIRM, {"ids": ids, "now": utcnow()})
    else:
        run(engine, core.CONFIRM, {"p_ids": ids, "p_now": utcnow()})


def _flush_forever(pending: _Confirmations, engine: Engine) -> None:
    while pending.pid == os.getpid():
        time.sleep(0.5)
        ids = _take(pending)
        try:
            flush(engine, ids)
        except DATABASE_ERRORS as exc:
            # Unconfirmed, the relay publishes them again after the grace: harmless.
            log.warning("could not confirm %d published jobs (%s)", len(ids), exc)


def claim_due(engine: Engine, grace: float, limit: int = CLAIM_BATCH) -> list[dict[str, Any]]:
    """Intents not confirmed within `grace` seconds, claimed for this relay."""
    now = utcnow()
    due = now - timedelta(seconds=grace)
    if is_postgres(engine):
        conn = engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute(st.PG_CLAIM, {"now": now, "due": due, "limit": limit})
            columns = [c[0] for c in cursor.description or ()]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
            cursor.close()
            return rows
        finally:
            conn.close()
    found = run_all(engine, core.CLAIM, {"p_now": now, "p_due": due, "p_limit": limit})
    return [dict(row._mapping) for row in found]


def relay_once(app: Flask, *, recover: bool = True, scan_broker: bool = True) -> dict[str, int]:
    """One relay pass: confirmations, due intents, expired leases. Counts what it did.

    `scan_broker`: also look for jobs whose message the broker lost (see VANISHED_SCANS).
    """
    engine: Engine = app.extensions["ledger_engine"]
    celery_app: Celery = app.extensions["celery"]
    settings = settings_of(app)
    timeout = float(settings.broker.submit_timeout)
    counts = {"published": 0, "recovered": 0, "failed": 0}
    flush(engine, _take(_current()))
    batches = [(False, claim_due(engine, float(settings.ledger.relay_grace)))]
    if recover:
        moved = leases.recover_expired(engine)
        counts["failed"] = sum(1 for job in moved if job["state"] == JobState.FAILED)
        batches.append((True, [job for job in moved if job["state"] == JobState.QUEUED]))
        batches.append((True, _reserved_by_the_dead(app, engine, scan_broker=scan_broker)))
        # A retry whose message the broker lost: published again, like a lost attempt.
        grace = float(settings.ledger.reserved_grace)
        batches.append((True, reserved.overdue_retries(engine, grace)))
    published: list[str] = []
    try:
        for urgent, jobs in batches:
            for job in jobs:
                if job["task"] not in celery_app.tasks:
                    log.error(
                        "job %s: no task %r here; left for another relay", job["id"], job["task"]
                    )
                    continue
                publish(celery_app, _aware(job), timeout=timeout, urgent=urgent)
                published.append(job["id"])
                counts["recovered" if urgent else "published"] += 1
    finally:
        flush(engine, published)
    return counts


def _reserved_by_the_dead(
    app: Flask, engine: Engine, *, scan_broker: bool = True
) -> list[dict[str, Any]]:
    client = reserved.broker_client(str(app.extensions["celery"].conf.broker_url or ""))
    if client is None:
        return []
    grace = float(settings_of(app).ledger.reserved_grace)
    try:
        ids = reserved.stale_reserved_ids(client, grace)
        claimed = reserved.claim(engine, ids, grace)
        if not scan_broker:
            return claimed
        return claimed + reserved.vanished(client, engine, list(QUEUES), grace)
    except RedisError as exc:
        log.warning("relay: could not read the broker's reserved messages (%s)", exc)
        return []


def _aware(job: dict[str, Any]) -> dict[str, Any]:
    eta = job.get("eta")
    if isinstance(eta, datetime) and eta.tzinfo is None:
        from datetime import UTC

        job = {**job, "eta": eta.replace(tzinfo=UTC)}
    return job


# Scans for vanished messages per reserved grace: one reads every waiting message. With
# 4,000 jobs queued for over a grace, 55 ms of CPU per scan in each process with a relay:
# 5.5% of a core each once a second, 0.4% once per 15 s (a lost message found within 75 s).
VANISHED_SCANS = 4


class Relay:
    """The relay loop as a daemon thread (a greenlet under gevent) of this process."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="tasklane-relay", daemon=True)
        self.pid = os.getpid()
        # After the database was away, leases get one TTL to be renewed before recovery
        # treats them as lost: their workers could not renew them either.
        self.recover_after = time.monotonic()
        self.next_broker_scan = time.monotonic()

    def start(self) -> Relay:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _loop(self) -> None:
        settings = settings_of(self.app)
        interval = float(settings.ledger.relay_interval)
        while not self.stopping.wait(interval) and self.pid == os.getpid():
            try:
                now = time.monotonic()
                recover = now >= self.recover_after
                # The scan is part of recovery: a pass without recovery does not use it up.
                scan = recover and now >= self.next_broker_scan
                if scan:
                    grace = float(settings.ledger.reserved_grace)
                    self.next_broker_scan = now + grace / VANISHED_SCANS
                with self.app.app_context():
                    counts = relay_once(self.app, recover=recover, scan_broker=scan)
                if counts["published"] or counts["recovered"] or counts["failed"]:
                    log.info(
                        "relay: published %(published)d unconfirmed, sent %(recovered)d lost "
                        "attempts again, failed %(failed)d out of attempts",
                        counts,
                    )
            except DATABASE_ERRORS as exc:
                self.recover_after = time.monotonic() + float(settings.ledger.lease_ttl)
                log.warning("relay: database unavailable (%s); retrying", exc)
            except BROKER_ERRORS as exc:
                log.warning("relay: broker unavailable (%s); retrying", exc)
            except Exception:
                log.exception("relay pass failed; retrying")


_relays: dict[tuple[int, int], Relay] = {}
_relays_lock = threading.Lock()


def ensure_relay(app: Flask) -> Relay:
    """This process's relay for `app`, started on first use."""
    key = (id(app), os.getpid())
    with _relays_lock:
        relay = _relays.get(key)
        if relay is None:
            relay = _relays[key] = Relay(app).start()
        return relay


def stop_relay(app: Flask) -> None:
    with _relays_lock:
        relay = _relays.pop((id(app), os.getpid()), None)
    if relay is not None:
        relay.stop()
