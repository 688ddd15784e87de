"""Wait on a condition with a deadline; tests never sleep and hope.

Deadlines stretch with the machine's load: on a busy machine (the suite beside other work,
or a CPU hog per core) everything takes longer, so a deadline is `timeout` seconds of an
idle machine, multiplied by the load average per core whenever that is above 1, and
re-read on every poll, so a deadline set while idle still stretches when load arrives.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
# A process start-up (import the app, connect, join the cluster) on an idle machine takes
# seconds; this is generous on purpose, and stretched further by load_factor().
PROCESS_START_TIMEOUT = 120.0


def load_factor() -> float:
    """Load average (1 min) per core, at least 1."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return max(1.0, load / (os.cpu_count() or 1))


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`
    seconds (scaled by the machine's load)."""
    start = time.monotonic()
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        waited = time.monotonic() - start
        allowed = timeout * load_factor()
        if waited >= allowed:
            raise AssertionError(
                f"timed out after {waited:.0f}s (deadline {timeout:.0f}s x load "
                f"{allowed / timeout:.1f}) waiting for {what} (last: {last!r})"
            )
        time.sleep(interval)
