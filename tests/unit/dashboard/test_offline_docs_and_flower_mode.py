"""The API docs pages reference only the app's own files; Flower never starts without auth."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from flask.testing import FlaskClient

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/redoc"])
def test_docs_pages_load_only_same_origin_assets(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets, "the page loads its scripts"
    assert all(a.startswith("/") for a in assets), assets
    for asset in assets:
        # Closed at once: a static file response holds its file open until then.
        with client.get(asset) as served:
            assert served.status_code == 200, asset
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy


def test_flower_refuses_to_start_without_basic_auth() -> None:
    env = {**os.environ, "FLOWER_BASIC_AUTH": ""}
    result = subprocess.run(
        ["./entrypoint.sh", "flower"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 64
    assert "FLOWER_BASIC_AUTH=user:password" in result.stderr
