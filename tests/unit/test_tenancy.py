"""Projects and scoped keys: a key sees and acts on its own project's rows only.

Everything goes through the REST API on the session's real database and broker; no
worker is needed (jobs stay queued, which is all these checks look at).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app.api import access
from app.extensions.ext_database import db
from app.models import Trace
from app.services import api_keys
from app.services import jobs
from app.services import tenancy

JOB = {
    "id": "j",
    "task": "t",
    "state": "succeeded",
    "queue": "dataset",
    "attempts": 1,
    "finished_at": None,
    "error": None,
}


def _headers(app: Flask, project: str, scopes: list[str] | None = None) -> dict[str, str]:
    with app.app_context():
        _key, token = api_keys.create(f"key-{project}", project=project, scopes=scopes)
    return {"Authorization": f"Bearer {token}"}


class Tenant:
    """One project's key and the rows it made: a job, a dataset, a generation and a mail."""

    def __init__(self, client: FlaskClient, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers
        self.job = self.post("/jobs", {"task": "tests.echo", "args": {"value": 1}})["id"]
        self.dataset = self.post("/datasets", {"name": "docs"}, 201)["id"]
        self.generation = self.post("/generations", {"prompt": "hello"})["id"]
        mail = {"template": "job_finished", "to": ["ops@example.com"], "context": {"job": JOB}}
        self.mail = self.post("/mail", mail)["id"]

    def post(self, path: str, body: dict[str, Any], expect: int = 202) -> dict[str, Any]:
        response = self.client.post(f"/api/v1{path}", json=body, headers=self.headers)
        assert response.status_code == expect, response.get_json()
        return dict(response.get_json())

    def get(self, path: str, **query: Any) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.headers, query_string=query)


@pytest.fixture(scope="module")
def tenants(app: Flask) -> dict[str, Tenant]:
    suffix = uuid.uuid4().hex[:8]
    client = app.test_client()
    found = {
        "a": Tenant(client, _headers(app, f"a-{suffix}")),
        "b": Tenant(client, _headers(app, f"b-{suffix}")),
    }
    with app.app_context():
        # The database sink's row for B's job (the sink itself is tested with the lane).
        db.session.add(Trace(id=str(uuid.uuid4()), operation="tests.echo", status="succeeded"))
        db.session.add(
            Trace(id=str(uuid.uuid4()), operation="op", status="succeeded", job_id=found["b"].job)
        )
        db.session.commit()
    return found


def _paths(tenant: Tenant) -> list[tuple[str, str, str]]:
    """(method, path, id in it) for every kind of row a tenant owns."""
    return [
        ("get", f"/jobs/{tenant.job}", tenant.job),
        ("get", f"/jobs/{tenant.job}/events", tenant.job),
        ("post", f"/jobs/{tenant.job}/cancel", tenant.job),
        ("post", f"/jobs/{tenant.job}/retry", tenant.job),
        ("get", f"/datasets/{tenant.dataset}", tenant.dataset),
        ("get", f"/datasets/{tenant.dataset}/documents", tenant.dataset),
        ("delete", f"/datasets/{tenant.dataset}", tenant.dataset),
        ("get", f"/generations/{tenant.generation}", tenant.generation),
        ("get", f"/mail/{tenant.mail}", tenant.mail),
    ]


def test_another_projects_rows_are_404_exactly_like_missing_ones(
    tenants: dict[str, Tenant],
) -> None:
    a, b = tenants["a"], tenants["b"]
    missing = str(uuid.uuid4())
    for method, path, row_id in _paths(b):
        foreign = getattr(a.client, method)(f"/api/v1{path}", headers=a.headers)
        absent = getattr(a.client, method)(
            f"/api/v1{path.replace(row_id, missing)}", headers=a.headers
        )
        assert foreign.status_code == 404, (path, foreign.get_json())
        # Nothing tells the two apart: the same problem, word for word.
        expected = {
            key: str(value).replace(missing, row_id) for key, value in absent.get_json().items()
        }
        assert {k: str(v) for k, v in foreign.get_json().items()} == expected, path
    # A's cancel never reached B's job (a session worker may have run it meanwhile), and
    # B itself sees all of its rows.
    assert b.get(f"/jobs/{b.job}").get_json()["state"] != "cancelled"
    for path in (f"/datasets/{b.dataset}", f"/generations/{b.generation}", f"/mail/{b.mail}"):
        assert b.get(path).status_code == 200, path


def test_listings_show_only_the_keys_project(tenants: dict[str, Tenant]) -> None:
    a, b = tenants["a"], tenants["b"]
    listed = {job["id"] for job in a.get("/jobs", limit=100).get_json()["items"]}
    # A's own: its echo job and the jobs behind its generation and mail.
    assert {a.job, a.generation} <= listed
    assert not listed & {b.job, b.generation}
    datasets = {d["id"] for d in a.get("/datasets", limit=100).get_json()["items"]}
    assert a.dataset in datasets and b.dataset not in datasets
    assert a.get("/traces", job_id=b.job).get_json()["items"] == []
    assert all(t["job_id"] != b.job for t in a.get("/traces").get_json()["items"])
    assert [t["job_id"] for t in b.get("/traces", job_id=b.job).get_json()["items"]] == [b.job]


