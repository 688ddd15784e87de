"""The real stack for browser tests: `./entrypoint.sh api` (gunicorn) and `flower`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.support.logged_process import LoggedProcess
from tests.support.logged_process import http_status
from tests.support.processes import free_port

CHROMIUM = os.environ.get("TASKLANE_CHROMIUM", "/usr/bin/chromium")
# No browser download ever: Debian's chromium, with nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_missing() -> str | None:
    if os.path.exists(CHROMIUM) or shutil.which(CHROMIUM):
        return None
    return f"{CHROMIUM} not found; install Debian's chromium (`apt-get install -y chromium`)"


class Served(LoggedProcess):
    """A process started through entrypoint.sh that answers HTTP on a loopback port.

    It runs in a process group of its own: gunicorn's workers and Flower go with it.
    """

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        command = ["./entrypoint.sh", *args]
        super().__init__(
            args[0], command, env=env, log_path=log_dir / f"{name}.log", own_group=True
        )

    def start(self, probe_path: str, timeout: float = 90.0) -> Served:
        return self.spawn().wait_ready(probe_path, timeout)

    def wait_ready(self, probe_path: str, timeout: float = 90.0) -> Served:
        return self.wait_answering(
            lambda: self._answers(probe_path), timeout=timeout, what=f"{self.name} on {self.origin}"
        )

    def _answers(self, path: str) -> bool:
        status = http_status(self.origin + path)
        return status is not None and status < 500
