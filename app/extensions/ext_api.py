"""The REST API's OpenAPI 3 document, request validation and interactive docs (flask-smorest)."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint
from flask import Flask
from flask import Response
from flask import request

from app.api import contract
from app.api import validation
from app.api.contract import TasklaneApi
from config import Settings
from config import settings_of

API_PREFIX = "/api/v1"
# Swagger UI's files come from the swagger-ui-bundle wheel and ReDoc from app/static/vendor, so
# the docs render on a machine with no internet access (no CDN).
SWAGGER_ASSETS_PATH = f"{API_PREFIX}/docs/assets"
REDOC_SCRIPT = "/static/vendor/redoc/redoc.standalone.js"
# ReDoc always shows Redocly's logo from their CDN; this policy keeps the docs pages from
# loading anything (that logo included) from outside the app's own origin.
DOCS_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
    "font-src 'self' data:"
)
DOCS_PAGES = frozenset({f"{API_PREFIX}/docs", f"{API_PREFIX}/redoc"})


def _docs_policy(response: Response) -> Response:
    if request.path in DOCS_PAGES:
        response.headers.setdefault("Content-Security-Policy", DOCS_POLICY)
    return response


def init_app(app: Flask) -> None:
    settings: Settings = settings_of(app)
    app.config.update(
        API_TITLE="Tasklane",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=f"{SWAGGER_ASSETS_PATH}/",
        # No badge that asks the public validator service about the document.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        OPENAPI_REDOC_PATH="/redoc",
        OPENAPI_REDOC_URL=REDOC_SCRIPT,
        MAX_CONTENT_LENGTH=settings.api.max_request_bytes,
    )
    api = TasklaneApi(
        app,
        spec_kwargs={
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API key"}
                }
            },
            "security": [{"bearerAuth": []}],
        },
    )
    app.extensions["api"] = api
    app.register_blueprint(
        Blueprint(
            "swagger_ui_assets",
            __name__,
            static_folder=str(swagger_ui_bundle.swagger_ui_path),
            static_url_path=SWAGGER_ASSETS_PATH,
        )
    )
    app.after_request(_docs_policy)
    validation.init_app(app)
    app.url_map.converters["id"] = contract.IdConverter
    api.register_converter(contract.IdConverter, contract.path_param_schema)
