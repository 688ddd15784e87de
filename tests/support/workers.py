"""Real Celery worker processes for integration tests, started exactly as users start them."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from tests.support.logged_process import LoggedProcess
from tests.support.waiting import PROCESS_START_TIMEOUT
from tests.support.waiting import load_factor
from tests.support.waiting import wait_for

BROKER_ERRORS = (OperationalError, redis.RedisError, OSError)
# How long a broadcast waits for the workers' replies on an idle machine (stretched by load):
# a reply that comes later is lost, and its worker would never be given its queue back.
CONTROL_REPLY_TIMEOUT = 2.0


def celery_worker_command(loglevel: str = "INFO", **options: str | int) -> list[str]:
    """`python -m celery -A app.celery worker --NAME VALUE ...`, as the README writes it;
    benchmarks start their workers with it too."""
    command = [sys.executable, "-m", "celery", "-A", "app.celery", "worker"]
    for name, value in {**options, "loglevel": loglevel}.items():
        command += [f"--{name}", str(value)]
    return command


class WorkerProcess(LoggedProcess):
    """`celery -A app.celery worker` in a subprocess, with its log kept for failure reports."""

    def __init__(
        self, hostname: str, command: list[str], *, env: dict[str, str], log_dir: Path
    ) -> None:
        log_path = log_dir / f"{hostname.split('@')[0]}.log"
        super().__init__(f"worker {hostname}", command, env=env, log_path=log_path)
        self.hostname = hostname

    @classmethod
    def for_profile(
        cls,
        profile: str,
        *,
        env: dict[str, str],
        log_dir: Path,
        name: str | None = None,
        **overrides: str,
    ) -> WorkerProcess:
        """A worker started through `entrypoint.sh worker PROFILE`, as operators start one.

        `name` tells apart two workers of one profile (default: the profile).
        """
        hostname = f"{name or profile}-{os.getpid()}@tests"
        worker_env = {**env, "WORKER_NAME": hostname, **overrides}
        return cls(
            hostname, ["./entrypoint.sh", "worker", profile], env=worker_env, log_dir=log_dir
        )

    @classmethod
    def celery(
        cls, name: str, arguments: str, *, env: dict[str, str], log_dir: Path
    ) -> WorkerProcess:
        """A worker started with a plain `celery -A app.celery worker` command line, its
        `arguments` written as on that line (`"-P gevent -c 10 -Q mail"`)."""
        hostname = f"{name}-{os.getpid()}@tests"
        command = celery_worker_command(hostname=hostname) + shlex.split(arguments)
        return cls(hostname, command, env=env, log_dir=log_dir)

    def start(self, celery_app: Celery, timeout: float = PROCESS_START_TIMEOUT) -> WorkerProcess:
        self.spawn()
        return self.wait_ready(celery_app, timeout)

    def wait_ready(
        self, celery_app: Celery, timeout: float = PROCESS_START_TIMEOUT
    ) -> WorkerProcess:
        """Until the worker answers a ping: its consumers are up. The deadline is generous
        and stretches with load (waiting.py); a worker that exits fails at once."""
        return self.wait_answering(
            lambda: self._answers_ping(celery_app),
            timeout=timeout,
            what=f"worker {self.hostname} to answer ping",
        )

    def _answers_ping(self, celery_app: Celery) -> bool:
        try:
            replies: Any = celery_app.control.ping(destination=[self.hostname], timeout=0.5)
        except BROKER_ERRORS:
            # The broker is restarting (a fault test): a stale pooled connection fails once.
            return False
        return bool(replies)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()


def consumers_of(celery_app: Celery, queue: str, timeout: float = 5.0) -> list[str]:
    """The workers consuming `queue` now (those that answer within `timeout`)."""
    active: Any = celery_app.control.inspect(timeout=timeout).active_queues() or {}
    return sorted(
        name for name, listed in active.items() if any(q["name"] == queue for q in listed)
    )


def pause_queue(celery_app: Celery, queue: str, timeout: float = 5.0) -> list[str]:
    """Stop the workers consuming `queue`; returns them, for `resume_queue`.

    Only those: every worker answers `cancel_consumer` "no longer consuming", whether it
    consumed the queue or not, so resuming every worker that answered once handed the io
    queues to the prefork worker, which runs generations without their gevent deadline.
    """
    paused = consumers_of(celery_app, queue, timeout)
    if paused:
        celery_app.control.cancel_consumer(queue, destination=paused, reply=True, timeout=timeout)
        # A worker replies before it acts (Celery schedules the change on its loop).
        wait_for(
            lambda: not set(paused) & set(consumers_of(celery_app, queue, timeout)),
            timeout=PROCESS_START_TIMEOUT,
            what=f"{paused} to stop consuming {queue}",
        )
    return paused


def resume_queue(celery_app: Celery, queue: str, paused: list[str], timeout: float = 5.0) -> None:
    if paused:
        celery_app.control.add_consumer(queue, destination=paused, reply=True, timeout=timeout)
        # Until each lists the queue again, the next module's pause would not see it as a
        # consumer, and it would take that module's messages (a mail to its outbox, say).
        wait_for(
            lambda: set(paused) <= set(consumers_of(celery_app, queue, timeout)),
            timeout=PROCESS_START_TIMEOUT,
            what=f"{paused} to consume {queue} again",
        )


@contextmanager
def sole_consumer(celery_app: Celery, queue: str, worker: WorkerProcess) -> Iterator[list[str]]:
    """Start `worker` as the only consumer of `queue`: the running workers stop consuming it
    first, and take it back when the block ends (however it ends), as `worker` stops.

    Yields the names of the workers paused, for a test that gives the queue back itself.
    """
    paused = pause_queue(celery_app, queue, CONTROL_REPLY_TIMEOUT * load_factor())
    try:
        worker.start(celery_app)
        yield paused
    finally:
        worker.stop()
        resume_queue(celery_app, queue, paused, CONTROL_REPLY_TIMEOUT * load_factor())
