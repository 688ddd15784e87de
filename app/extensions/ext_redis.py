"""Redis: the configured server, or the running dev stack's embedded one; never a new one.

Without REDIS_URL a process attaches to the Redis that `./entrypoint.sh dev` runs for this
checkout (it publishes its URL in the instance folder). With neither, the app refuses to
build: a second worker host that forgot REDIS_URL must fail loudly, not get a broker of its
own where its jobs go nowhere.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from flask import Flask

from app import embedded_redis
from app.settings import reveal
from config import ConfigError
from config import Settings
from config import settings_of


def broker_url(redis_url: str) -> str:
    """kombu's spelling of a Redis URL: a unix socket is `redis+socket://`."""
    parts = urlsplit(redis_url)
    if parts.scheme != "unix":
        return redis_url
    db = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair).get("db", "0")
    return f"redis+socket://{parts.path}?virtual_host={db}"


def init_app(app: Flask) -> None:
    settings: Settings = settings_of(app)
    url = reveal(settings.broker.redis_url) or embedded_redis.attached_url(app.instance_path)
    if not url:
        raise ConfigError(embedded_redis.NOT_CONFIGURED)
    app.config["REDIS_URL"] = url
    app.config["CELERY_BROKER_URL"] = reveal(settings.broker.broker_url) or broker_url(url)
    # The ledger holds results; the backend is there for chords and groups in user tasks.
    app.config["CELERY_RESULT_BACKEND"] = reveal(settings.broker.result_backend) or broker_url(url)
    app.extensions["redis"] = redis.Redis.from_url(url)
