"""The shared task base and the decorator every Tasklane task is declared with.

The base keeps the job ledger current for every task with no per-task code: it starts the
attempt under a lease and refuses to run cancelled, finished or leased jobs (`__call__`),
and records success, failure and retries through Celery's task hooks, which also fire in
the worker's main process when a child hits its hard time limit.

A worker never runs a job it could not record as started: any database error on begin
hands the message back after a pause. It never acknowledges a message whose outcome it
could not record: the finish is retried until the database answers (bounded by
LEDGER_FINISH_RETRY_SECONDS), the message unacknowledged meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from celery import Task
from celery import shared_task
from celery.exceptions import Ignore
from celery.exceptions import Reject
from flask import Flask
from flask import has_app_context
from gevent import GreenletExit

from app import queues
from app.extensions.ext_database import db
from app.hooks import Outcome
from app.ledger import leases
from app.ledger import transitions as ledger
from app.ledger.errors import DATABASE_ERRORS
from app.models import JobState
from config import settings_of

log = logging.getLogger(__name__)

# The longest pause between two tries of an outcome the database did not take.
LEDGER_WRITE_MAX_DELAY = 5.0
# Where the task base keeps the attempt number on the request (None outside the child).
ATTEMPT = "tasklane_attempt"
# And when the attempt started (time.time()), for the after-run hooks' timings.
STARTED = "tasklane_started"


class JobCancelled(Exception):
    """Raised inside a task when its job was cancelled; the ledger records `cancelled`."""


class ExpectedFailure(Exception):
    """A failure caused by the job's input, not by Tasklane: recorded, not alerted on."""


def jsonable_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "_args": list(args)} if args else dict(kwargs)


def _retry_eta(when: Any) -> datetime | None:
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    if isinstance(when, int | float):
        return datetime.now(UTC) + timedelta(seconds=when)
    return None


