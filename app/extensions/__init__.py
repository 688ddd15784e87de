"""Flask extensions, one per module, each exposing `init_app(app)`.

Order matters: settings feed Redis, Redis feeds Celery, the database comes before anything
that touches rows.
"""

from __future__ import annotations

from types import ModuleType

from flask import Flask


def extensions() -> tuple[ModuleType, ...]:
    """Every extension, in dependency order.

    Imported when the app is built, not with this package: `app.extensions.ext_database`
    (imported by most modules for `db`) must not pull in the API and Celery with it.
    """
    from app.extensions import ext_api
    from app.extensions import ext_celery
    from app.extensions import ext_database
    from app.extensions import ext_logging
    from app.extensions import ext_migrate
    from app.extensions import ext_notify
    from app.extensions import ext_otel
    from app.extensions import ext_redis
    from app.extensions import ext_sentry

    return (
        ext_logging,
        ext_database,
        # Sentry next, so it sees every later extension's errors (it needs the ledger's engine).
        ext_sentry,
        ext_migrate,
        ext_redis,
        ext_notify,
        ext_celery,
        ext_otel,
        ext_api,
    )


def init_extensions(app: Flask) -> None:
    """Initialise every extension in dependency order."""
    for extension in extensions():
        extension.init_app(app)
