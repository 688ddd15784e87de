"""Celery's worker consumer, alive through a broker connection loss (setting `worker_consumer`).

celery 5.7.0 crashes the whole worker ("Unrecoverable error: AttributeError("'NoneType' object
has no attribute 'hostname'")", right after "Restoring 1 unacknowledged message(s)") when the
Redis connection drops while a message is unacknowledged, which with `task_acks_late` is
whenever a job runs. In `Consumer.on_connection_error_after_connected`:

1. `connection.collect()` closes the channels, but the consuming channel's `close()` fails on
   the dead socket (it first drains its pending BRPOP) and is left half-open, still holding the
   unacknowledged message; `collect()` then detaches the transport (`transport.client = None`).
2. The close added by celery PR #10242 (commit feb789a, first released in 5.7.0) closes that
   same channel again. This time it gets as far as restoring the unacknowledged message, which
   needs a new Redis pool, whose parameters come from `transport.client.hostname`: the
   AttributeError is not a connection error, so `ignore_errors` lets it end the worker.

celery 5.6.3 does not have step 2 but dies on the same event a few lines later (it stores the
cancelled task's state in the unreachable result backend, celery#7185, fixed in 5.7.0 by #10382),
and no later release exists, so neither a pin nor a setting avoids it. Here the collect runs
first and the half-closed channel is dropped from the connection, so celery's close has nothing
left to re-close. Its unacknowledged message is not lost: kombu keeps it in Redis's unacked
hash, the job's lease expires and the ledger publishes its next attempt.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from celery.utils.threads import bound_open_broker_sockets
from celery.worker.consumer import consumer as celery_consumer

# Reconnect attempts while the broker is away: every RECONNECT_MAX s at most, not kombu's
# 2, 4, 6 ... 30 s schedule, so consumption resumes within ~2 s of the broker answering
# (the fault campaigns measured up to 18 s with the default on a busy machine).
RECONNECT_START = 0.5
RECONNECT_STEP = 0.5
RECONNECT_MAX = 2.0


class Consumer(celery_consumer.Consumer):  # type: ignore[misc]
    def ensure_connected(self, conn: Any) -> Any:
        conn.ensure_connection = partial(
            type(conn).ensure_connection,
            conn,
            interval_start=RECONNECT_START,
            interval_step=RECONNECT_STEP,
            interval_max=RECONNECT_MAX,
        )
        try:
            return super().ensure_connected(conn)
        finally:
            del conn.ensure_connection

    def on_connection_error_after_connected(self, exc: BaseException) -> None:
        connection: Any = self.connection
        if connection is not None:
            # The same two steps celery takes first (bound the open sockets, then collect).
            bound_open_broker_sockets(connection, celery_consumer.COLLECT_SOCKET_TIMEOUT)
            try:
                connection.collect(socket_timeout=celery_consumer.COLLECT_SOCKET_TIMEOUT)
            except Exception:  # noqa: BLE001 - celery ignores any error here too
                pass
            # The channel whose close failed on the dead socket; its transport is gone now.
            connection._default_channel = None
        # Celery's own handling: a second collect and the close find nothing left to do.
        super().on_connection_error_after_connected(exc)
