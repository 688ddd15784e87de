"""kombu's Redis transport with one client per channel (app/broker_redis.py), on a real Redis."""

from __future__ import annotations

from typing import Any

from flask import Flask
from kombu import Connection

from app import broker_redis
from app.extensions.ext_celery import celery_config
from config import settings_of


def test_a_redis_broker_uses_it_and_others_keep_kombus(app: Flask) -> None:
    settings = settings_of(app)
    assert app.extensions["celery"].conf.broker_transport == broker_redis.TRANSPORT
    for url in ("amqp://guest:guest@127.0.0.1:5672//", "rediss://127.0.0.1:6380/0"):
        app.config["CELERY_BROKER_URL"], saved = url, app.config["CELERY_BROKER_URL"]
        try:
            assert celery_config(app, settings)["broker_transport"] is None
        finally:
            app.config["CELERY_BROKER_URL"] = saved


def test_every_command_of_a_channel_shares_one_client(redis_url: str) -> None:
    with Connection(redis_url, transport=broker_redis.TRANSPORT) as connection:
        channel: Any = connection.default_channel
        assert isinstance(channel, broker_redis.Channel)
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        queue = connection.SimpleQueue("tasklane-test-broker-redis")
        try:
            queue.put({"n": 1})  # a publish through the shared client
            message = queue.get(timeout=5)
            assert message.payload == {"n": 1}
            message.ack()  # and the acknowledgement
        finally:
            queue.queue.delete()
            queue.close()
        # The consuming loop's client is kombu's own, not the shared one.
        assert channel._create_client(asynchronous=True) is not first


def test_a_new_pool_gets_a_new_client(redis_url: str) -> None:
    """After a connection loss kombu drops the channel's pool; the client follows it."""
    with Connection(redis_url, transport=broker_redis.TRANSPORT) as connection:
        channel: Any = connection.default_channel
        before = channel._create_client()
        channel._disconnect_pools()
        after = channel._create_client()
        assert after is not before
        assert after.connection_pool is channel.pool
        assert after.ping()
