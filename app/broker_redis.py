"""kombu's Redis transport with one client per channel for its synchronous commands.

kombu 5.7.0 wraps a new `redis.Redis` around the channel's connection pool for every command
it sends outside the consuming loop (`Channel.conn_or_acquire` -> `_create_client`): every
publish, every acknowledgement, every reserved message it records in its unacked hash. With
redis-py 8 building one costs about 60 us (its retry, callback and credential set-up), as
much as half a Redis round trip: 4% of a `POST /jobs` in the API, and two per job in a
worker's main process, the process a prefork drain waits on (py-spy: 8% of its samples).

A `redis.Redis` holds no connection of its own (each command borrows one from the pool and
gives it back) and no per-command state, so one client serves every command of the channel,
from any thread or greenlet, as redis-py documents for a shared client. The client is built
afresh when the channel's pool is (after a connection loss kombu makes a new one).

Its QoS records each reserved message (kombu's unacked hash and index) and removes it at
the acknowledgement without waiting for Redis's answer: both are MULTI/EXEC pipelines, two
round trips per job in the worker's main process, where a prefork drain spent 42 % of its
samples, mostly waiting for the replies. They go out on one connection per channel in
`CLIENT REPLY OFF` (app/unanswered_redis.py), in order. What that can lose (the socket's
contents when Redis goes away) the ledger covers: a lost acknowledgement leaves a record
that kombu redelivers after the visibility timeout, to a job already finished, which a
worker then does not run (app/ledger/starting.py); a lost record leaves a reserved message
the broker cannot restore, which the relay finds and publishes again (app/ledger/reserved.py).
A write that fails falls back to kombu's own answered pipeline, and so to its errors.

Used for `redis://` brokers only (app/extensions/ext_celery.py sets `broker_transport`);
`rediss://`, sentinel and RabbitMQ keep kombu's own transports.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

from app.unanswered_redis import SEND_ERRORS
from app.unanswered_redis import Unanswered

log = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):  # type: ignore[misc]  # kombu is untyped
    """kombu's Redis QoS, its record and removal of a reserved message left unanswered."""

    def append(self, message: Any, delivery_tag: str) -> None:
        delivery = message.delivery_info
        record = dumps([message._raw, delivery["exchange"], delivery["routing_key"]])
        commands = [
            ("MULTI",),
            ("ZADD", self.unacked_index_key, time.time(), delivery_tag),
            ("HSET", self.unacked_key, delivery_tag, record),
            ("EXEC",),
        ]
        if not self.channel.send_unanswered(commands):
            super().append(message, delivery_tag)
            return
        virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        commands = [
            ("MULTI",),
            ("ZREM", self.unacked_index_key, delivery_tag),
            ("HDEL", self.unacked_key, delivery_tag),
            ("EXEC",),
        ]
        if not self.channel.send_unanswered(commands):
            super().ack(delivery_tag)
            return
        virtual.QoS.ack(self, delivery_tag)


class Channel(kombu_redis.Channel):  # type: ignore[misc]  # kombu is untyped
    QoS = QoS
    _shared_client: Any = None
    _unanswered: Unanswered | None = None

    def send_unanswered(self, commands: list[tuple[Any, ...]]) -> bool:
        """Write `commands` on the channel's reply-less connection; False if that failed
        (the caller then sends them answered, and meets the broker's error there)."""
        if self._unanswered is None:
            self._unanswered = Unanswered()
        try:
            self._unanswered.send(self.pool, commands)
        except SEND_ERRORS as exc:
            log.warning("broker: an unanswered write failed (%s); sending it answered", exc)
            return False
        return True

    def close(self) -> None:
        if self._unanswered is not None:
            self._unanswered.close()
        super().close()

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            # The consuming loop's client: kombu keeps that one itself.
            return super()._create_client(asynchronous=True)
        client = self._shared_client
        if client is None or client.connection_pool is not self.pool:
            client = self._shared_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


# The value of Celery's `broker_transport` that selects it.
TRANSPORT = f"{__name__}:Transport"
