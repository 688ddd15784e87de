"""An app whose mail goes to a per-test outbox folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app import create_app
from app.ledger import outbox as ledger_outbox
from tests.conftest import make_settings


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def mail_app(app: Flask, base_settings: dict[str, Any], outbox: Path) -> Iterator[Flask]:
    # `app` first: it migrates the session database.
    mail_app = create_app(
        make_settings(base_settings, MAIL_OUTBOX_DIR=str(outbox), MAIL_FROM="Ops <ops@example.net>")
    )
    with mail_app.app_context():
        yield mail_app
    # A submit started its relay; it would go on claiming other tests' rows.
    ledger_outbox.stop_relay(mail_app)
