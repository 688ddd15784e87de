"""The OpenAPI document as the API's contract: every error it can answer, every input it takes.

flask-smorest writes the document from the views' decorators; this module finishes it in
one place, once every blueprint is registered, so no view has to repeat it:

- every error response is `application/problem+json` with the `Problem` schema, and the
  statuses every operation can give (401, 503 while the database is away, 404 for an
  unknown id, 400/413/415/422 for a body, 422 for bad parameters, 500 as `default`) are
  declared on each;
- what the API refuses for every input, the document says: strings never hold NUL, ids in
  paths are UUIDs, page sizes are at most `API_PAGE_LIMIT`;
- choices known only at run time are enums: the public tasks (each with the arguments its
  signature takes), the configured generation providers, the retrieval modes available.
"""

from __future__ import annotations

import copy
import json
from http import HTTPStatus
from typing import Any

from flask import Flask
from flask import Response
from flask import current_app
from flask_smorest import Api
from marshmallow import INCLUDE
from marshmallow import Schema
from marshmallow import fields
from werkzeug.routing import BaseConverter

from app.api import task_arguments
from app.api.generation_schemas import ONE_INPUT
from app.api.validation import MAX_INT
from app.api.validation import MIN_INT
from app.services.dataset.retrieval import MODES
from app.services.generation.providers.registry import registry
from app.services.mail import templates
from config import settings_of

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# ECMA-262 and Python agree on this one: any string without NUL.
NO_NUL = "^[^\\u0000]*$"
PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/metrics"})
BODY_STATUSES = (400, 413, 415, 422)
# Statuses declared on many operations at once; the others say their HTTP phrase.
DESCRIPTIONS = {
    503: "Database unreachable; nothing was changed: retry after Retry-After seconds",
}


def path_param_schema(_converter: Any = None) -> dict[str, Any]:
    # Every resource id is a UUID (app.models.base.new_id). Saying so also keeps an id apart
    # from the literal routes beside it (`/generations/providers`): no UUID is a word.
    return {"type": "string", "format": "uuid"}


class IdConverter(BaseConverter):
    """A resource id in a path: any segment but the literal routes beside it, so
    `/jobs/batch` is POST /jobs/batch's alone (its OPTIONS advertises no GET) and
    `GET /generations/batch` is that route's 405. Anything else reaches the view, a NUL
    included, which answers 422 naming the parameter; an id that names nothing is a 404."""

    regex = "(?!(?:batch|providers)$)[^/]+"


class ProblemSchema(Schema):
    """RFC 9457 problem details; `errors` names each refused field by location."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    instance = fields.String(required=True)
    detail = fields.String()
    errors = fields.Raw(
        metadata={
            "type": "object",
            "description": "refused fields by location: {'json': {'args.token': ['...']}}",
        }
    )


class TasklaneApi(Api):  # type: ignore[misc]
    """flask-smorest's Api: problem+json errors, and the document served as `finish` makes it."""

    ERROR_SCHEMA = ProblemSchema
    _document: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = finish(current_app, copy.deepcopy(self.spec.to_dict()))
        return self._document

    def _openapi_json(self) -> Response:
        return current_app.response_class(
            json.dumps(self.document(), indent=2), mimetype="application/json"
        )

    def _register_responses(self) -> None:
        self.spec.components.schema("Problem", schema=ProblemSchema)
        for status in HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}}
            self.spec.components.response(status.name, response, lazy=True)
        self.spec.components.response(
            "DEFAULT_ERROR",
            {
                "description": "Any other error, as problem+json",
                "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}},
            },
            lazy=True,
        )


def _problem(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or HTTPStatus(status).phrase,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_REF}},
    }
    if status == 401:
        response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}}
    if status == 405:
        response["headers"] = {"Allow": {"schema": {"type": "string"}, "required": True}}
    if status == 503:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
    return response


def _declare_errors(path: str, path_item: dict[str, Any]) -> None:
    path_params = [p for p in path_item.get("parameters", []) if p.get("in") == "path"]
    for param in path_params:
        param["schema"] = path_param_schema()
    for method, operation in path_item.items():
        if method == "parameters" or not isinstance(operation, dict):
            continue
        responses = operation.setdefault("responses", {})
        wanted: list[int] = []
        if path not in PUBLIC_PATHS:
            # Every keyed operation reads the ledger (the key itself, at least).
            wanted += [401, 503]
        if path_params:
            wanted += [404, 422]
        if "requestBody" in operation:
            wanted += list(BODY_STATUSES)
        if any(p.get("in") == "query" for p in operation.get("parameters", [])):
            wanted.append(422)
        for status in wanted:
            responses.setdefault(str(status), {"description": DESCRIPTIONS.get(status, "")})
        for status, response in responses.items():
            if status == "default" or "$ref" in response:
                continue
            if int(status) >= 400 and "content" not in response:
                response.update(_problem(int(status), response.get("description")))
        responses.setdefault("default", {"$ref": "#/components/responses/DEFAULT_ERROR"})


