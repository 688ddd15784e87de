"""Every bad request gets a 4xx problem+json body that says what to fix; never a 500."""

from __future__ import annotations

import io
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.services import api_keys
from app.services.mail.mails import ADDRESS_PATTERN

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert body["title"]
    assert body["instance"] == response.request.path
    return dict(body)


def test_health_needs_no_key(client: FlaskClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/jobs"),
        ("post", "/api/v1/jobs"),
        ("get", "/api/v1/jobs/some-id"),
        ("post", "/api/v1/jobs/some-id/cancel"),
        ("post", "/api/v1/jobs/some-id/retry"),
        ("get", "/api/v1/queues"),
        ("get", "/api/v1/ready"),
    ],
)
def test_every_endpoint_but_health_needs_a_key(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    body = assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["detail"]


def test_unknown_and_revoked_keys_are_refused(app: Flask, client: FlaskClient) -> None:
    assert_problem(client.get("/api/v1/jobs", headers={"Authorization": "Bearer tl_nope"}), 401)
    with app.app_context():
        key, token = api_keys.create("to-revoke")
        prefix = key.prefix
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    with app.app_context():
        assert api_keys.revoke(prefix) == 1
    assert_problem(client.get("/api/v1/jobs", headers=headers), 401)


def test_malformed_json_is_400(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/jobs", data="{not json", headers={**auth, "Content-Type": "application/json"}
    )
    body = assert_problem(response, 400)
    assert body["errors"] == {"json": ["Invalid JSON body."]}


def test_body_that_is_not_json_is_415(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/jobs", data="task=x", headers={**auth, "Content-Type": "text/plain"}
    )
    assert "application/json" in assert_problem(response, 415)["detail"]


def test_oversized_body_is_413(app: Flask, client: FlaskClient, auth: dict[str, str]) -> None:
    limit = app.config["SETTINGS"].api.max_request_bytes
    payload = '{"task": "tests.echo", "args": {"value": "' + "x" * limit + '"}}'
    response = client.post(
        "/api/v1/jobs", data=payload, headers={**auth, "Content-Type": "application/json"}
    )
    assert_problem(response, 413)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "task"),
        ({"task": 5}, "task"),
        ({"task": "tests.echo", "args": [1, 2]}, "args"),
        ({"task": "tests.echo", "priority": "high"}, "priority"),
        ({"task": "tests.echo", "priority": 12}, "priority"),
        ({"task": "tests.echo", "countdown": -1}, "countdown"),
        ({"task": "tests.echo", "surprise": True}, "surprise"),
    ],
)
def test_wrong_types_are_422_naming_the_field(
    client: FlaskClient, auth: dict[str, str], body: dict, field: str
) -> None:
    body_out = assert_problem(client.post("/api/v1/jobs", json=body, headers=auth), 422)
    assert field in body_out["errors"]["json"]


