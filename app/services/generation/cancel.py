"""Stop a generation that waits on a silent provider as soon as its job is cancelled.

Progress writes notice a cancel, but a stream writes the database only every few seconds,
and while the provider is silent (a long time to first token, a stalled stream) nothing
would. Under gevent ONE watcher greenlet per process asks the ledger, every interval and in
one statement, which of the process's running generations were cancelled (a generation
younger than the interval is not asked about: it costs nothing), and throws JobCancelled
into each such generating greenlet, the way gevent.Timeout does - but only while that
greenlet waits on the provider (`Watch.reading`), never during a database call, whose
connection an exception thrown mid-query would leave unusable; the next poll tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from flask import current_app
from gevent import monkey
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy.engine import Engine

from app.ledger.errors import DATABASE_ERRORS
from app.ledger.execute import run_all
from app.models import Job
from app.tasking import JobCancelled

log = logging.getLogger(__name__)

# Which of these jobs were cancelled: read-only, one statement for the whole process.
CANCELLED_AMONG = select(Job.id).where(
    Job.id.in_(bindparam("p_ids", expanding=True)), Job.cancel_requested_at.is_not(None)
)


class Watch:
    """One generation under watch; tells the watcher when the stream is alive."""

    def __init__(self, job_id: str | None, target: Any = None) -> None:
        self.job_id = job_id
        self.target = target
        self.active = True
        # True when the process's watcher asks the ledger; without one the stream asks itself.
        self.polling = False
        # True only while the generating greenlet waits for the provider's next chunk.
        self.reading = False
        self.last_activity = time.monotonic()

    def touch(self) -> None:
        self.last_activity = time.monotonic()


class _Watcher:
    """The process's one cancel poller, over every generation it runs."""

    def __init__(self, engine: Engine, interval: float) -> None:
        self.engine = engine
        self.interval = interval
        self.watches: dict[str, Watch] = {}
        self.greenlet: gevent.Greenlet[Any, Any] | None = None

    def add(self, watch: Watch) -> None:
        assert watch.job_id is not None
        self.watches[watch.job_id] = watch
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)

    def remove(self, watch: Watch) -> None:
        if watch.job_id is not None and self.watches.get(watch.job_id) is watch:
            del self.watches[watch.job_id]

    def _run(self) -> None:
        while True:
            gevent.sleep(self.interval)
            try:
                self._poll()
            except Exception:
                # The watcher must outlive any one failure, or no cancel is seen again.
                log.exception("the generation cancel watcher failed; polling on")

    def _poll(self) -> None:
        now = time.monotonic()
        due = [
            w for w in self.watches.values() if w.active and now - w.last_activity >= self.interval
        ]
        if not due:
            return
        try:
            rows = run_all(self.engine, CANCELLED_AMONG, {"p_ids": [w.job_id for w in due]})
        except DATABASE_ERRORS as exc:
            log.warning("could not ask the ledger for cancels (%s); asking again", exc)
            return
        cancelled = {row[0] for row in rows}
        hub = gevent.get_hub()
        for watch in due:
            if watch.job_id in cancelled and watch.active:
                hub.loop.run_callback(_throw, watch)


def _throw(watch: Watch) -> None:
    # Runs in the hub; the generation may have ended, or be off the provider, since the poll.
    if watch.active and watch.reading:
        watch.target.throw(JobCancelled(f"job {watch.job_id} was cancelled"))


_watchers: dict[int, _Watcher] = {}


@contextmanager
def interrupt_on_cancel(job_id: str | None, interval: float) -> Iterator[Watch]:
    watch = Watch(job_id, gevent.getcurrent())
    if not job_id or not monkey.is_module_patched("socket"):
        yield watch
        return
    engine: Engine = current_app.extensions["ledger_engine"]
    watcher = _watchers.get(id(engine))
    if watcher is None:
        watcher = _watchers[id(engine)] = _Watcher(engine, interval)
    watch.polling = True
    watcher.add(watch)
    try:
        yield watch
    finally:
        watch.active = False
        watcher.remove(watch)