def _no_nul_strings(node: Any) -> None:
    """Every free string in the document refuses NUL, as validation.py does."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "enum", "format"} & node.keys():
            node["pattern"] = NO_NUL
        if node.get("type") == "integer":
            node.setdefault("minimum", MIN_INT)
            node.setdefault("maximum", MAX_INT)
        for value in node.values():
            _no_nul_strings(value)
    elif isinstance(node, list):
        for value in node:
            _no_nul_strings(value)


def _page_limits(paths: dict[str, Any], page_limit: int) -> None:
    for path_item in paths.values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for param in operation.get("parameters", []):
                if param.get("in") == "query" and param.get("name") == "limit":
                    schema = param["schema"]
                    schema.update(minimum=1, maximum=page_limit)
                    schema["default"] = min(int(schema.get("default", 50)), page_limit)


def _public_tasks(spec: dict[str, Any], celery_app: Any, max_countdown: int) -> None:
    schema = spec["components"]["schemas"].get("JobSubmit")
    if schema is None:
        return
    schema["properties"]["countdown"]["maximum"] = max_countdown
    public = sorted(n for n, t in celery_app.tasks.items() if getattr(t, "public", False))
    schema["properties"]["task"]["enum"] = public
    schema["oneOf"] = [_task_branch(name, celery_app.tasks[name]) for name in public]


def _task_branch(name: str, task: Any) -> dict[str, Any]:
    args = task_arguments.schema(task)
    branch: dict[str, Any] = {"properties": {"task": {"enum": [name]}, "args": args}}
    if args.get("required"):
        # Left out, `args` means no arguments: a task that needs some must be given them.
        branch["required"] = ["args"]
    return branch


def _provider_branches(providers: Any) -> list[dict[str, Any]]:
    """One branch per configured provider: the models it offers, and whether `model` may be
    left out (only when it offers exactly one). No `provider` means `offline`."""
    branches = []
    for name in providers.names():
        offered = list(providers.models(name))
        model: dict[str, Any] = {"type": "string", "enum": offered} if offered else {}
        branch: dict[str, Any] = {
            "required": ["provider"],
            "properties": {"provider": {"enum": [name]}, "model": model},
        }
        if len(offered) != 1:
            branch["required"] = ["provider", "model"]
        branches.append(branch)
        if name == "offline":
            default = {"not": {"required": ["provider"]}, "properties": {"model": model}}
            if len(offered) != 1:
                default["required"] = ["model"]
            branches.append(default)
    return branches


def _run_time_choices(app: Flask, schemas: dict[str, Any]) -> None:
    settings = settings_of(app)
    for name in ("GenerationSubmit", "BatchItem"):
        if name in schemas:
            schemas[name]["oneOf"] = ONE_INPUT
    if "MailSubmit" in schemas:
        schemas["MailSubmit"]["properties"]["template"]["enum"] = templates.available()
    providers = registry(settings)
    branches = _provider_branches(providers)
    for name in ("GenerationSubmit", "GenerationBatch", "Answer"):
        if name in schemas:
            schemas[name]["properties"]["provider"]["enum"] = providers.names()
            schemas[name]["allOf"] = [{"oneOf": branches}]
    modes = [m for m in MODES if m == "keyword" or settings.dataset.embedding_base_url]
    for name in ("Retrieve", "Answer"):
        if name in schemas:
            schemas[name]["properties"]["mode"]["enum"] = modes


def finish(app: Flask, spec: dict[str, Any]) -> dict[str, Any]:
    """The document as served: errors declared, limits and run-time choices filled in."""
    settings = settings_of(app)
    for path, path_item in spec["paths"].items():
        _declare_errors(path, path_item)
    _page_limits(spec["paths"], settings.api.page_limit)
    _public_tasks(spec, app.extensions["celery"], settings.broker.task_max_countdown)
    _run_time_choices(app, spec["components"]["schemas"])
    _no_nul_strings(spec)
    return spec
