"""Bearer API key authentication for every endpoint except health."""

from __future__ import annotations

from flask import request
from werkzeug.exceptions import Unauthorized
from werkzeug.exceptions import UnsupportedMediaType

from app.api import access
from app.api.blueprint import ApiBlueprint
from app.extensions.ext_database import reads_only
from app.services import api_keys

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def require_api_key() -> None:
    """before_request hook: 401 unless the request carries a valid, unrevoked key.

    Then the key's scopes and project decide the rest (app.api.access): 403 or 404.
    """
    if request.method in access.READ_METHODS:
        reads_only()  # no API read writes: its statements run autocommitted
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send an API key as 'Authorization: Bearer <key>'")
    # Cached for api_keys.CACHE_TTL seconds: most requests touch no database for their key.
    key = api_keys.authenticate_cached(token.strip())
    if key is None:
        raise _unauthorized(
            "the API key is unknown or revoked; create one with 'flask keys create'"
        )
    access.authorize(key)


def require_json_body() -> None:
    """before_request hook: a request body must be JSON, else 415."""
    has_body = request.content_length or request.headers.get("Transfer-Encoding")
    if request.method in BODY_METHODS and has_body and not request.is_json:
        raise UnsupportedMediaType(
            f"send the body as application/json (got {request.mimetype or 'no content type'})"
        )


def blueprint(
    name: str, import_name: str, *, url_prefix: str, description: str, json_body: bool = True
) -> ApiBlueprint:
    """An API blueprint: every request needs a key and, where `json_body`, sends JSON."""
    blp = ApiBlueprint(name, import_name, url_prefix=url_prefix, description=description)
    blp.before_request(require_api_key)
    if json_body:
        blp.before_request(require_json_body)
    return blp


def _unauthorized(detail: str) -> Unauthorized:
    exc = Unauthorized(detail)
    exc.data = {"headers": {"WWW-Authenticate": 'Bearer realm="tasklane"'}}  # type: ignore[attr-defined]
    return exc
