"""Input the database or Python cannot take is refused at the door, with a 4xx naming the field.

PostgreSQL refuses NUL in text and JSON, lone UTF-16 surrogates in any string, NaN and
infinities in JSON, and integers beyond its column types; Python refuses to turn an integer
of more than 4,300 digits into a string, and json.loads recurses once per nesting level. So:

- a JSON body is scanned for its nesting depth *before* it is parsed (iteratively: no
  recursion an attacker can blow), then parsed with NaN/Infinity and 1e999 refused and every
  integer checked to fit in 64 bits, then walked (iteratively) for NUL and surrogates;
- query strings, path parameters and form fields are checked for NUL by name;
- the URL is bounded in length.

Everything refused is a 400 (not JSON at all), 414 (URL too long) or a 422 whose `errors`
name the field, in the same shape webargs uses: {"json": {"args.token": ["..."]}}.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from collections.abc import Iterator
from datetime import UTC
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Any

from flask import Flask
from flask import request
from marshmallow import ValidationError
from marshmallow import fields
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import HTTPException

from config import current_settings

if TYPE_CHECKING:
    from config import Settings

# Documented in the README ("Input limits"); change both together.
MAX_JSON_DEPTH = 32
MAX_INT = 2**63 - 1
MIN_INT = -(2**63)
MAX_URL_CHARS = 4096
# A JSON integer of more digits cannot fit in 64 bits; checked before int() is called.
MAX_INT_DIGITS = 19
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Endpoints whose bodies may be larger than MAX_REQUEST_BYTES -> the setting that bounds them.
BODY_LIMITS: dict[str, Callable[[Settings], int]] = {}

# NUL, and surrogates that pair with nothing: PostgreSQL (and UTF-8) cannot store them.
UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")
# Strings (with their escapes) or brackets; brackets inside strings never count.
TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class InvalidInput(HTTPException):
    """422 naming the offending field by location and dotted path."""

    code = 422
    name = "Unprocessable Entity"

    def __init__(self, location: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.data = {"messages": {location: {field: [message]}}}


class TooDeep(BadRequest):
    description = f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep; flatten it"


class MalformedJson(BadRequest):
    description = "the body is not valid JSON"

    def __init__(self) -> None:
        super().__init__()
        self.data = {"messages": {"json": ["Invalid JSON body."]}}


class UriTooLong(HTTPException):
    code = 414
    name = "URI Too Long"
    description = f"the URL is longer than {MAX_URL_CHARS} characters; send less in the query"


class _Refused:
    """A parsed value that must not be stored; the walk reports it with its path."""

    def __init__(self, message: str) -> None:
        self.message = message


def _check_depth(text: str) -> None:
    depth = 0
    for match in TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise TooDeep()
        elif token in "]}":
            depth -= 1


def _parse_int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        return _Refused("integers must fit in 64 bits (-2**63 .. 2**63-1)")
    value = int(text)
    if not MIN_INT <= value <= MAX_INT:
        return _Refused("integers must fit in 64 bits (-2**63 .. 2**63-1)")
    return value


def _parse_float(text: str) -> float | _Refused:
    value = float(text)
    if not math.isfinite(value):
        return _Refused("numbers must be finite")
    return value


def _parse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON allows; send a finite number or null")


def _string_problem(value: str) -> str | None:
    found = UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL (\\u0000)"
    return "must be valid Unicode (it holds an unpaired surrogate)"


def _walk(value: Any) -> Iterator[tuple[str, str]]:
    """(dotted path, problem) for every value or key that cannot be stored; iterative."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _Refused):
            yield path or "$", item.message
        elif isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                yield path or "$", problem
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                problem = _string_problem(key)
                if problem:
                    yield (path or "$"), f"a key {problem}"
                    continue
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(item))


def loads(data: str | bytes) -> Any:
    """json.loads for request bodies: depth bounded first, then every value checked."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    _check_depth(text)
    value = json.loads(
        text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant
    )
    for path, problem in _walk(value):
        raise InvalidInput("json", path, problem)
    return value


def matches(pattern: str, message: str | None = None) -> Callable[[str], None]:
    """A marshmallow validator: the whole value matches `pattern` (an anchored ECMA/Python
    regex from the document). fullmatch, because Python's `$` would let a trailing newline by."""
    compiled = re.compile(pattern.removeprefix("^").removesuffix("$"))

    def check(value: str) -> None:
        if compiled.fullmatch(value) is None:
            raise ValidationError(message or f"must match {pattern}")

    return check


class StrictBoolean(fields.Boolean):
    """JSON true or false only: marshmallow's Boolean also takes 1, "yes", "on"..."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 time with its offset, answered in UTC. The schema allows a time that UTC
    cannot hold (`0001-01-01T00:30+01:00` falls in year 0), and converting it overflows:
    it is taken as the earliest (or latest) time UTC holds, which a filter treats the same."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            return moment.astimezone(UTC)
        except OverflowError:
            edge = datetime.min if moment.year == datetime.min.year else datetime.max
            return edge.replace(tzinfo=UTC)


def check_text(location: str, field: str, value: str) -> None:
    """422 naming `field` if `value` (a file name, a form field) cannot be stored."""
    problem = _string_problem(value)
    if problem:
        raise InvalidInput(location, field, problem)


def check_request() -> None:
    """before_request: URL length, NUL in the path, the query and path parameters, JSON body."""
    if len(request.full_path) > MAX_URL_CHARS:
        raise UriTooLong()
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            check_text("path", name, value)
    for name, value in request.args.items(multi=True):
        check_text("query", name, name)
        check_text("query", name, value)
    limit = BODY_LIMITS.get(request.endpoint or "")
    if limit:
        # This hook runs before the blueprints' own: an endpoint with a larger body limit
        # must have it before the body is read here.
        request.max_content_length = limit(current_settings())
    if request.is_json and request.method in BODY_METHODS:
        # Checked here, before any view, webargs or request.get_json parses it (they parse
        # it again with json.loads: safe once it passed, and simpler than caching for them).
        data = request.get_data(cache=True)
        if data:
            try:
                loads(data)
            except ValueError:
                # The shape webargs gives a malformed body, so every endpoint says the same.
                raise MalformedJson() from None


def init_app(app: Flask) -> None:
    app.before_request(check_request)
