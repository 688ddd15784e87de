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

Used for `redis://` brokers only (app/extensions/ext_celery.py sets `broker_transport`);
`rediss://`, sentinel and RabbitMQ keep kombu's own transports.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):  # type: ignore[misc]  # kombu is untyped
    _shared_client: Any = None

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
