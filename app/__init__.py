"""Tasklane: a Flask API that takes slow work off the request path and runs it on Celery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from config import Settings


def configure(app: Flask, settings: Settings) -> None:
    app.config["SETTINGS"] = settings
    secret = settings.core.secret_key
    app.config["SECRET_KEY"] = secret.get_secret_value() if secret else "dev-only-not-secret"
    app.config["TESTING"] = settings.core.environment == "testing"


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error handlers, commands."""
    # Imported here, not at the top: `config` reads its concerns from `app.settings`, which
    # loads this package first, and every piece below imports `config`.
    from app import dashboard
    from app.api import register_blueprints
    from app.api.errors import register_error_handlers
    from app.commands import register_commands
    from app.extensions import init_extensions
    from config import load_settings

    app = Flask(__name__)
    configure(app, settings or load_settings())
    init_extensions(app)
    register_blueprints(app)
    dashboard.init_app(app)
    register_error_handlers(app)
    register_commands(app)
    return app
