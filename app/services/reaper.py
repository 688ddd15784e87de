"""The reaper: jobs left `started` by a worker that died are failed with a clear reason.

A job is stale once it has been `started` for longer than its task's hard time limit plus
a margin: no live worker can still be running it. It is failed, not requeued: the ledger
cannot tell whether the dead run had side effects halfway, so running it again is the
caller's decision (POST /jobs/{id}/retry). If the broker redelivers the message later,
the task base sees a finished job and does not run it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from typing import cast

from sqlalchemy import CursorResult
from sqlalchemy import Update
from sqlalchemy import select
from sqlalchemy import update

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.base import utcnow

BATCH = 500


def _changed(statement: Update) -> int:
    result = cast(CursorResult[Any], db.session.execute(statement))
    return result.rowcount


def reap_stale_jobs(time_limit: Callable[[str], float], *, margin: timedelta) -> list[str]:
    """Fail stale `started` jobs; `time_limit(task)` is the task's hard limit in seconds.

    Returns the ids of the jobs it failed.
    """
    now = utcnow()
    # Cheap first cut: nothing started after now minus the smallest possible limit is stale.
    candidates = db.session.execute(
        select(Job.id, Job.task, Job.started_at)
        .where(Job.state == JobState.STARTED, Job.started_at < now - margin)
        .order_by(Job.started_at)
        .limit(BATCH)
    ).all()
    reaped: list[str] = []
    for job_id, task, started_at in candidates:
        limit = timedelta(seconds=time_limit(task)) + margin
        if started_at is None or started_at >= now - limit:
            continue
        # Only if it is still the same run: a redelivery may have restarted it meanwhile.
        changed = _changed(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.STARTED, Job.started_at == started_at)
            .values(
                state=JobState.FAILED,
                error_type="WorkerLost",
                error_message=(
                    f"still 'started' {int((now - started_at).total_seconds())}s after it began, "
                    f"past its hard time limit plus {int(margin.total_seconds())}s: the worker "
                    "running it died. It is not run again automatically; "
                    f"POST /api/v1/jobs/{job_id}/retry runs it again."
                ),
                finished_at=now,
                updated_at=now,
            )
        )
        db.session.commit()
        if changed:
            reaped.append(job_id)
    return reaped
