"""Shipping counters per sink, kept in Redis so every worker adds to the same figures."""

from __future__ import annotations

import logging
from typing import Any

import redis

from app.models.base import utcnow

log = logging.getLogger(__name__)

PREFIX = "tasklane:traces:"
PUBLISHER = "publisher"
COUNTERS = ("shipped", "dropped", "failed_attempts")


def _key(name: str) -> str:
    return PREFIX + name


def count(client: redis.Redis, name: str, field: str, amount: int = 1, **notes: str) -> None:
    """Best effort: the counters must never be why a trace (or a job) fails."""
    try:
        pipe = client.pipeline()
        pipe.hincrby(_key(name), field, amount)
        if notes:
            for note, value in {**notes, f"last_{field}_at": utcnow().isoformat()}.items():
                pipe.hset(_key(name), note, value)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not count %s %s for trace sink %s", amount, field, name)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def read(client: redis.Redis, names: list[str]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for name in names:
        raw = client.hgetall(_key(name))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        result[name] = {
            **{c: int(fields.pop(c, 0)) for c in COUNTERS},
            **fields,
        }
    return result
