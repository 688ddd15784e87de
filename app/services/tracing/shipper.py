"""Batched, retried, bounded shipping of trace records to the HTTP sinks of one worker.

Each sink gets a buffer with a fixed limit and a background thread (a greenlet under
gevent) that sends batches of up to TRACE_BATCH_SIZE records, waiting at most
TRACE_FLUSH_INTERVAL for a batch to fill. A failed batch is retried with doubling,
jittered delays up to TRACE_SHIP_MAX_ATTEMPTS times and then dropped. While a sink is down
its buffer fills to TRACE_BUFFER_LIMIT, then the oldest records make room for new ones;
every dropped record is counted (GET /api/v1/traces/sinks), so memory stays bounded.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from typing import Any

import httpx
import redis

from app.services.tracing import stats
from app.services.tracing.sinks import HttpSink
from app.services.tracing.sinks import SinkError
from app.services.tracing.sinks import http_sinks
from config import Settings

log = logging.getLogger(__name__)


class BoundedBuffer:
    """A FIFO of at most `limit` records; `put` evicts the oldest when full."""

    def __init__(self, limit: int) -> None:
        self._items: deque[dict[str, Any]] = deque()
        self._limit = limit
        self._ready = threading.Condition()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, record: dict[str, Any]) -> bool:
        """Add a record; False when an older one had to be dropped to make room."""
        with self._ready:
            evicted = len(self._items) >= self._limit
            if evicted:
                self._items.popleft()
            self._items.append(record)
            self._ready.notify()
            return not evicted

    def take(self, size: int, linger: float) -> list[dict[str, Any]]:
        """Up to `size` records: waits for a first one, then up to `linger` for more."""
        with self._ready:
            if not self._items:
                self._ready.wait(linger)
            deadline = time.monotonic() + linger
            while self._items and len(self._items) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._ready.wait(remaining)
            return [self._items.popleft() for _ in range(min(size, len(self._items)))]


class Shipper:
    def __init__(self, sink: HttpSink, settings: Settings, counters: redis.Redis) -> None:
        self.sink = sink
        self.buffer = BoundedBuffer(settings.TRACE_BUFFER_LIMIT)
        self._settings = settings
        self._counters = counters
        self._thread = threading.Thread(
            target=self._run, name=f"trace-shipper-{sink.name}", daemon=True
        )
        self._thread.start()

    def offer(self, record: dict[str, Any]) -> None:
        if not self.buffer.put(record):
            stats.count(self._counters, self.sink.name, "dropped", reason="buffer full")

    def _run(self) -> None:
        settings = self._settings
        while True:
            batch = self.buffer.take(settings.TRACE_BATCH_SIZE, settings.TRACE_FLUSH_INTERVAL)
            if batch:
                try:
                    self.ship(batch)
                except Exception:
                    # The loop must outlive any bug in one batch, or the buffer only fills.
                    log.exception("trace shipper for %s failed a batch", self.sink.name)

    def ship(self, batch: list[dict[str, Any]]) -> bool:
        settings = self._settings
        for attempt in range(settings.TRACE_SHIP_MAX_ATTEMPTS):
            try:
                self.sink.send(batch)
            except SinkError as exc:
                stats.count(self._counters, self.sink.name, "failed_attempts", last_error=str(exc))
                if not exc.retryable:
                    break
                if attempt + 1 < settings.TRACE_SHIP_MAX_ATTEMPTS:
                    cap = settings.TRACE_SHIP_RETRY_DELAY * 2**attempt
                    time.sleep(random.uniform(cap / 2, cap))
                continue
            stats.count(self._counters, self.sink.name, "shipped", len(batch))
            return True
        log.warning("dropping %d trace records for sink %s", len(batch), self.sink.name)
        stats.count(self._counters, self.sink.name, "dropped", len(batch), reason="send failed")
        return False


def flush(timeout: float) -> None:
    """One last send of what this process still buffers (worker shutdown); never raises."""
    deadline = time.monotonic() + timeout
    for shipper in _shippers.get(os.getpid(), []):
        while len(shipper.buffer) and time.monotonic() < deadline:
            batch = shipper.buffer.take(shipper._settings.TRACE_BATCH_SIZE, linger=0)
            try:
                shipper.sink.send(batch)
            except SinkError as exc:
                log.warning(
                    "%d trace records for %s lost at shutdown: %s",
                    len(batch),
                    shipper.sink.name,
                    exc,
                )
                stats.count(shipper._counters, shipper.sink.name, "dropped", len(batch))
                break
            stats.count(shipper._counters, shipper.sink.name, "shipped", len(batch))


_shippers: dict[int, list[Shipper]] = {}
_lock = threading.Lock()


def shippers(settings: Settings, counters: redis.Redis) -> list[Shipper]:
    """This process's shippers, started on first use (threads never cross a fork)."""
    with _lock:
        pid = os.getpid()
        if pid not in _shippers:
            client = httpx.Client(timeout=settings.TRACE_SHIP_TIMEOUT)
            _shippers[pid] = [Shipper(s, settings, counters) for s in http_sinks(settings, client)]
        return _shippers[pid]
