"""The PostgreSQL statements of the ledger: plain SQL on the driver, one per transition.

One round trip per transition; a transition that also writes the attempt row does so in a
data-modifying CTE of the same statement. Building and cache-keying SQLAlchemy statements
costs more CPU than running them (bench/throughput.py). `%(sync)s` ('on' or 'off') is
synchronous_commit for that statement's own transaction. The SQLite path and the rare paths
of both dialects are SQLAlchemy Core statements, in app/ledger/core_statements.py.

Every WHERE clause on `state` comes from the transition table (app/ledger/states.py).
"""

from __future__ import annotations

from app.ledger.states import OUTCOMES
from app.ledger.states import Transition as T
from app.ledger.states import sources_sql
from app.ledger.states import target
from app.models import JobState

_PG_SYNC = "set_config('synchronous_commit', %(sync)s, true) IS NOT NULL"

# --- PostgreSQL ------------------------------------------------------------------------

# The common start: one UPDATE of the job row, which holds the running attempt (number,
# worker, start) until it ends; its `job_attempts` row is written then, by the statement
# that ends it (the finish, the recovery loop, a takeover). Taking over a `started` job
# whose lease expired is left to `starting.begin_slow`, under the row's lock, which also
# writes the lost attempt's row. Writing the row at start too (an INSERT and its foreign-key
# check, then an UPDATE at the end) took start + finish from 0.60 to 0.76 ms per job,
# interleaved in one process against the local PostgreSQL.
PG_START = f"""
UPDATE jobs SET state = '{target(T.START).value}', attempts = attempts + 1,
  worker = %(worker)s, queue = %(queue)s, started_at = %(now)s, finished_at = NULL,
  updated_at = %(now)s, lease_owner = %(owner)s, lease_expires_at = %(lease)s,
  published_at = COALESCE(published_at, %(now)s)
WHERE id = %(id)s AND state IN ({sources_sql(T.START)}) AND state <> '{JobState.STARTED.value}'
  AND attempts < max_attempts AND cancel_requested_at IS NULL AND {_PG_SYNC}
RETURNING attempts
"""

# An attempt's row, written when it ends; ON CONFLICT finishes a row that a worker of an
# older release opened at start, and never rewrites an ended one.
_PG_END_ATTEMPT = """
  INSERT INTO job_attempts
    (job_id, number, worker, started_at, finished_at, outcome, error_type, error_message)
  SELECT {source}.id, {source}.attempts, {source}.worker, {source}.started_at, %(now)s,
    '{outcome}', {error_type}, {error_message}
  FROM {source} WHERE {source}.attempts >= 1 AND {source}.started_at IS NOT NULL
  ON CONFLICT (job_id, number) DO UPDATE SET finished_at = excluded.finished_at,
    outcome = excluded.outcome, error_type = excluded.error_type,
    error_message = excluded.error_message
  WHERE job_attempts.finished_at IS NULL
"""

_PG_FINISH_SET = {
    T.SUCCEED: "result = %(result)s, error_type = NULL, error_message = NULL, "
    "finished_at = %(now)s",
    T.FAIL: "error_type = %(error_type)s, error_message = %(error_message)s, finished_at = %(now)s",
    T.RETRY_LATER: "error_type = COALESCE(%(error_type)s, error_type), "
    "error_message = COALESCE(%(error_message)s, error_message), eta = %(eta)s",
    T.CANCEL_RUNNING: "finished_at = %(now)s",
}


# A success ends the job for good (no transition leaves `succeeded`), so its attempt stays in
# the job row (number, worker, start, finish) and `Job.attempt_log` reads it from there: one
# UPDATE, no attempt row. Writing that row took start + finish from 0.66 to 0.76 ms per job
# (interleaved in one process against the local PostgreSQL, 2,400 jobs a side). After the
# other endings the job moves on (a retry, a requeue, a next attempt): their attempt keeps
# a row of its own.
KEEPS_ATTEMPT_ROW = frozenset(_PG_FINISH_SET) - {T.SUCCEED}


