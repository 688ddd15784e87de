"""An app and worker on a broker of their own get a database of their own too.

Every worker main process runs the ledger's relay and lease recovery over the whole `jobs`
table of its database and publishes what it claims to its own broker. Workers on a private
broker that shared the session's database would take the session workers' due and lost jobs
to a broker those workers never read (and claim rows unit tests stage). So each broker gets
its own database, as each deployment would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask_migrate import upgrade

from app import create_app
from app.extensions.ext_database import engine_of
from app.services import api_keys
from tests.conftest import make_settings
from tests.support import services
from tests.support.workers import WorkerProcess


@dataclass(frozen=True)
class OwnDatabase:
    url: str
    token: str  # a key of the default project, as the session's api_token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def own_database(base_settings: dict[str, Any], tmp: Path) -> Iterator[OwnDatabase]:
    """A fresh database (PostgreSQL when the session's is, SQLite in `tmp` otherwise),
    migrated, with one key; dropped afterwards."""
    with services.database(tmp) as url:
        app = create_app(make_settings(base_settings, DATABASE_URL=url))
        with app.app_context():
            upgrade()
            _key, token = api_keys.create("own-database")
        # Its connections go now: the database is dropped with the server's other clients.
        engine_of(app).dispose()
        app.extensions["ledger_engine"].dispose()
        yield OwnDatabase(url, token)


@dataclass(frozen=True)
class SideStack:
    app: Flask
    worker: WorkerProcess
    database: OwnDatabase


@contextmanager
def side_stack(
    settings: dict[str, Any],
    worker_env: dict[str, str],
    tmp: Path,
    name: str,
    *,
    queues: list[str],
    concurrency: int = 1,
    **overrides: str,
) -> Iterator[SideStack]:
    """An app on `settings` and `overrides` (which name the broker of its own) and one prefork
    worker `name` on the same, both on a database of their own; the worker stops after."""
    with own_database(settings, tmp / f"{name}-db") as database:
        overrides = {**overrides, "DATABASE_URL": database.url}
        app = create_app(make_settings(settings, **overrides))
        env = {**worker_env, **{key: str(value) for key, value in settings.items()}, **overrides}
        arguments = f"-P prefork -c {concurrency} -Q {','.join(queues)}"
        worker = WorkerProcess.celery(name, arguments, env=env, log_dir=tmp)
        worker.start(app.extensions["celery"])
        try:
            yield SideStack(app, worker, database)
        finally:
            worker.stop()
