"""Steady job submission over the REST API from a thread, keeping every answer.

Each accepted job (202) is kept by id; each refusal keeps its status, problem body and
Retry-After header; a request that raised (a 500 the test client propagates) is a refusal
with status None and the error. The rate is held against a fixed schedule, so a slow answer
during an outage delays the next request but never bursts to catch up.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask.testing import FlaskClient

from tests.support.waiting import wait_for


@dataclass(frozen=True)
class Refusal:
    at: float
    status: int | None
    content_type: str | None
    body: Any
    retry_after: str | None
    error: str | None = None


@dataclass
class LoadResult:
    accepted: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


class LoadGenerator:
    """POST /api/v1/jobs at `rate` per second until stopped; `body()` builds each request."""

    def __init__(
        self,
        client: FlaskClient,
        auth: dict[str, str],
        body: Callable[[], dict[str, Any]],
        *,
        rate: float,
    ) -> None:
        self.client = client
        self.auth = auth
        self.body = body
        self.interval = 1.0 / rate
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="load-generator", daemon=True)

    def __enter__(self) -> LoadGenerator:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)
        return self.result

    def wait_accepted(self, more: float, *, timeout: float, what: str) -> None:
        """Until `more` jobs beyond those accepted so far have been accepted."""
        target = self.counts()[0] + more
        wait_for(lambda: self.counts()[0] >= target, timeout=timeout, what=what)

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self.result.accepted), len(self.result.refused)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._submit_one()
            next_at = max(next_at + self.interval, time.monotonic())
            self._stop.wait(max(next_at - time.monotonic(), 0))

    def _submit_one(self) -> None:
        started = time.monotonic()
        try:
            response = self.client.post(
                "/api/v1/jobs",
                json={"idempotency_key": uuid.uuid4().hex, **self.body()},
                headers=self.auth,
            )
        except Exception as exc:  # noqa: BLE001 - an uncaught error is a finding, kept
            with self._lock:
                self.result.refused.append(
                    Refusal(time.time(), None, None, None, None, f"{type(exc).__name__}: {exc}")
                )
            return
        elapsed = time.monotonic() - started
        with self._lock:
            self.result.latencies.append(elapsed)
            if response.status_code == 202:
                self.result.accepted.append(response.get_json()["id"])
                return
            self.result.refused.append(
                Refusal(
                    time.time(),
                    response.status_code,
                    response.content_type,
                    response.get_json(silent=True),
                    response.headers.get("Retry-After"),
                )
            )