def _pg_finish(transition: T) -> str:
    # `number` NULL: the worker's main process records a child it killed (hard time limit)
    # and does not know the attempt; the current one is the child's.
    ended = f"""
  UPDATE jobs SET state = '{target(transition).value}', {_PG_FINISH_SET[transition]},
    updated_at = %(now)s, lease_owner = NULL, lease_expires_at = NULL
  WHERE id = %(id)s AND state IN ({sources_sql(transition)})
    AND (%(number)s::int IS NULL OR attempts = %(number)s::int)"""
    if transition not in KEEPS_ATTEMPT_ROW:
        return f"{ended} AND {_PG_SYNC}\n  RETURNING attempts\n"
    attempt = _PG_END_ATTEMPT.format(
        source="f",
        outcome=OUTCOMES[transition],
        error_type="%(error_type)s",
        error_message="%(error_message)s",
    )
    return f"""
WITH f AS ({ended}
  RETURNING id, attempts, worker, started_at
), attempt AS ({attempt})
SELECT attempts FROM f WHERE {_PG_SYNC}
"""


PG_FINISH: dict[T, str] = {transition: _pg_finish(transition) for transition in _PG_FINISH_SET}

PG_PROGRESS = f"""
UPDATE jobs SET progress_current = %(current)s, progress_total = %(total)s,
  progress_message = %(message)s, updated_at = %(now)s
WHERE id = %(id)s AND {_PG_SYNC}
RETURNING cancel_requested_at IS NOT NULL
"""

PG_CANCEL_REQUESTED = "SELECT cancel_requested_at IS NOT NULL FROM jobs WHERE id = %(id)s"

# One statement per worker process per interval, for all of its running jobs.
PG_HEARTBEAT = f"""
UPDATE jobs SET lease_expires_at = %(lease)s
WHERE lease_owner = %(owner)s AND state = 'started' AND {_PG_SYNC}
"""

# A child the worker's main process saw die: its lease need not run out first.
PG_EXPIRE = """
UPDATE jobs SET lease_expires_at = %(now)s
WHERE id = %(id)s AND state = 'started' AND lease_expires_at > %(now)s
"""

_REQUEUED = "j.cancel_requested_at IS NULL AND j.attempts < j.max_attempts"
_GIVEN_UP = "j.cancel_requested_at IS NULL AND j.attempts >= j.max_attempts"
_RETURNED = "id, state, task, queue, args, eta, priority, notify_to"
_PG_LOST_ATTEMPT = _PG_END_ATTEMPT.format(
    source="moved",
    outcome=OUTCOMES[T.RECOVER],
    error_type="'WorkerLost'",
    error_message="%(lost_message)s",
)
PG_RECOVER = f"""
WITH expired AS (
  SELECT id FROM jobs WHERE state = 'started' AND lease_expires_at < %(now)s
  ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), moved AS (
  UPDATE jobs j SET
    state = CASE WHEN j.cancel_requested_at IS NOT NULL THEN '{target(T.CANCEL_RUNNING).value}'
      WHEN j.attempts < j.max_attempts THEN '{target(T.RECOVER).value}'
      ELSE '{target(T.GIVE_UP).value}' END,
    error_type = CASE WHEN {_GIVEN_UP} THEN 'WorkerLost' ELSE j.error_type END,
    error_message = CASE WHEN {_GIVEN_UP} THEN %(give_up_message)s ELSE j.error_message END,
    finished_at = CASE WHEN {_REQUEUED} THEN NULL ELSE %(now)s END,
    published_at = CASE WHEN {_REQUEUED} THEN NULL ELSE j.published_at END,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = %(now)s
  FROM expired WHERE j.id = expired.id AND j.state = 'started'
  RETURNING j.id, j.state, j.task, j.queue, j.args, j.eta, j.priority, j.notify_to, j.attempts,
    j.worker, j.started_at
), closed AS ({_PG_LOST_ATTEMPT})
SELECT {_RETURNED} FROM moved
"""

# The outbox relay claims intents by moving their clock: a concurrent relay skips them,
# and one whose publish failed is due again after the grace period.
PG_CLAIM = f"""
UPDATE jobs SET updated_at = %(now)s
WHERE id IN (
  SELECT id FROM jobs WHERE published_at IS NULL AND state = 'queued' AND updated_at < %(due)s
  ORDER BY updated_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
) AND published_at IS NULL AND state = 'queued' AND updated_at < %(due)s
RETURNING {_RETURNED}
"""

PG_CONFIRM = """
UPDATE jobs SET published_at = %(now)s WHERE id = ANY(%(ids)s) AND published_at IS NULL
"""
