"""The transition table: which state a job may move to from which, and by which transition.

Every statement in `app.ledger.statements` and `app.ledger.core_statements` takes its WHERE
clause from this table, so a transition the table does not list matches no row: it is
refused, never half-applied.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.models import JobState

Q, S, R = JobState.QUEUED, JobState.STARTED, JobState.RETRYING
OK, KO, X = JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED


class Transition(enum.StrEnum):
    SUBMIT = "submit"  # a new row
    START = "start"  # an attempt begins (from `started` only once its lease expired)
    SUCCEED = "succeed"
    FAIL = "fail"
    RETRY_LATER = "retry_later"  # the task asked Celery to run it again later
    CANCEL_RUNNING = "cancel_running"  # the running task stopped on a cancel request
    CANCEL = "cancel"  # a job not running is cancelled at once
    REQUEUE = "requeue"  # POST /jobs/{id}/retry
    RECOVER = "recover"  # its lease expired: the job goes back for its next attempt
    GIVE_UP = "give_up"  # out of attempts: TooManyAttempts / WorkerLost


@dataclass(frozen=True)
class Rule:
    sources: frozenset[JobState]
    target: JobState


TABLE: dict[Transition, Rule] = {
    Transition.SUBMIT: Rule(frozenset(), Q),
    Transition.START: Rule(frozenset({Q, R, S}), S),
    Transition.SUCCEED: Rule(frozenset({S}), OK),
    Transition.FAIL: Rule(frozenset({S}), KO),
    Transition.RETRY_LATER: Rule(frozenset({S}), R),
    Transition.CANCEL_RUNNING: Rule(frozenset({S}), X),
    Transition.CANCEL: Rule(frozenset({Q, R}), X),
    Transition.REQUEUE: Rule(frozenset({KO, X}), Q),
    Transition.RECOVER: Rule(frozenset({S}), Q),
    Transition.GIVE_UP: Rule(frozenset({Q, R, S}), KO),
}

# How a finished attempt ended, by the transition that ended it (job_attempts.outcome).
OUTCOMES: dict[Transition, str] = {
    Transition.SUCCEED: "succeeded",
    Transition.FAIL: "failed",
    Transition.RETRY_LATER: "retrying",
    Transition.CANCEL_RUNNING: "cancelled",
    Transition.RECOVER: "lost",
    Transition.GIVE_UP: "lost",
}


def allowed(source: JobState, target: JobState) -> bool:
    """Whether some transition moves a job from `source` to `target`."""
    return any(source in rule.sources and rule.target == target for rule in TABLE.values())


def sources_sql(transition: Transition) -> str:
    """The states `transition` starts from, as an SQL list: `'queued', 'retrying'`."""
    return ", ".join(f"'{state.value}'" for state in sorted(TABLE[transition].sources))


def target(transition: Transition) -> JobState:
    return TABLE[transition].target
