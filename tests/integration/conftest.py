"""Real worker processes shared by the integration tests: one per profile, as in production."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.api import Api
from tests.support.workers import WorkerProcess


@pytest.fixture(scope="session")
def workers(
    app: Flask, worker_env: dict[str, str], session_tmp: Path
) -> Iterator[dict[str, WorkerProcess]]:
    """A prefork worker on the cpu profile and a gevent worker on the io profile."""
    celery_app = app.extensions["celery"]
    started = {
        "cpu": WorkerProcess.for_profile("cpu", env=worker_env, log_dir=session_tmp),
        "io": WorkerProcess.for_profile(
            "io", env=worker_env, log_dir=session_tmp, WORKER_CONCURRENCY="20"
        ),
    }
    try:
        # Start both at once; each takes seconds to import and connect.
        for worker in started.values():
            worker.spawn()
        for worker in started.values():
            worker.wait_ready(celery_app)
        yield started
    finally:
        for worker in started.values():
            worker.stop()


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """A directory test tasks write to, so a test can see whether a job body ran."""
    return tmp_path


@pytest.fixture
def api(client: FlaskClient, auth: dict[str, str], workers: dict[str, WorkerProcess]) -> Api:
    """The REST API with workers running behind it."""
    return Api(client, auth)
