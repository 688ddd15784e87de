"""The operator's console at /dashboard: server-rendered pages over the ledger and the broker.

Pages are Jinja templates; htmx refreshes the live panels and uPlot draws the chart, both
served from app/static/vendor (no build step, no CDN). Sign-in is with an API key.
"""

from __future__ import annotations

from flask import Flask

from app.dashboard import formatting  # noqa: F401  (registers the template filters)
from app.dashboard import views_jobs  # noqa: F401  (registers the routes)
from app.dashboard import views_lanes  # noqa: F401
from app.dashboard import views_overview  # noqa: F401
from app.dashboard.auth import csrf
from app.dashboard.blueprint import bp


def init_app(app: Flask) -> None:
    # The JSON API authenticates with bearer keys, not cookies, so it needs no CSRF token;
    # only the dashboard's blueprint calls csrf.protect() (app/dashboard/auth.py).
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # A token lives as long as the signed-in session, so a page left open still submits.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    csrf.init_app(app)
    app.register_blueprint(bp)
