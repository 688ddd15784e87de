"""Running one call beside the caller's own work: a thread (a greenlet under gevent)."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager


class _Beside:
    def __init__(self, call: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.waited = False
        # The caller's context goes along: its trace span is the parent of the call's spans.
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run, call), name="tasklane-beside", daemon=True
        )

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as exc:  # handed to the waiting caller, raised there
            self.error = exc

    def wait(self) -> None:
        """Until the call returned; raises its error (once)."""
        self.thread.join()
        if self.error is not None and not self.waited:
            self.waited = True
            raise self.error
        self.waited = True


@contextmanager
def beside(call: Callable[[], object] | None) -> Iterator[Callable[[], None]]:
    """Start `call` in the background; yields the function that waits for it and raises
    its error. Leaving the block waits too (an error not waited for is raised then)."""
    if call is None:
        yield lambda: None
        return
    running = _Beside(call)
    running.thread.start()
    # Under gevent the call starts only when this greenlet yields: let it send its work.
    time.sleep(0)
    try:
        yield running.wait
    finally:
        running.wait()
