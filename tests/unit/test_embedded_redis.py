from __future__ import annotations

import os
from pathlib import Path

import redis

from app import embedded_redis


def test_embedded_redis_starts_once_is_shared_and_stops(tmp_path: Path) -> None:
    instance = str(tmp_path / "instance")
    sock = embedded_redis.ensure_running(instance)
    try:
        assert len(sock) < 100  # unix socket paths have a hard length limit
        client = redis.Redis(unix_socket_path=sock)
        client.set("k", "v")
        # A second process of the same checkout reuses the same server.
        assert embedded_redis.ensure_running(instance) == sock
        assert client.get("k") == b"v"
        assert (Path(instance) / "redis" / "redis.pid").exists()
    finally:
        assert embedded_redis.stop(instance) is True
    assert not os.path.exists(sock) or not embedded_redis._ping(sock)
    assert embedded_redis.stop(instance) is False
