"""A test client signed in to the dashboard, and a way to read a page's CSRF token."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, path: str = "/dashboard/sign-in") -> str:
    page = client.get(path).get_data(as_text=True)
    match = TOKEN.search(page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def dashboard(app: Flask, api_token: str) -> FlaskClient:
    client = app.test_client()
    response = client.post(
        "/dashboard/sign-in",
        data={"api_key": api_token, "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return client
