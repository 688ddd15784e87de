"""The OpenAPI document is the contract: schemathesis, every check, over every operation.

It runs against an app of its own (a Redis database and a database of its own, only the
built-in public tasks), so the random jobs, datasets and mails it creates never reach the
session's workers or rows. Bounded for the suite's budget: TASKLANE_CONTRACT_EXAMPLES
examples per operation (default 20); the README's full run used 100 and the CLI
(`uv run python -m tests.support.contract_run`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask_migrate import upgrade
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from schemathesis.config import SchemathesisConfig

from app import create_app
from app.services import api_keys
from tests.conftest import make_settings
from tests.support import services

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("TASKLANE_CONTRACT_EXAMPLES", "20"))


@pytest.fixture(scope="module")
def contract_app(base_settings: dict[str, Any], session_tmp: Path) -> Iterator[Flask]:
    with (
        services.redis_server(session_tmp / "contract-redis") as redis_url,
        services.database(session_tmp / "contract-db") as database_url,
    ):
        app = create_app(
            make_settings(
                base_settings,
                REDIS_URL=redis_url,
                DATABASE_URL=database_url,
                TASKLANE_EXTRA_TASK_MODULES="",
                # No worker runs here: an inspect broadcast has nobody to wait for, yet waits
                # its whole timeout (at 0.5 s, /queues and /ready took 38 of the test's 60 s).
                INSPECT_TIMEOUT="0.1",
                # Nor does a job here ever end: its event stream closes at this limit.
                API_EVENTS_MAX_SECONDS="1",
                SQLALCHEMY_POOL_SIZE="2",
                SQLALCHEMY_MAX_OVERFLOW="2",
            )
        )
        with app.app_context():
            upgrade()
        try:
            yield app
        finally:
            with app.app_context():
                from app.extensions.ext_database import db

                db.engine.dispose()


@pytest.fixture(scope="module")
def contract_token(contract_app: Flask) -> str:
    with contract_app.app_context():
        _key, token = api_keys.create("contract")
    return token


@pytest.fixture(scope="module")
def api_schema(contract_app: Flask) -> Any:
    config = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", contract_app, config=config)


def test_every_operation_keeps_the_contract(
    api_schema: Any, contract_token: str, contract_app: Flask
) -> None:
    """Generated requests (valid and invalid) for each operation; every check must pass."""
    headers = {"Authorization": f"Bearer {contract_token}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    # Every API route is in the document, so every one of them is exercised here.
    routes = {
        (rule.rule, method)
        for rule in contract_app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        and not rule.endpoint.startswith(("api-docs.", "swagger_ui_assets."))
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert len(operations) == len(routes) >= 30
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers)

        try:
            check()
        except Exception as exc:  # every operation is tried; all failures are reported
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
