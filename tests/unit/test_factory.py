from __future__ import annotations

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
