"""A private redis-server that a fault test may stop, SIGKILL and start again on the same port.

Persistence is what a production broker should run with: the append-only file on
(`appendfsync everysec`, Redis's default). Redis writes every acknowledged command to the
AOF before it replies, so a graceful stop (SIGTERM: Redis fsyncs the AOF and exits) and a
SIGKILL of the process alike keep every queued message; only a crash of the machine itself
could lose the last second. RDB snapshots are off: they add nothing to the AOF here.

It is started by the app's one launcher (`app.embedded_redis.launch`, persist=True), as the
dev stack's Redis is; the launcher also makes the kernel stop it if the test run dies.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

from app import embedded_redis
from tests.support.processes import ServerProcess
from tests.support.processes import free_port
from tests.support.waiting import load_factor

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


class RedisServer(ServerProcess):
    """One redis-server process at a time on a fixed port and data directory."""

    kind = "redis-server"

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        super().__init__()
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="tasklane-redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        # The launcher's log, appended to across restarts.
        self.log_path = self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _open(self) -> None:
        self.first_start(self.start)

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        if self.running():
            return self
        try:
            server = embedded_redis.launch(
                self.data_dir, port=self.port, persist=True, timeout=timeout * load_factor()
            )
        except embedded_redis.EmbeddedRedisError as exc:
            raise AssertionError(f"{exc}; log:\n{self.log()}") from None
        self.process = server.process
        return self

    def answers(self) -> bool:
        return embedded_redis.ping(self.url)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful stop: SIGTERM, which makes Redis flush its AOF and exit."""
        if not self.signal_and_wait(signal.SIGTERM, timeout):
            self.kill()

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye to clients; what an OOM kill or a node loss does."""
        self.signal_and_wait(signal.SIGKILL, STOP_TIMEOUT)

    def close(self) -> None:
        """Stop the server (SIGKILL) and remove a directory we made."""
        self.kill()
        super().close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
