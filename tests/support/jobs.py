"""Job rows as the ledger leaves them, for tests that set a job up in a given state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow


def job_row(state: JobState = JobState.QUEUED, **values: Any) -> Job:
    """A `Job` in `state` that keeps the table's invariants (CHECK constraints).

    A started job holds a live lease (an hour) and has its attempt counted; a finished one
    has its finish time. Pass any column to override.
    """
    now = utcnow()
    defaults: dict[str, Any] = {"task": "tests.echo", "queue": "dataset", "args": {}}
    if state == JobState.STARTED:
        defaults.update(
            attempts=1,
            started_at=now,
            lease_owner="tests:0",
            lease_expires_at=now + timedelta(hours=1),
        )
    if state.terminal:
        defaults["finished_at"] = now
    if state != JobState.QUEUED:
        defaults["published_at"] = now
    merged = {**defaults, **values}
    merged["max_attempts"] = max(merged.get("max_attempts") or 4, merged.get("attempts") or 0)
    return Job(state=state, **merged)


def stored_job(state: JobState = JobState.QUEUED, **values: Any) -> Job:
    """`job_row(state, **values)` added and committed, as a test sets up the ledger it reads."""
    job = job_row(state, **values)
    db.session.add(job)
    db.session.commit()
    return job
