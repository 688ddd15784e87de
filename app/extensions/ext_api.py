"""The REST API's OpenAPI 3 document, request validation and interactive docs (flask-smorest)."""

from __future__ import annotations

from flask import Flask

from app.api import contract
from app.api import validation
from app.api.contract import TasklaneApi
from config import Settings

API_PREFIX = "/api/v1"


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    app.config.update(
        API_TITLE="Tasklane",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        OPENAPI_REDOC_PATH="/redoc",
        OPENAPI_REDOC_URL="https://cdn.jsdelivr.net/npm/redoc/bundles/redoc.standalone.js",
        MAX_CONTENT_LENGTH=settings.MAX_REQUEST_BYTES,
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
    validation.init_app(app)
    app.url_map.converters["generation_id"] = contract.GenerationIdConverter
    api.register_converter(contract.GenerationIdConverter, contract.path_param_schema)
