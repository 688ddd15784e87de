"""The HTTP API: request size, paging, readiness probe."""

from __future__ import annotations

from app.settings.base import Concern
from app.settings.base import env


class ApiSettings(Concern):
    max_request_bytes: int = env("MAX_REQUEST_BYTES", 1024 * 1024, ge=1024)
    page_limit: int = env("API_PAGE_LIMIT", 100, ge=1)
    # How long /ready waits for the canary job it sends through each queue.
    ready_canary_timeout: float = env("READY_CANARY_TIMEOUT", 5.0, gt=0)
