"""Job notifications: a publish client for the ledger, and one listener per API process.

The ledger publishes every committed change of a job (app/ledger/notify.py). An API process
follows them with ONE Redis connection, whoever follows: a listener thread (a greenlet under
gunicorn's gevent workers, which patch threading) holds a PSUBSCRIBE to every job's channel
and hands each message to the followers of that job in this process, waking them. A
follower costs a dict entry and an Event, not a connection nor a database query per tick.

The pattern subscription is taken once, when the first follower arrives, and is live before
any follower is told it may rely on it, so "register, then read the row once" misses
nothing: a change committed before the read is in the row, one after it is a message. When
the connection drops, every follower is told to re-read (`Update.reread`) and to read the
row at FALLBACK_INTERVAL until the listener is back; then each re-reads once more, for what
was published while nobody listened.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask
from flask import current_app

from app.ledger import notify

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    """One message for a follower: the changed fields, or `reread` (read the row)."""

    state: str | None = None
    progress: dict[str, Any] | None = None
    at: float | None = None  # when the change committed (the row's updated_at)
    reread: bool = False


REREAD = Update(reread=True)


# While the listener is down, followers read the database this often (the old poll: 0.25 s).
FALLBACK_INTERVAL = 0.5
RECONNECT_DELAY = 0.5
# The listener's blocking read wakes this often to notice a stop request.
READ_TIMEOUT = 1.0
# A PING on the idle subscription this often: a dead peer is found within about this time.
HEALTH_CHECK_INTERVAL = 10
# Every Redis call of a PUBLISH may wait this long: a hung Redis must not hold up a job.
PUBLISH_TIMEOUT = 0.5


class Follower:
    """One reader of one job; its listener thread pushes, its request's thread waits."""

    def __init__(self, hub: Hub, job_id: str) -> None:
        self.hub, self.job_id = hub, job_id
        self._wake = threading.Event()
        self._lock = threading.Lock()  # the listener appends while the reader takes
        self._pending: list[Update] = []

    def push(self, update: Update) -> None:
        with self._lock:
            self._pending.append(update)
        self._wake.set()

    def wait(self, timeout: float) -> list[Update]:
        """Updates since the last call, waiting up to `timeout` seconds for the first.

        With the listener down, waits at most FALLBACK_INTERVAL and then answers `REREAD`,
        so the caller reads the row instead of waiting for a message that cannot come.
        """
        live = self.hub.live
        if not self._wake.wait(timeout if live else min(timeout, FALLBACK_INTERVAL)):
            return [] if live else [REREAD]
        with self._lock:
            self._wake.clear()
            taken, self._pending = self._pending, []
        return taken

    def close(self) -> None:
        self.hub.leave(self)

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """This process's followers by job id, and the listener that feeds them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._followers: dict[str, set[Follower]] = {}
        self._thread: threading.Thread | None = None
        self._live = False
        self._stop = threading.Event()
        self.received = 0  # messages taken off the subscription (the benchmark reads it)

    @property
    def live(self) -> bool:
        """Whether the subscription is up: a change published now reaches the followers."""
        return self._live

    def follow(self, job_id: str) -> Follower:
        """Register a follower of `job_id`; read the row AFTER this, not before."""
        if self._pid != os.getpid():
            self._reset()  # forked: the parent's listener does not exist here
        follower = Follower(self, job_id)
        with self._lock:
            self._followers.setdefault(job_id, set()).add(follower)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._listen, name="tasklane-job-notify", daemon=True
                )
                self._thread.start()
        return follower

    def leave(self, follower: Follower) -> None:
        with self._lock:
            followers = self._followers.get(follower.job_id)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._followers[follower.job_id]

    def followers(self) -> int:
        with self._lock:
            return sum(len(group) for group in self._followers.values())

    def stop(self) -> None:
        """Stop the listener (tests); the next follower starts a new one."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=READ_TIMEOUT * 3)

    def _broadcast(self, update: Update) -> None:
        with self._lock:
            everyone = [f for group in self._followers.values() for f in group]
        for follower in everyone:
            follower.push(update)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        job_id = notify.job_id_of(channel.decode())
        with self._lock:
            group = list(self._followers.get(job_id, ()))
        if not group:
            return  # a job nobody here follows: not even parsed
        try:
            body = json.loads(data)
            update = Update(body.get("state"), body.get("progress"), body.get("at"))
        except (ValueError, AttributeError):
            update = REREAD
        if update.state is None and update.progress is None:
            update = REREAD
        for follower in group:
            follower.push(update)

    def _listen(self) -> None:
        while not self._stop.is_set():
            client = redis.Redis.from_url(
                self.url,
                socket_connect_timeout=PUBLISH_TIMEOUT * 4,
                socket_keepalive=True,
                health_check_interval=HEALTH_CHECK_INTERVAL,
            )
            pubsub = client.pubsub()  # type: ignore[no-untyped-call]
            try:
                pubsub.psubscribe(notify.PATTERN)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=READ_TIMEOUT)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        self._live = True
                        # Whatever was published while nobody listened: read the rows.
                        self._broadcast(REREAD)
                    elif message["type"] == "pmessage":
                        self.received += 1
                        self._deliver(message["channel"], message["data"])
            except (redis.RedisError, OSError) as exc:
                if self._live:
                    log.warning("job notifications lost (%s); followers read the ledger", exc)
                self._live = False
                self._broadcast(REREAD)
                self._stop.wait(RECONNECT_DELAY)
            finally:
                self._live = False
                try:
                    pubsub.close()
                    client.close()
                except (redis.RedisError, OSError):
                    pass


def hub() -> Hub:
    found: Hub = current_app.extensions["notify_hub"]
    return found


def init_app(app: Flask) -> None:
    url = app.config["REDIS_URL"]
    app.extensions["notify_redis"] = redis.Redis.from_url(
        url, socket_timeout=PUBLISH_TIMEOUT, socket_connect_timeout=PUBLISH_TIMEOUT
    )
    app.extensions["notify_hub"] = Hub(url)
