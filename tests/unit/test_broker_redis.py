"""kombu's Redis transport with one client per channel (app/broker_redis.py), on a real Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from flask import Flask
from kombu import Connection

from app import broker_redis
from app.extensions.ext_celery import celery_config
from app.unanswered_redis import Unanswered
from config import settings_of
from tests.support.waiting import wait_for


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


def _reserved(redis_url: str, tag: str) -> bool:
    client = redis.Redis.from_url(redis_url)
    try:
        in_hash = client.hexists("unacked", tag)
        in_index = client.zscore("unacked_index", tag) is not None
        assert in_hash == in_index, "kombu's unacked hash and index disagree"
        return bool(in_hash)
    finally:
        client.close()


def test_reserved_messages_are_recorded_and_acked_without_a_reply(redis_url: str) -> None:
    with Connection(redis_url, transport=broker_redis.TRANSPORT) as connection:
        channel: Any = connection.default_channel
        queue = connection.SimpleQueue(f"tasklane-test-unanswered-{uuid.uuid4().hex}")
        try:
            queue.put({"n": 1})
            message = queue.get(timeout=5)
            tag = message.delivery_tag
            # Recorded for kombu's restore (shutdown, visibility timeout) as kombu records it.
            wait_for(lambda: _reserved(redis_url, tag), what="the reserved message's record")
            message.ack()
            wait_for(lambda: not _reserved(redis_url, tag), what="the record's removal")
            # Both went out on the reply-less connection, and not one answer waits there.
            unanswered = channel._unanswered._connection(channel.pool)
            assert not unanswered.can_read(timeout=0.2)
        finally:
            queue.queue.delete()
            queue.close()


def test_when_the_unanswered_write_fails_kombus_answered_one_records_it(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise redis.ConnectionError("connection reset")

    monkeypatch.setattr(Unanswered, "send", broken)
    with Connection(redis_url, transport=broker_redis.TRANSPORT) as connection:
        queue = connection.SimpleQueue(f"tasklane-test-unanswered-{uuid.uuid4().hex}")
        try:
            queue.put({"n": 1})
            message = queue.get(timeout=5)
            # Answered: written by the time the message is handed over, no wait needed.
            assert _reserved(redis_url, message.delivery_tag)
            message.ack()
            assert not _reserved(redis_url, message.delivery_tag)
        finally:
            queue.queue.delete()
            queue.close()
