"""When to try a failed provider call again."""

from __future__ import annotations

import random


def backoff_delay(
    retries: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After is a floor, not a hint.

    Full jitter spreads the retries of many generations that failed together, so they do
    not hit a recovering provider in one wave.
    """
    delay = random.uniform(0, min(cap, base * 2**retries))
    if retry_after is None:
        return delay
    # A little jitter on top of the provider's floor, for the same reason.
    return max(delay, retry_after + random.uniform(0, min(1.0, retry_after * 0.1)))
