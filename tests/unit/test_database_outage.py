"""The API during a database outage: every request answers 503 problem+json with
Retry-After, the API-key lookup included; never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from app import create_app
from tests.conftest import make_settings


@pytest.fixture
def no_database(base_settings: dict[str, Any]) -> Flask:
    # Nothing listens on port 1: every connection attempt is refused at once.
    url = str(base_settings["DATABASE_URL"])
    if url.startswith("sqlite"):
        nowhere = "sqlite:////nonexistent-dir/tasklane.db"
    else:
        nowhere = "postgresql+psycopg://postgres@127.0.0.1:1/tasklane"
    return create_app(make_settings(base_settings, DATABASE_URL=nowhere))


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/jobs", None),
        ("get", "/api/v1/jobs/3f0f8a4e-0000-4000-8000-000000000000", None),
        ("post", "/api/v1/jobs", {"task": "tests.echo", "args": {"value": 1}}),
        ("post", "/api/v1/jobs/3f0f8a4e-0000-4000-8000-000000000000/cancel", None),
    ],
)
def test_every_request_answers_503_with_retry_after(
    no_database: Flask, auth: dict[str, str], method: str, path: str, body: Any
) -> None:
    client = no_database.test_client()
    response = getattr(client, method)(path, json=body, headers=auth)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    problem = response.get_json()
    assert problem["title"] == "Database unavailable" and "Retry" in problem["detail"]
