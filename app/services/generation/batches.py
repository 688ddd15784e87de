"""Batches: many prompts generated in parallel under one parent job with aggregate progress.

The parent job fans its generations out as child jobs (`parent_id` set, one idempotency
key per child, so a redelivered parent submits nothing twice) and then follows them in
the ledger, reporting how many finished. It does not use a Celery chord: chord counters
live in the result backend, which Tasklane leaves off, and the ledger already knows every
child's state. The parent waits in a gevent greenlet, which costs next to nothing.
Cancelling the parent cancels the children that have not finished.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from celery import Celery
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.models.generation import Generation
from app.services import jobs
from app.services.errors import JobError
from app.services.generation import generations
from app.services.generation import streaming
from app.services.generation.generations import GenerationRequest
from app.services.jobs import InvalidTransition
from app.services.jobs import Submission
from app.tasking import JobCancelled

TASK = "generation.batch"
POLL_INTERVAL = 0.5


def submit(
    celery_app: Celery,
    requests: list[GenerationRequest],
    *,
    broker_timeout: float,
    api_key_id: int | None = None,
    notify_to: list[str] | None = None,
) -> Job:
    """Commit every generation row, then submit the parent job that fans them out.

    `notify_to` goes on the parent only: one mail once every item has finished.
    """
    rows = generations.create(requests)
    ids = [row.id for row in rows]
    try:
        job, _created = jobs.submit(
            celery_app,
            Submission(
                task=TASK,
                args={"generation_ids": ids},
                api_key_id=api_key_id,
                notify_to=notify_to,
            ),
            broker_timeout=broker_timeout,
        )
    except JobError:
        generations.discard(ids)
        raise
    return job


def _fan_out(
    celery_app: Celery, parent: Job, generation_ids: list[str], broker_timeout: float
) -> list[str]:
    children = []
    for index, generation_id in enumerate(generation_ids):
        row = db.session.get(Generation, generation_id)
        if row is None:
            continue
        job = generations.submit_job(
            celery_app,
            row,
            broker_timeout=broker_timeout,
            api_key_id=parent.api_key_id,
            parent_id=parent.id,
            idempotency_key=f"batch:{parent.id}:{index}",
        )
        children.append(job.id)
    return children


def _states(children: list[str]) -> Counter[str]:
    states = Counter(
        state.value for state in db.session.scalars(select(Job.state).where(Job.id.in_(children)))
    )
    db.session.rollback()
    return states


def _cancel(children: list[str]) -> None:
    for child in children:
        try:
            jobs.cancel(child)
        except (InvalidTransition, jobs.JobNotFound):
            db.session.rollback()


def run(
    parent_id: str,
    generation_ids: list[str],
    *,
    celery_app: Celery,
    broker_timeout: float,
    report: streaming.Reporter,
) -> dict[str, Any]:
    parent = jobs.get(parent_id)
    children = _fan_out(celery_app, parent, generation_ids, broker_timeout)
    total = len(children)
    try:
        while True:
            states = _states(children)
            done = sum(states[s.value] for s in JobState if s.terminal)
            report(done, total, ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
            if done == total:
                break
            time.sleep(POLL_INTERVAL)
    except JobCancelled:
        _cancel(children)
        raise
    return {
        "total": total,
        "succeeded": states[JobState.SUCCEEDED.value],
        "failed": states[JobState.FAILED.value],
        "cancelled": states[JobState.CANCELLED.value],
        "jobs": children,
    }
