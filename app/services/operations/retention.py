"""Ledger retention: finished jobs are kept for a configured time, then deleted in batches."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_
from sqlalchemy import delete
from sqlalchemy import or_
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import TERMINAL_STATES
from app.models import Job
from app.models.base import utcnow

BATCH = 1000
CANARY_TASK = "system.canary"


def purge_expired_jobs(*, older_than: timedelta, canaries_older_than: timedelta) -> int:
    """Delete finished jobs past retention; returns how many rows went."""
    now = utcnow()
    expired = and_(
        Job.state.in_(TERMINAL_STATES),
        or_(
            Job.finished_at < now - older_than,
            and_(Job.task == CANARY_TASK, Job.finished_at < now - canaries_older_than),
        ),
    )
    total = 0
    while True:
        # Small batches keep each transaction short, so workers writing the ledger never wait long.
        ids = list(db.session.scalars(select(Job.id).where(expired).limit(BATCH)))
        if not ids:
            return total
        db.session.execute(delete(Job).where(Job.id.in_(ids)))
        db.session.commit()
        total += len(ids)
