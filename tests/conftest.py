"""Session services (Redis, database), the app built on them, and an API key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import create_app
from app.services import api_keys
from config import Settings
from tests.support import services
from tests.support.generation_stubs import GenerationStubs
from tests.support.waiting import load_factor

TEST_TASK_MODULES = "tests.integration.tasks"


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tasklane")


@pytest.fixture(scope="session")
def redis_url(session_tmp: Path) -> Iterator[str]:
    with services.redis_server(session_tmp / "redis") as url:
        yield url


@pytest.fixture(scope="session")
def database_url(session_tmp: Path) -> Iterator[str]:
    with services.database(session_tmp / "db") as url:
        yield url


@pytest.fixture(scope="session")
def generation_stubs() -> Iterator[GenerationStubs]:
    """Local LLM provider and trace receivers; every worker must know them, so they are here."""
    with GenerationStubs.running() as stubs:
        yield stubs


@pytest.fixture(scope="session")
def base_settings(
    redis_url: str, database_url: str, generation_stubs: GenerationStubs, session_tmp: Path
) -> dict[str, Any]:
    """The settings every test app and worker shares; tests override single values."""
    return {
        "TASKLANE_ENV": "testing",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TASKLANE_EXTRA_TASK_MODULES": TEST_TASK_MODULES,
        # Workers answer a broadcast and run a canary slower on a loaded machine: a reply
        # later than INSPECT_TIMEOUT counts as no consumer at all (/queues, /ready).
        "INSPECT_TIMEOUT": str(min(1.0 * load_factor(), 5.0)),
        "READY_CANARY_TIMEOUT": str(min(10.0 * load_factor(), 60.0)),
        # Every app and worker the suite starts holds at most 2 + 2 pooled connections and
        # 2 ledger ones (6); about 13 processes run at once (see README, Tests), so the
        # suite stays well under PostgreSQL's max_connections of 100.
        "SQLALCHEMY_POOL_SIZE": "2",
        "SQLALCHEMY_MAX_OVERFLOW": "2",
        "LEDGER_POOL_SIZE": "2",
        # Files a run writes stay in its temporary folder, never in the checkout's instance/.
        "MAIL_OUTBOX_DIR": str(session_tmp / "outbox"),
        "DATASET_STORAGE_DIR": str(session_tmp / "uploads"),
        **generation_stubs.settings,
    }


def make_settings(base: dict[str, Any], **overrides: Any) -> Settings:
    # _env_file=None: a developer's .env must not leak into tests.
    return Settings(_env_file=None, **{**base, **overrides})  # type: ignore[call-arg]


def app_without_broker(base: dict[str, Any]) -> Flask:
    """An app on the session's database whose broker is unreachable (nothing listens on port
    1) and that runs no relay: what it accepts stays an intent until a relay elsewhere
    publishes it."""
    return create_app(
        make_settings(
            base,
            CELERY_BROKER_URL="redis://127.0.0.1:1/0",
            SUBMIT_BROKER_TIMEOUT=0.5,
            LEDGER_RELAY_IN_API=False,
        )
    )


@pytest.fixture(scope="session")
def app(base_settings: dict[str, Any]) -> Flask:
    app = create_app(make_settings(base_settings))
    with app.app_context():
        upgrade()
    return app


@pytest.fixture(scope="session")
def worker_env(base_settings: dict[str, Any]) -> dict[str, str]:
    """Environment for worker subprocesses: the same services as the test app."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "WORKER_"))}
    env.update({key: str(value) for key, value in base_settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def api_token(app: Flask) -> str:
    with app.app_context():
        _key, token = api_keys.create("tests")
    return token


@pytest.fixture
def auth(api_token: str) -> dict[str, str]:
    """A key of the default project with every scope but admin, as `keys create` makes."""
    return {"Authorization": f"Bearer {api_token}"}


@pytest.fixture(scope="session")
def admin_token(app: Flask) -> str:
    with app.app_context():
        _key, token = api_keys.create("tests-admin", project="operators", scopes=["admin"])
    return token


@pytest.fixture
def admin_auth(admin_token: str) -> dict[str, str]:
    """An admin key: sees every project's rows and system jobs (beat, maintenance)."""
    return {"Authorization": f"Bearer {admin_token}"}