def build_task_class(app: Flask) -> type[Task]:
    """A Celery task base bound to `app`: runs in its app context and keeps the ledger."""
    settings = settings_of(app)

    class FlaskTask(Task):  # type: ignore[misc]
        # Declared per task by `job_task`; here so every task has them.
        public: bool = False
        tasklane_queue: str | None = None
        # False: a plain Celery task (ops_trace.ship) with no job row, outcome or hooks.
        ledger: bool = True

        @contextmanager
        def _context(self) -> Iterator[None]:
            # Reuse an active context: a second one would get a second, blind session.
            if has_app_context():
                yield
            else:
                with app.app_context():
                    yield

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with self._context():
                return self._run_tracked(args, kwargs)

        def _run_tracked(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            request = self.request
            if request.called_directly or not request.id or not self.ledger:
                return self.run(*args, **kwargs)
            delivery = request.delivery_info or {}
            queue = delivery.get("routing_key") or self.tasklane_queue or ""
            max_attempts = (self.max_retries or 0) + settings.broker.task_max_redeliveries + 1
            try:
                number = ledger.begin_attempt(
                    request.id,
                    task=self.name,
                    queue=queue,
                    worker=request.hostname,
                    args=jsonable_args(args, kwargs),
                    max_attempts=max_attempts,
                )
            except DATABASE_ERRORS as exc:
                db.session.rollback()
                log.warning(
                    "ledger unavailable (%s); putting job %s back on its queue",
                    type(exc).__name__,
                    request.id,
                )
                # The database is down: hand the message back rather than run unrecorded,
                # after a pause, so a down database is not asked again at once.
                time.sleep(settings.ledger.begin_backoff)
                raise Reject("ledger unavailable", requeue=True) from None
            if number is None:
                log.info("job %s is cancelled, finished or running elsewhere; skipped", request.id)
                raise Ignore()
            setattr(request, ATTEMPT, number)
            setattr(request, STARTED, time.time())
            try:
                return self.run(*args, **kwargs)
            except JobCancelled:
                self._write(ledger.record_cancelled, request.id, number)
                self._after_run(request.id, JobState.CANCELLED)
                raise Ignore() from None
            except GreenletExit:
                # The run was killed from outside (Celery kills a gevent job's greenlet when
                # the broker connection drops): no outcome hook follows. Stop renewing its
                # lease, so the recovery loop runs it again once the lease has expired.
                leases.release(request.id)
                raise

        def progress(
            self, current: int, total: int | None = None, message: str | None = None
        ) -> None:
            """Report progress on the job; raises JobCancelled once cancel was requested."""
            if self.request.called_directly or not self.request.id:
                return
            if ledger.record_progress(self.request.id, current, total, message):
                raise JobCancelled(f"job {self.request.id} was cancelled")

        def check_cancelled(self) -> None:
            """Raise JobCancelled when the job's cancellation was requested."""
            if self.request.id and ledger.cancel_requested(self.request.id):
                raise JobCancelled(f"job {self.request.id} was cancelled")

        def _attempt(self) -> int | None:
            # None in the main process (a child killed at its hard limit): the current one.
            return getattr(self.request, ATTEMPT, None)

        def _write(self, record: Callable[..., Any], job_id: str, *args: Any) -> None:
            """Record an outcome; retried until the database answers, within a bound."""
            deadline = time.monotonic() + settings.ledger.finish_retry_seconds
            delay = 0.5
            with self._context():
                while True:
                    try:
                        record(job_id, *args)
                        return
                    except GreenletExit:
                        # Killed from outside mid-write (as in `_run_tracked`): the lease
                        # must lapse, or the heartbeat keeps the job `started` forever.
                        leases.release(job_id)
                        raise
                    except DATABASE_ERRORS as exc:
                        db.session.rollback()
                        if time.monotonic() + delay > deadline:
                            # The lease lapses now, so the job runs again rather than stick.
                            leases.release(job_id)
                            log.error(
                                "gave up recording %s for job %s after %ss: %s",
                                record.__name__,
                                job_id,
                                settings.ledger.finish_retry_seconds,
                                exc,
                            )
                            return
                        log.warning(
                            "could not record %s for job %s (%s); retrying in %.1fs",
                            record.__name__,
                            job_id,
                            type(exc).__name__,
                            delay,
                        )
                        time.sleep(delay)
                        delay = min(delay * 2, LEDGER_WRITE_MAX_DELAY)

        def _after_run(
            self, job_id: str, state: JobState, exc: BaseException | None = None, result: Any = None
        ) -> None:
            """The after-run hooks (app/hooks.py), once the outcome is recorded."""
            registry = app.extensions.get("hooks")
            if registry is None:
                return
            main = self._attempt() is None
            outcome = Outcome(self, job_id, state, exc, in_main_process=main, result=result)
            with self._context():
                registry.run(outcome)

        # One app context for the ledger write and the hooks after it.
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            if not self.ledger:
                return
            with self._context():
                self._write(ledger.record_success, task_id, retval, self._attempt())
                self._after_run(task_id, JobState.SUCCEEDED, result=retval)

        def on_failure(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            if not self.ledger:
                return
            with self._context():
                self._write(ledger.record_failure, task_id, exc, self._attempt())
                self._after_run(task_id, JobState.FAILED, exc)

        def on_retry(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            if not self.ledger:
                return
            when = getattr(getattr(einfo, "exception", None), "when", None)
            with self._context():
                self._write(ledger.record_retry, task_id, exc, _retry_eta(when), self._attempt())
                self._after_run(task_id, JobState.RETRYING, exc)

    return FlaskTask


def job_task(
    name: str,
    *,
    queue: str,
    soft_time_limit: int,
    time_limit: int,
    max_retries: int,
    public: bool = False,
    **options: Any,
) -> Callable[[Callable[..., Any]], Any]:
    """Declare a task: stable dotted name, declared queue, explicit limits and retry policy.

    The queue is checked against the contract at import, so a task bound for an undeclared
    queue fails before any worker or API starts.
    """
    queues.queue(queue)
    if time_limit <= soft_time_limit:
        raise ValueError(f"{name}: time_limit must exceed soft_time_limit")
    options.update(soft_time_limit=soft_time_limit, time_limit=time_limit, max_retries=max_retries)
    decorator: Callable[[Callable[..., Any]], Any]
    decorator = shared_task(name=name, tasklane_queue=queue, public=public, bind=True, **options)
    return decorator
