"""Real Celery worker processes for integration tests, started exactly as users start them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from tests.support.waiting import PROCESS_START_TIMEOUT
from tests.support.waiting import load_factor
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
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


class WorkerProcess:
    """`celery -A app.celery worker` in a subprocess, with its log kept for failure reports."""

    def __init__(
        self, hostname: str, command: list[str], *, env: dict[str, str], log_dir: Path
    ) -> None:
        self.hostname = hostname
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{hostname.split('@')[0]}.log"
        self.process: subprocess.Popen[bytes] | None = None

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
        cls,
        name: str,
        *,
        pool: str,
        concurrency: int,
        queues: list[str],
        env: dict[str, str],
        log_dir: Path,
    ) -> WorkerProcess:
        """A worker started with a plain `celery -A app.celery worker` command line."""
        hostname = f"{name}-{os.getpid()}@tests"
        command = celery_worker_command(
            hostname=hostname, pool=pool, concurrency=concurrency, queues=",".join(queues)
        )
        return cls(hostname, command, env=env, log_dir=log_dir)

    def start(self, celery_app: Celery, timeout: float = PROCESS_START_TIMEOUT) -> WorkerProcess:
        self.spawn()
        return self.wait_ready(celery_app, timeout)

    def spawn(self) -> WorkerProcess:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def wait_ready(
        self, celery_app: Celery, timeout: float = PROCESS_START_TIMEOUT
    ) -> WorkerProcess:
        """Until the worker answers a ping: its consumers are up. The deadline is generous
        and stretches with load (waiting.py); a worker that exits fails at once."""
        wait_for(
            lambda: self._alive_and_answering(celery_app),
            timeout=timeout,
            interval=0.25,
            what=f"worker {self.hostname} to answer ping (log: {self.log_path})",
        )
        return self

    def _alive_and_answering(self, celery_app: Celery) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.hostname} exited; log:\n{self.log()}")
        try:
            replies: Any = celery_app.control.ping(destination=[self.hostname], timeout=0.5)
        except BROKER_ERRORS:
            # The broker is restarting (a fault test): a stale pooled connection fails once.
            return False
        return bool(replies)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


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
