"""The HTTP API: request size, paging, readiness probe."""

from __future__ import annotations

from app.settings.base import Concern
from app.settings.base import env


class ApiSettings(Concern):
    max_request_bytes: int = env("MAX_REQUEST_BYTES", 1024 * 1024, ge=1024)
    page_limit: int = env("API_PAGE_LIMIT", 100, ge=1)
    # How long /ready waits for the canary job it sends through each queue.
    ready_canary_timeout: float = env("READY_CANARY_TIMEOUT", 5.0, gt=0)
    # How long one GET /jobs/{id}/events stream lasts before the server closes it: a stream
    # holds a request slot (a greenlet) for its whole life, and a client reconnects
    # (EventSource does by itself) to find the job as it is then.
    events_max_seconds: float = env("API_EVENTS_MAX_SECONDS", 600.0, gt=0)
