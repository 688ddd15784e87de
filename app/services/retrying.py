"""The one backoff policy for every retried call, computed by tenacity.

Celery schedules a task's next try itself (`task.retry(countdown=...)`), so the lanes only
need the delay, and tenacity's `wait_random_exponential` computes it. Full jitter spreads
the retries of many jobs that failed together, so they do not hit a recovering back end
in one wave.
"""

from __future__ import annotations

import random
from datetime import UTC
from datetime import datetime
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState
from tenacity import Retrying
from tenacity import wait_random_exponential


def backoff_delay(
    retries: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Seconds before try `retries + 1`: uniform in [0, min(cap, base * 2**retries)].

    A back end's Retry-After is a floor, not a hint, with a little jitter on top.
    """
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = retries + 1
    delay = float(wait_random_exponential(multiplier=base, max=cap)(state))
    if retry_after is None:
        return delay
    return max(delay, retry_after + random.uniform(0, min(1.0, retry_after * 0.1)))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
