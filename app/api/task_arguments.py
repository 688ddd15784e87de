"""A public task's keyword arguments as a JSON schema, from its signature, and the check of
a submission against it: the OpenAPI document states this schema for `args`, and
`POST /jobs` refuses what it does not allow (a wrong type is a 422 naming the argument)."""

from __future__ import annotations

import builtins
import copy
import functools
import inspect
from typing import Any

from marshmallow import ValidationError

JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


def _json_type(annotation: Any) -> str | None:
    if isinstance(annotation, str):
        # Postponed annotations (`from __future__ import annotations`) are strings.
        annotation = getattr(builtins, annotation, None)
    return JSON_TYPES.get(annotation) if isinstance(annotation, type) else None


def schema(task: Any) -> dict[str, Any]:
    """JSON schema of the task's keyword arguments; any object for a task taking **kwargs."""
    return copy.deepcopy(_schema(task))


@functools.cache
def _schema(task: Any) -> dict[str, Any]:
    # A task's signature never changes; inspecting it for every item was 7 % of a batch.
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, param in inspect.signature(task.run).parameters.items():
        if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            return {"type": "object"}
        json_type = _json_type(param.annotation)
        properties[name] = {"type": json_type} if json_type else {}
        if param.default is param.empty:
            required.append(name)
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        result["required"] = required
    return result


def _fits(value: Any, json_type: str) -> bool:
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    wanted = next(python for python, name in JSON_TYPES.items() if name == json_type)
    return isinstance(value, wanted)


def check_types(task: Any, args: dict[str, Any]) -> None:
    """ValidationError naming each argument whose JSON type the signature does not take.
    Missing and unknown arguments are left to the signature check in services.jobs."""
    properties = _schema(task).get("properties", {})
    errors = {
        f"args.{name}": [f"must be of type {properties[name]['type']}"]
        for name, value in args.items()
        if properties.get(name, {}).get("type") and not _fits(value, properties[name]["type"])
    }
    if errors:
        raise ValidationError(errors)
