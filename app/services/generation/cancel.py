"""Stop a generation that waits on a silent provider as soon as its job is cancelled.

Progress writes notice a cancel while tokens flow; while the provider is silent (a long
time to first token, a stalled stream) nothing would. Under gevent a watcher greenlet
polls the ledger during such quiet spells and throws JobCancelled into the generating
greenlet, the way gevent.Timeout does - but only while that greenlet waits on the
provider (`Watch.reading`), never during a database call, whose connection an exception
thrown mid-query would leave unusable. For the same reason the watcher is never killed:
it notices the end of the generation and returns.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import gevent
from flask import current_app
from gevent import monkey

from app.ledger import transitions as ledger
from app.tasking import JobCancelled


class Watch:
    """Tells the watcher the stream is alive, so it stays off the database meanwhile."""

    def __init__(self) -> None:
        self.active = True
        # True when a watcher greenlet polls the ledger; without one the stream asks itself.
        self.polling = False
        # True only while the generating greenlet waits for the provider's next chunk.
        self.reading = False
        self.last_activity = time.monotonic()

    def touch(self) -> None:
        self.last_activity = time.monotonic()


@contextmanager
def interrupt_on_cancel(job_id: str | None, interval: float) -> Iterator[Watch]:
    watch = Watch()
    if not job_id or not monkey.is_module_patched("socket"):
        yield watch
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    target = gevent.getcurrent()

    def throw() -> None:
        # Runs in the hub; the block may have ended since the cancel was seen.
        if watch.active and watch.reading:
            target.throw(JobCancelled(f"job {job_id} was cancelled"))

    def poll() -> None:
        while watch.active:
            gevent.sleep(interval)
            if time.monotonic() - watch.last_activity < interval:
                continue
            with app.app_context():
                requested = ledger.cancel_requested(job_id)
            if requested and watch.active:
                # Skipped while the greenlet is not reading; then the next poll tries again.
                gevent.get_hub().loop.run_callback(throw)

    watch.polling = True
    gevent.spawn(poll)
    try:
        yield watch
    finally:
        watch.active = False