def test_an_admin_key_sees_and_acts_across_projects(app: Flask, tenants: dict[str, Tenant]) -> None:
    a, b = tenants["a"], tenants["b"]
    admin = _headers(app, "operators", ["admin"])
    client = a.client
    listed = {
        j["id"] for j in client.get("/api/v1/jobs?limit=100", headers=admin).get_json()["items"]
    }
    assert {a.job, b.job, a.generation, b.generation} <= listed
    for tenant in (a, b):
        for method, path, _ in _paths(tenant):
            if method == "get" and not path.endswith("/events"):
                assert client.get(f"/api/v1{path}", headers=admin).status_code == 200, path
    traces = client.get("/api/v1/traces", headers=admin, query_string={"job_id": b.job})
    assert len(traces.get_json()["items"]) == 1
    # Traces of no job (and so of no project) are the admin's alone.
    assert any(
        t["job_id"] is None for t in client.get("/api/v1/traces", headers=admin).get_json()["items"]
    )
    assert all(t["job_id"] is not None for t in a.get("/traces").get_json()["items"])


def test_system_jobs_are_seen_by_admin_keys_only(app: Flask, tenants: dict[str, Tenant]) -> None:
    with app.app_context():
        job, _ = jobs.submit(
            app.extensions["celery"],
            jobs.Submission(task="tests.echo", args={}),
            broker_timeout=5,
        )
        assert job.project_id is None
        job_id = job.id
    assert tenants["a"].get(f"/jobs/{job_id}").status_code == 404
    admin = _headers(app, "operators", ["admin"])
    assert tenants["a"].client.get(f"/api/v1/jobs/{job_id}", headers=admin).status_code == 200


def test_a_missing_scope_is_a_403_naming_it(app: Flask, client: FlaskClient) -> None:
    reader = _headers(app, f"r-{uuid.uuid4().hex[:8]}", ["jobs:read"])
    response = client.post("/api/v1/jobs", json={"task": "tests.echo"}, headers=reader)
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"
    assert "'jobs:write'" in response.get_json()["detail"]
    assert client.get("/api/v1/jobs", headers=reader).status_code == 200
    refused = client.get("/api/v1/datasets", headers=reader)
    assert refused.status_code == 403 and "'datasets:read'" in refused.get_json()["detail"]


def test_an_idempotency_key_never_returns_another_projects_job(
    tenants: dict[str, Tenant],
) -> None:
    a, b = tenants["a"], tenants["b"]
    body = {"task": "tests.echo", "args": {"value": 2}, "idempotency_key": uuid.uuid4().hex}
    first = a.post("/jobs", body)
    refused = b.client.post("/api/v1/jobs", json=body, headers=b.headers)
    assert refused.status_code == 409
    assert first["id"] not in refused.get_data(as_text=True)
    assert a.post("/jobs", body)["id"] == first["id"]


def test_document_jobs_belong_to_the_datasets_project(
    app: Flask, tenants: dict[str, Tenant]
) -> None:
    """An admin key of another project uploads to A's dataset: the job is A's to see."""
    a = tenants["a"]
    admin = _headers(app, "operators", ["admin"])
    upload = {"documents": [{"name": "a.txt", "text": "tenancy"}]}
    response = a.client.post(f"/api/v1/datasets/{a.dataset}/documents", json=upload, headers=admin)
    assert response.status_code == 202, response.get_json()
    [document] = response.get_json()["documents"]
    assert a.get(f"/jobs/{document['job_id']}").status_code == 200


def test_every_endpoint_declares_its_scopes_and_checks_its_rows(app: Flask) -> None:
    """A new endpoint cannot silently skip authorisation: the map must cover it."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "system.health":
            continue
        # The API's documentation and its static files are public, like /health.
        if rule.endpoint.startswith(("api-docs.", "swagger_ui_assets.")):
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            needed = access.required_scopes(rule.endpoint, method)
            assert tenancy.ADMIN not in needed, (rule.rule, method)
            assert set(needed) <= set(tenancy.SCOPES)
        if rule.arguments:
            # The first row in the path owns the rest (documents and batches: their dataset).
            first = min(rule.arguments, key=rule.rule.index)
            blueprint = rule.endpoint.rpartition(".")[0]
            assert (blueprint, first) in access.PATH_RESOURCES, rule.rule


def test_keys_create_takes_project_and_scopes_and_list_shows_them(app: Flask) -> None:
    project = f"cli-{uuid.uuid4().hex[:8]}"
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["keys", "create", "ci", "--project", project, "--scope", "jobs:read"]
    )
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200
    assert (
        client.post("/api/v1/jobs", json={"task": "tests.echo"}, headers=headers).status_code == 403
    )
    listed = runner.invoke(args=["keys", "list"]).output
    assert f"{token[:10]}...\tci\t{project}\tjobs:read\tactive" in listed
    refused = runner.invoke(args=["keys", "create", "x", "--scope", "jobs:delete"])
    assert refused.exit_code != 0 and "jobs:delete" in refused.output
