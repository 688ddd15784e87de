"""The shared task base and the decorator every Tasklane task is declared with.

The base keeps the job ledger current for every task with no per-task code: it counts the
attempt and refuses to run cancelled or finished jobs (`__call__`), and records success,
failure and retries through Celery's task hooks, which also fire in the worker's main
process when a child hits its hard time limit.
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
from sqlalchemy.exc import SQLAlchemyError

from app import queues
from app.extensions.ext_database import db
from app.services import ledger

log = logging.getLogger(__name__)

# Hooks retry their ledger write for a short database outage before giving up.
LEDGER_WRITE_DELAYS = (0.5, 1.0, 2.0, 4.0)


class JobCancelled(Exception):
    """Raised inside a task when its job was cancelled; the ledger records `cancelled`."""


class ExpectedFailure(Exception):
    """A failure caused by the job's input, not by Tasklane: recorded, not alerted on."""


def _jsonable_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "_args": list(args)} if args else dict(kwargs)


def _retry_eta(when: Any) -> datetime | None:
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    if isinstance(when, int | float):
        return datetime.now(UTC) + timedelta(seconds=when)
    return None


def build_task_class(app: Flask) -> type[Task]:
    """A Celery task base bound to `app`: runs in its app context and keeps the ledger."""
    settings = app.config["SETTINGS"]

    class FlaskTask(Task):  # type: ignore[misc]
        # Declared per task by `job_task`; here so every task has them.
        public: bool = False
        tasklane_queue: str | None = None

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
            if request.called_directly or not request.id:
                return self.run(*args, **kwargs)
            delivery = request.delivery_info or {}
            queue = delivery.get("routing_key") or self.tasklane_queue or ""
            max_attempts = (self.max_retries or 0) + settings.TASK_MAX_REDELIVERIES + 1
            try:
                runnable = ledger.begin_attempt(
                    request.id,
                    task=self.name,
                    queue=queue,
                    worker=request.hostname,
                    args=_jsonable_args(args, kwargs),
                    max_attempts=max_attempts,
                )
            except SQLAlchemyError:
                db.session.rollback()
                log.exception("ledger unavailable; putting job %s back on its queue", request.id)
                # The database is down: hand the message back rather than run unrecorded.
                time.sleep(2.0)
                raise Reject("ledger unavailable", requeue=True) from None
            if not runnable:
                log.info("job %s is cancelled or finished; not running it", request.id)
                raise Ignore()
            try:
                return self.run(*args, **kwargs)
            except JobCancelled:
                self._write(ledger.record_cancelled, request.id)
                raise Ignore() from None

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

        def _write(self, record: Callable[..., None], *args: Any) -> None:
            with self._context():
                for delay in (*LEDGER_WRITE_DELAYS, None):
                    try:
                        record(*args)
                        return
                    except SQLAlchemyError:
                        db.session.rollback()
                        if delay is None:
                            log.exception(
                                "could not record %s for job %s", record.__name__, args[0]
                            )
                            return
                        time.sleep(delay)

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            self._write(ledger.record_success, task_id, retval)

        def on_failure(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            self._write(ledger.record_failure, task_id, exc)

        def on_retry(
            self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
        ) -> None:
            when = getattr(getattr(einfo, "exception", None), "when", None)
            self._write(ledger.record_retry, task_id, exc, _retry_eta(when))

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
    decorator: Callable[[Callable[..., Any]], Any] = shared_task(
        name=name,
        tasklane_queue=queue,
        public=public,
        bind=True,
        soft_time_limit=soft_time_limit,
        time_limit=time_limit,
        max_retries=max_retries,
        **options,
    )
    return decorator
