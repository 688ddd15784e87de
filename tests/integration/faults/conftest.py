"""Building blocks of the fault tests: private servers, an app and workers on them.

Every fault module runs its own redis-server (tests/support/redis_control.py) and, for the
database outage, its own PostgreSQL cluster (tests/support/pg_cluster.py), so stopping them
disturbs no other test. Campaign sizes come from the environment (bench/faults.py sets the
issue's full counts); the defaults keep the suite short.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask_migrate import upgrade

from app import create_app
from app.services import api_keys
from app.settings import reveal
from tests.conftest import make_settings
from tests.support.logged_process import all_running
from tests.support.pg_cluster import ClusterUnavailable
from tests.support.pg_cluster import PgCluster
from tests.support.redis_control import RedisServer
from tests.support.workers import WorkerProcess

FAULT_TASK_MODULES = "tests.integration.tasks,tests.integration.faults.fault_tasks"
START_TIMEOUT = 300.0


def build_app(base_settings: dict[str, Any], **overrides: Any) -> Flask:
    app = create_app(
        make_settings(base_settings, TASKLANE_EXTRA_TASK_MODULES=FAULT_TASK_MODULES, **overrides)
    )
    with app.app_context():
        upgrade()
    return app


def auth_for(app: Flask) -> dict[str, str]:
    with app.app_context():
        _key, token = api_keys.create("faults")
    return {"Authorization": f"Bearer {token}"}


def env_for(worker_env: dict[str, str], **overrides: str) -> dict[str, str]:
    return {**worker_env, "TASKLANE_EXTRA_TASK_MODULES": FAULT_TASK_MODULES, **overrides}


@contextmanager
def running(
    app: Flask, worker_env: dict[str, str], log_dir: Path, profiles: dict[str, dict[str, str]]
) -> Iterator[dict[str, WorkerProcess]]:
    """Workers of `app` (its database and Redis) started through entrypoint.sh, stopped
    however the test ends.

    `profiles` maps a worker name to its environment overrides; "profile" in them picks the
    entrypoint profile (default: the name itself).
    """
    settings = app.config["SETTINGS"]
    database_url, redis_url = reveal(settings.database.url), reveal(settings.broker.redis_url)
    assert database_url and redis_url, "fault workers run on their app's own database and Redis"
    env = env_for(worker_env, DATABASE_URL=database_url, REDIS_URL=redis_url)
    workers = {
        name: WorkerProcess.for_profile(
            extra.get("profile", name),
            env=env,
            log_dir=log_dir,
            name=name,
            **{k: v for k, v in extra.items() if k != "profile"},
        )
        for name, extra in profiles.items()
    }
    celery_app = app.extensions["celery"]
    # Generous: on a busy 2-core machine four workers importing at once take minutes.
    with all_running(workers.values(), lambda worker: worker.wait_ready(celery_app, START_TIMEOUT)):
        yield workers


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PgCluster]:
    try:
        cluster = PgCluster()
    except ClusterUnavailable as exc:
        pytest.skip(f"no private PostgreSQL cluster here: {exc}")
    with cluster:
        yield cluster
