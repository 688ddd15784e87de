"""The ops_trace side: hand a published record to every configured sink."""

from __future__ import annotations

from typing import Any

import redis

from app.services.tracing import sinks
from app.services.tracing import stats
from app.services.tracing.shipper import shippers
from config import Settings

DATABASE = "database"


def deliver(record: dict[str, Any], settings: Settings, counters: redis.Redis) -> None:
    """Store the record (database sink) and queue it for each HTTP sink's next batch.

    A database error propagates so the task retries it; the HTTP sinks never raise here.
    """
    if DATABASE in settings.TRACE_SINKS and sinks.store(record):
        stats.count(counters, DATABASE, "shipped")
    for shipper in shippers(settings, counters):
        shipper.offer(record)
