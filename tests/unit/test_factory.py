from __future__ import annotations

import pytest
from flask import Flask
from flask import current_app


def test_factory_wires_extensions_into_app_extensions(app: Flask) -> None:
    for name in ("celery", "redis", "api", "sqlalchemy", "migrate"):
        assert name in app.extensions
    assert not hasattr(app, "celery")


def test_task_base_reuses_an_active_app_context(app: Flask) -> None:
    task = app.extensions["celery"].tasks["tests.echo"]
    with app.app_context() as outer:
        with task._context():
            assert current_app._get_current_object() is app
            from flask.globals import _cv_app

            assert _cv_app.get() is outer


def test_task_base_pushes_a_context_when_none_is_active(app: Flask) -> None:
    task = app.extensions["celery"].tasks["tests.echo"]
    with task._context():
        assert current_app._get_current_object() is app


def test_called_directly_a_task_is_a_plain_function(app: Flask) -> None:
    task = app.extensions["celery"].tasks["tests.echo"]
    assert task(value=3) == {"value": 3}


def test_pool_settings_reach_the_engine(base_settings: dict[str, object]) -> None:
    from app import create_app
    from app.extensions.ext_database import db
    from tests.conftest import make_settings

    app = create_app(
        make_settings(base_settings, SQLALCHEMY_POOL_SIZE=7, SQLALCHEMY_MAX_OVERFLOW=3)
    )
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("SQLite has no connection pool to size")
        assert db.engine.pool.size() == 7  # type: ignore[attr-defined]
        assert db.engine.pool._max_overflow == 3  # type: ignore[attr-defined]
