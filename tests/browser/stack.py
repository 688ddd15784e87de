"""The real stack for browser tests: `./entrypoint.sh api` (gunicorn) and `flower`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import httpx

from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A process started through entrypoint.sh that answers HTTP on a loopback port."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.args = args
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, probe_path: str, timeout: float = 90.0) -> Served:
        return self.spawn().wait_ready(probe_path, timeout)

    def spawn(self) -> Served:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["./entrypoint.sh", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, probe_path: str, timeout: float = 90.0) -> Served:
        wait_for(
            lambda: self._answers(probe_path),
            timeout=timeout,
            interval=0.25,
            what=f"{self.args[0]} on {self.origin} (log: {self.log_path})",
        )
        return self

    def _answers(self, path: str) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"{self.args[0]} exited; log:\n{self.log_path.read_text()}")
        try:
            return httpx.get(self.origin + path, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self, grace: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # The whole session: gunicorn's workers and Flower go with their parent.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
