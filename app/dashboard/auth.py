"""Sign-in with an API key, kept as the key's id in Flask's signed session cookie.

The cookie holds only the key's id, never the key, and every request checks that the key
still exists and is not revoked, so revoking a key signs its dashboard sessions out too.
Every POST, the sign-in form included, must carry the session's CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask_wtf.csrf import CSRFError
from flask_wtf.csrf import CSRFProtect
from werkzeug.wrappers import Response as BaseResponse

from app.dashboard.blueprint import bp
from app.extensions.ext_database import db
from app.models import ApiKey
from app.services import api_keys

SESSION_KEY = "dashboard_api_key_id"
OPEN_ENDPOINTS = frozenset({"dashboard.sign_in", "dashboard.static"})

csrf = CSRFProtect()


def _safe_next(target: str | None) -> str:
    # Only a path inside the dashboard: never an open redirect to another site.
    if target and not urlsplit(target).netloc and target.startswith(bp.url_prefix or "/"):
        return target
    return url_for("dashboard.overview")


@bp.before_request
def require_sign_in() -> BaseResponse | None:
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    key_id = session.get(SESSION_KEY)
    key = db.session.get(ApiKey, key_id) if isinstance(key_id, int) else None
    if key is None or key.revoked_at is not None:
        session.pop(SESSION_KEY, None)
        target = url_for("dashboard.sign_in", next=request.full_path.rstrip("?"))
        if request.headers.get("HX-Request"):
            # An htmx refresh would swap the sign-in page into a panel; send the page there.
            response = Response(status=204)
            response.headers["HX-Redirect"] = target
            return response
        return redirect(target)
    g.dashboard_key = key
    return None


# Nothing from outside the app's origin, ever: every asset is vendored (app/static/vendor).
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


@bp.after_request
def content_security_policy(response: BaseResponse) -> BaseResponse:
    response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    return response


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> BaseResponse | str | tuple[str, int]:
    """Sign in with an API key (any valid key sees everything until keys get scopes)."""
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return render_template("dashboard/sign_in.html", next_url=next_url, error=None)
    token = (request.form.get("api_key") or "").strip()
    key = api_keys.authenticate(token) if token else None
    if key is None:
        error = (
            "That API key is unknown or revoked. Paste a key printed by "
            "`flask --app app keys create NAME` (or by `./entrypoint.sh dev`)."
        )
        return render_template("dashboard/sign_in.html", next_url=next_url, error=error), 401
    session.clear()
    session[SESSION_KEY] = key.id
    return redirect(next_url)


@bp.route("/sign-out", methods=["POST"])
def sign_out() -> BaseResponse:
    session.pop(SESSION_KEY, None)
    return redirect(url_for("dashboard.sign_in"))


@bp.errorhandler(CSRFError)
def csrf_failed(exc: CSRFError) -> tuple[str, int]:
    message = f"{exc.description} Reload the page and try again."
    return render_template("dashboard/error.html", status=400, message=message), 400
