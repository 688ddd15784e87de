"""A process a test starts and stops (a worker, the API, Flower), its output kept in a log.

The one place for what they share: started from the project root with its output in a log
file, a start-up wait that fails at once (with the log) if the process exits instead of
answering, and a stop that SIGKILLs what does not obey SIGTERM in time.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self
from typing import TypeVar

import httpx

from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The status `url` answers with, or None while nothing answers there."""
    try:
        return httpx.get(url, timeout=timeout).status_code
    except httpx.HTTPError:
        return None


class LoggedProcess:
    """`command` run from the project root; stdout and stderr go to `log_path`.

    `own_group` starts it in a session of its own and signals the whole group: a server whose
    own workers (gunicorn's, Flower's) must go with it.
    """

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str],
        log_path: Path,
        own_group: bool = False,
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_path
        self.own_group = own_group
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> Self:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.own_group,
            )
        return self

    def wait_answering(
        self, probe: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.25
    ) -> Self:
        """Until `probe()` is true (deadline stretched by load); an exit fails at once."""

        def answering() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited; log:\n{self.log()}")
            return probe()

        wait_for(
            answering, timeout=timeout, interval=interval, what=f"{what} (log: {self.log_path})"
        )
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; the exit status (None if never started)."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self._signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            return self.process.wait()

    def _signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        if self.own_group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


P = TypeVar("P", bound=LoggedProcess)


@contextmanager
def all_running(processes: Iterable[P], ready: Callable[[P], object]) -> Iterator[list[P]]:
    """The processes started at once (each takes seconds to import and connect), then each
    waited for with `ready`; all stopped, last started first, however the block ends."""
    started = list(processes)
    try:
        for process in started:
            process.spawn()
        for process in started:
            ready(process)
        yield started
    finally:
        for process in reversed(started):
            process.stop()
