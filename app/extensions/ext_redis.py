"""Redis: the configured server, or the embedded one Tasklane runs itself.

Resolving the URL does no I/O: the embedded server's socket path is derived from the
instance folder, so every process of one checkout agrees on it. Entry points start the
embedded server (`app.embedded_redis.ensure_for`) before they use it.
"""

from __future__ import annotations

import redis
from flask import Flask

from app import embedded_redis
from config import Settings


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    if settings.REDIS_URL:
        url = settings.REDIS_URL
        broker = url
    else:
        socket = embedded_redis.socket_path(app.instance_path)
        url = f"unix://{socket}?db=0"
        broker = f"redis+socket://{socket}?virtual_host=0"
    app.config["REDIS_URL"] = url
    app.config["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL or broker
    app.config["CELERY_RESULT_BACKEND"] = settings.CELERY_RESULT_BACKEND or broker
    app.extensions["redis"] = redis.Redis.from_url(url)
