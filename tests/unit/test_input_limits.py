"""Input the database or Python cannot take is a 4xx naming the field, never a 500, and
nothing of it is stored: the nine kinds of input that once gave a 500, and their neighbours.
Runs on the session's database (PostgreSQL or SQLite), where a NUL would have failed."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from app.api.validation import MAX_JSON_DEPTH
from app.api.validation import MAX_URL_CHARS
from app.extensions.ext_database import db
from app.models import Trace

PROBLEM = "application/problem+json"


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.content_type == PROBLEM
    return dict(response.get_json())


def post_raw(client: FlaskClient, auth: dict[str, str], path: str, text: str) -> Any:
    headers = {**auth, "Content-Type": "application/json"}
    return client.post(path, data=text.encode("utf-8", "surrogatepass"), headers=headers)


def field_errors(body: dict[str, Any], location: str = "json") -> dict[str, Any]:
    return dict(body["errors"][location])


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"task": "tests.echo", "args": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
        '{"task": "tests.echo", "args": '
        + "[" * (MAX_JSON_DEPTH + 1)
        + "]" * (MAX_JSON_DEPTH + 1)
        + "}",
        # Brackets inside strings are text, not nesting: this one is only too deep outside.
        '{"task": "tests.echo", "args": {"value": "'
        + "[" * 500
        + '"}, "x": '
        + "[" * 40
        + "]" * 40
        + "}",
    ],
)
def test_json_nested_too_deep_is_400(client: FlaskClient, auth: dict[str, str], text: str) -> None:
    body = problem(post_raw(client, auth, "/api/v1/jobs", text), 400)
    assert str(MAX_JSON_DEPTH) in body["detail"]


def test_brackets_inside_strings_do_not_count(client: FlaskClient, auth: dict[str, str]) -> None:
    text = json.dumps({"task": "tests.echo", "args": {"value": "[" * 500}})
    assert post_raw(client, auth, "/api/v1/jobs", text).status_code == 202


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1" * 5000, "64 bits"),
        (str(2**63), "64 bits"),
        (str(-(2**63) - 1), "64 bits"),
        ("1e999", "finite"),
        ("-1e999", "finite"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ('"a\\u0000b"', "NUL"),
        ('"\\ud800"', "surrogate"),
        ('["ok", {"deep": "x\\u0000"}]', "NUL"),
    ],
)
def test_unstorable_values_in_args_are_422_naming_the_field(
    client: FlaskClient, auth: dict[str, str], value: str, message: str
) -> None:
    text = '{"task": "tests.echo", "args": {"value": ' + value + "}}"
    body = problem(post_raw(client, auth, "/api/v1/jobs", text), 422)
    [(field, messages)] = field_errors(body).items()
    assert field.startswith("args.value"), field
    assert message in messages[0]


def test_the_largest_64_bit_integer_is_taken(client: FlaskClient, auth: dict[str, str]) -> None:
    text = '{"task": "tests.echo", "args": {"value": ' + str(2**63 - 1) + "}}"
    assert post_raw(client, auth, "/api/v1/jobs", text).status_code == 202


def test_nul_in_a_key_is_refused(client: FlaskClient, auth: dict[str, str]) -> None:
    text = '{"task": "tests.echo", "args": {"va\\u0000lue": 1}}'
    assert "NUL" in str(problem(post_raw(client, auth, "/api/v1/jobs", text), 422)["errors"])


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/jobs", {"task": "tests.echo", "idempotency_key": "a\x00b"}, "idempotency_key"),
        ("/api/v1/datasets", {"name": "a\x00b"}, "name"),
        ("/api/v1/generations", {"prompt": "hi\x00"}, "prompt"),
        (
            "/api/v1/mail",
            {"template": "job_finished", "to": "a@example.org", "context": {"x": "\x00"}},
            "context.x",
        ),
    ],
)
def test_nul_in_body_fields_is_422_naming_them(
    client: FlaskClient, auth: dict[str, str], path: str, body: dict[str, Any], field: str
) -> None:
    answer = problem(client.post(path, json=body, headers=auth), 422)
    assert field in field_errors(answer)


@pytest.mark.parametrize(
    ("path", "location", "field"),
    [
        ("/api/v1/jobs/a%00b", "path", "job_id"),
        ("/api/v1/jobs/a%00b/cancel", "path", "job_id"),
        ("/api/v1/datasets/a%00b", "path", "dataset_id"),
        ("/api/v1/generations/a%00b", "path", "job_id"),
        ("/api/v1/mail/a%00b", "path", "mail_id"),
        ("/api/v1/jobs?task=a%00b", "query", "task"),
        ("/api/v1/traces?operation=a%00b", "query", "operation"),
    ],
)
def test_nul_in_path_and_query_parameters_is_422(
    client: FlaskClient, auth: dict[str, str], path: str, location: str, field: str
) -> None:
    method = client.post if path.endswith("/cancel") else client.get
    answer = problem(method(path, headers=auth), 422)
    assert field in field_errors(answer, location)


def test_nul_in_an_uploaded_file_name_is_422(client: FlaskClient, auth: dict[str, str]) -> None:
    dataset = client.post("/api/v1/datasets", json={"name": "nul-names"}, headers=auth).get_json()
    upload = {"files": (io.BytesIO(b"some text"), "a\x00b.txt")}
    answer = problem(
        client.post(f"/api/v1/datasets/{dataset['id']}/documents", data=upload, headers=auth),
        422,
    )
    assert "files[0].filename" in field_errors(answer, "form")


@pytest.mark.parametrize(
    "query",
    [
        "offset=11344685637910855281541120",
        f"offset={2**63}",
        "offset=-1",
        "offset=" + "9" * 4000,
        "limit=" + "9" * 4000,
    ],
)
def test_integers_beyond_their_column_are_422(
    client: FlaskClient, auth: dict[str, str], query: str
) -> None:
    problem(client.get(f"/api/v1/datasets?{query}", headers=auth), 422)


@pytest.mark.parametrize(
    ("since", "includes_now"),
    [
        # Found by the suite's contract test under load (2026-12-03): a 500, since turning
        # these into UTC overflows Python's datetime. The earliest time is before every
        # trace; the latest after every one.
        ("0001-01-01T00:53:01+08:08", True),
        ("9999-12-31T23:59:59-08:00", False),
        ("2026-12-03T08:00:00+01:00", True),
    ],
)
def test_a_time_at_the_edge_of_utc_is_a_filter_not_a_500(
    app: Flask, client: FlaskClient, admin_token: str, since: str, includes_now: bool
) -> None:
    operation = f"tests.utc-edge-{uuid.uuid4().hex[:8]}"
    with app.app_context():
        db.session.add(Trace(id=str(uuid.uuid4()), operation=operation, status="succeeded"))
        db.session.commit()
    answer = client.get(
        "/api/v1/traces",
        query_string={"since": since, "operation": operation},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found = [item["operation"] for item in answer.get_json()["items"]]
    assert found == ([operation] if includes_now else [])


def test_page_size_is_bounded_by_api_page_limit(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    limit = app.config["SETTINGS"].api.page_limit
    body = problem(client.get(f"/api/v1/jobs?limit={limit + 1}", headers=auth), 422)
    assert "API_PAGE_LIMIT" in str(body["errors"])
    assert client.get(f"/api/v1/jobs?limit={limit}", headers=auth).status_code == 200
    spec = client.get("/api/v1/openapi.json").get_json()
    [param] = [
        p for p in spec["paths"]["/api/v1/jobs"]["get"]["parameters"] if p["name"] == "limit"
    ]
    assert param["schema"]["maximum"] == limit


def test_a_cursor_the_schema_allows_is_taken(client: FlaskClient, auth: dict[str, str]) -> None:
    assert client.get("/api/v1/jobs?cursor=0.0", headers=auth).status_code == 200
    problem(client.get("/api/v1/jobs?cursor=0", headers=auth), 422)


def test_a_url_too_long_is_414(client: FlaskClient, auth: dict[str, str]) -> None:
    problem(client.get("/api/v1/jobs/" + "x" * MAX_URL_CHARS, headers=auth), 414)


def test_trace_is_405_with_allow(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.open("/api/v1/health", method="TRACE", headers=auth)
    problem(response, 405)
    assert "GET" in response.headers["Allow"]


def test_a_message_whose_content_is_null_is_taken(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}]}
    assert client.post("/api/v1/generations", json=body, headers=auth).status_code == 202


def test_no_row_the_database_cannot_read_back(app: Flask) -> None:
    """Everything the tests above had accepted is readable with JSON operators."""
    with app.app_context():
        dialect = db.engine.dialect.name
        expression = (
            "args->>'value'" if dialect == "postgresql" else "json_extract(args, '$.value')"
        )
        rows = db.session.execute(sa.text(f"SELECT {expression} FROM jobs")).all()
        db.session.rollback()
    assert rows