def test_unknown_task_is_422_listing_public_tasks(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    body = assert_problem(
        client.post("/api/v1/jobs", json={"task": "nope.nothing"}, headers=auth), 422
    )
    assert "nope.nothing" in body["detail"]
    assert "system.canary" in body["detail"]


def test_internal_task_cannot_be_submitted_by_name(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    response = client.post("/api/v1/jobs", json={"task": "system.purge_expired_jobs"}, headers=auth)
    assert_problem(response, 422)


def test_arguments_the_task_cannot_take_are_422(client: FlaskClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/jobs", json={"task": "tests.echo", "args": {"colour": "red"}}, headers=auth
    )
    assert "colour" in assert_problem(response, 422)["detail"]


def test_countdown_beyond_the_limit_is_422(
    app: Flask, client: FlaskClient, auth: dict[str, str]
) -> None:
    too_long = app.config["SETTINGS"].broker.task_max_countdown + 1
    response = client.post(
        "/api/v1/jobs", json={"task": "tests.echo", "countdown": too_long}, headers=auth
    )
    assert "TASK_MAX_COUNTDOWN" in assert_problem(response, 422)["detail"]


@pytest.mark.parametrize("suffix", ["", "/cancel", "/retry"])
def test_unknown_job_id_is_404(client: FlaskClient, auth: dict[str, str], suffix: str) -> None:
    job_id = str(uuid.uuid4())
    method = client.post if suffix else client.get
    body = assert_problem(method(f"/api/v1/jobs/{job_id}{suffix}", headers=auth), 404)
    assert job_id in body["detail"]


def test_bad_list_filters_are_4xx(client: FlaskClient, auth: dict[str, str]) -> None:
    assert_problem(client.get("/api/v1/jobs?state=sleeping", headers=auth), 422)
    assert_problem(client.get("/api/v1/jobs?queue=nowhere", headers=auth), 422)
    assert_problem(client.get("/api/v1/jobs?limit=0", headers=auth), 422)
    assert_problem(client.get("/api/v1/jobs?cursor=%%%", headers=auth), 422)


def test_unknown_path_is_a_problem_too(client: FlaskClient, auth: dict[str, str]) -> None:
    assert_problem(client.get("/api/v1/nothing-here", headers=auth), 404)


def test_openapi_document_describes_the_api(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/jobs", "/api/v1/jobs/{job_id}", "/api/v1/queues"} <= set(spec["paths"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert client.get("/api/v1/docs").status_code == 200


def test_an_id_is_never_a_sibling_routes_name_and_every_keyed_operation_may_be_503(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    # Ids in paths are UUIDs, and the routing never reads a sibling route's literal as one:
    # /jobs/batch and /generations/batch are POST-only routes (GET is their 405, and OPTIONS
    # advertises no GET), /generations/providers is a route of its own.
    spec = client.get("/api/v1/openapi.json").get_json()
    id_schemas = [
        param["schema"]
        for item in spec["paths"].values()
        for param in item.get("parameters", [])
        if param["in"] == "path"
    ]
    assert len(id_schemas) >= 10
    assert all(schema == {"type": "string", "format": "uuid"} for schema in id_schemas)
    for path in ("/api/v1/jobs/batch", "/api/v1/generations/batch"):
        assert_problem(client.get(path, headers=auth), 405)
        allowed = client.options(path, headers=auth).headers["Allow"]
        assert {m.strip() for m in allowed.split(",")} == {"OPTIONS", "POST"}, path
    assert isinstance(client.get("/api/v1/generations/providers", headers=auth).get_json(), list)
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            # /ready's 503 is its own report; health and metrics need no database.
            if method != "parameters" and path not in (
                "/api/v1/health",
                "/api/v1/metrics",
                "/api/v1/ready",
            ):
                assert "Retry-After" in str(operation["responses"]["503"]), (method, path)


BAD_NOTIFY = [
    "not-an-address",
    ["ok@example.org", "not-an-address"],
    "a@b.example\r\nBcc: victim@example.org",
    [""],
    5,
    [f"user{n}@example.org" for n in range(51)],
]


@pytest.mark.parametrize("notify", BAD_NOTIFY)
def test_bad_notify_address_is_422_naming_the_field(
    client: FlaskClient, auth: dict[str, str], notify: object
) -> None:
    body = {"task": "tests.echo", "notify": notify}
    problem = assert_problem(client.post("/api/v1/jobs", json=body, headers=auth), 422)
    assert "notify" in problem["errors"]["json"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/generations", {"prompt": "hi"}),
        ("/api/v1/generations/batch", {"items": [{"prompt": "hi"}]}),
        ("/api/v1/datasets/{dataset}/answer", {"question": "why?"}),
    ],
)
def test_every_endpoint_taking_notify_refuses_a_bad_address(
    client: FlaskClient, auth: dict[str, str], path: str, body: dict[str, object]
) -> None:
    dataset = client.post("/api/v1/datasets", json={"name": "notify"}, headers=auth).get_json()
    url = path.format(dataset=dataset["id"])
    response = client.post(url, json={**body, "notify": ["nobody"]}, headers=auth)
    assert "notify" in assert_problem(response, 422)["errors"]["json"]


def test_upload_with_a_bad_notify_address_is_422_and_stores_nothing(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    dataset = client.post("/api/v1/datasets", json={"name": "notify"}, headers=auth).get_json()
    url = f"/api/v1/datasets/{dataset['id']}/documents"
    as_json = {"documents": [{"text": "some text"}], "notify": "nobody"}
    as_form = {"files": (io.BytesIO(b"some text"), "a.txt"), "notify": "ok@example.org, nobody"}

    json_problem = assert_problem(client.post(url, json=as_json, headers=auth), 422)
    form_problem = assert_problem(client.post(url, data=as_form, headers=auth), 422)

    assert "'nobody' is not a valid e-mail address" in json_problem["detail"]
    assert "'nobody' is not a valid e-mail address" in form_problem["detail"]
    listed = client.get(url, headers=auth).get_json()
    assert listed["items"] == []


def test_openapi_document_describes_notify(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    for name in ("JobSubmit", "GenerationSubmit", "GenerationBatch", "Answer", "Texts"):
        assert schemas[name]["properties"]["notify"]["items"]["pattern"] == ADDRESS_PATTERN, name
    assert schemas["Job"]["properties"]["notify"]["type"] == "array"
    upload = spec["paths"]["/api/v1/datasets/{dataset_id}/documents"]["post"]["requestBody"]
    assert "notify" in upload["content"]["multipart/form-data"]["schema"]["properties"]
