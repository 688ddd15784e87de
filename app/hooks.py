"""The after-run hook registry: what runs once the ledger recorded a run's outcome.

The task base (app/tasking.py) runs every hook after its ledger write, in the order they
were added by `ext_celery.init_app`: notify mail, the ops_trace hand-off, metrics, Sentry.
An outcome the worker's main process records (a child killed at its hard time limit) runs
them too, with `in_main_process` set: hooks that read the task's request (gone with the
child) skip it. A hook's error is logged and never touches the recorded outcome or the
hooks after it. Task modules only declare tasks; nothing connects itself at import.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.models import JobState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    task: Any  # the Celery task; its `request` is the run's unless in_main_process
    job_id: str
    state: JobState  # succeeded, failed, retrying or cancelled
    exception: BaseException | None = None
    # Recorded by the pool's main process after it killed the child (hard time limit).
    in_main_process: bool = False
    # The task's return value (succeeded only): hooks use it instead of re-reading the row.
    result: Any = None


Hook = Callable[[Outcome], None]


class Registry:
    """Named hooks, run in the order they were added."""

    def __init__(self) -> None:
        self._hooks: list[tuple[str, Hook]] = []

    def add(self, name: str, hook: Hook) -> None:
        if name in self.names():
            raise ValueError(f"after-run hook {name!r} is registered twice")
        self._hooks.append((name, hook))

    def names(self) -> list[str]:
        return [name for name, _hook in self._hooks]

    def run(self, outcome: Outcome) -> None:
        for name, hook in self._hooks:
            try:
                hook(outcome)
            except Exception:
                log.exception("after-run hook %s failed for job %s", name, outcome.job_id)
