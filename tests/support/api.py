"""Small helpers for driving the REST API from tests."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.waiting import wait_for

TERMINAL = {"succeeded", "failed", "cancelled"}


class Api:
    def __init__(self, client: FlaskClient, auth: dict[str, str]) -> None:
        self.client = client
        self.auth = auth

    def call(self, method: str, path: str, expect: int = 200, **options: Any) -> dict[str, Any]:
        """`method` on /api/v1`path` with the key; the answer's JSON, once its status is `expect`.

        `options` go to the test client (`json=`, `query_string=`, ...)."""
        response = self.client.open(f"/api/v1{path}", method=method, headers=self.auth, **options)
        assert response.status_code == expect, response.get_json()
        return dict(response.get_json())

    def submit(self, task: str, expect: int = 202, **body: Any) -> dict[str, Any]:
        return self.call("POST", "/jobs", expect, json={"task": task, **body})

    def job(self, job_id: str) -> dict[str, Any]:
        return self.call("GET", f"/jobs/{job_id}")

    def post(self, path: str, expect: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.call("POST", path, expect, json=body)

    def wait(
        self, job_id: str, states: set[str] | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll the job until it reaches one of `states` (default: any final state)."""
        wanted = states or TERMINAL
        return wait_for(
            lambda: (job := self.job(job_id))["state"] in wanted and job,
            timeout=timeout,
            what=f"job {job_id} to reach {sorted(wanted)}",
        )

    def wait_progress(self, job_id: str, at_least: int, timeout: float = 30.0) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            job = self.job(job_id)
            current = job["progress"]["current"]
            return job if current is not None and current >= at_least else None

        return wait_for(probe, timeout=timeout, what=f"job {job_id} progress >= {at_least}")


def sse_events(response: TestResponse) -> list[tuple[str, dict[str, Any]]]:
    """Every `event:` of a streamed `text/event-stream` response, read to its end."""
    text = "".join(
        chunk.decode() if isinstance(chunk, bytes) else chunk for chunk in response.response
    )
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events
