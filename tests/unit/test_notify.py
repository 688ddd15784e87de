"""Ledger notifications: in commit order, on a connection Redis sends no replies on."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from flask import Flask

from app.ledger import notify
from app.unanswered_redis import Unanswered
from tests.support.waiting import wait_for


def test_notifications_arrive_in_order_and_redis_sends_no_replies(app: Flask) -> None:
    job_id = f"notify-{uuid.uuid4().hex}"
    follower = redis.Redis.from_url(app.config["REDIS_URL"]).pubsub(ignore_subscribe_messages=True)
    follower.subscribe(notify.channel(job_id))
    wait_for(lambda: follower.subscribed, what="the follower's subscription")
    received: list[int] = []

    def all_received() -> bool:
        message = follower.get_message(timeout=0.1)
        if message is not None:
            received.append(json.loads(message["data"])["n"])
        return len(received) >= 50

    try:
        with app.app_context():
            for n in range(40):
                notify.publish_many([(job_id, json.dumps({"n": n}))])
            notify.publish_many((job_id, json.dumps({"n": n})) for n in range(40, 50))
        wait_for(all_received, what="50 notifications")
    finally:
        follower.close()

    assert received == list(range(50))
    # 50 PUBLISHes, and not one reply waits on the publishing connection.
    with app.app_context():
        pool = app.extensions["notify_redis"].connection_pool
        connection = notify._unanswered._connection(pool)
    assert not connection.can_read(timeout=0.2)


def test_with_redis_away_a_publish_neither_raises_nor_waits_again(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing listens on port 1: the connect is refused at once.
    away = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setitem(app.extensions, "notify_redis", away)
    monkeypatch.setattr(notify, "_down_until", 0.0)
    connects: list[int] = []
    real = Unanswered._connection

    def counted(self: Unanswered, pool: redis.ConnectionPool) -> object:
        connects.append(1)
        return real(self, pool)

    monkeypatch.setattr(Unanswered, "_connection", counted)
    with app.app_context():
        notify.publish_many([("a-job", "{}")])
        assert notify._down_until > time.monotonic()
        # Within the back-off the next transitions skip Redis altogether.
        notify.publish_many([("a-job", "{}")])
    assert connects == [1]
