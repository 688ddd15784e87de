"""The long-polls' pieces (app/api/waiting.py): RFC 7240 preferences, and the final read."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import text

from app.api import waiting
from app.api.schemas import MAX_WAIT_SECONDS
from app.extensions.ext_database import db


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        (["wait=5"], 5),
        (["respond-async, wait=10"], 10),
        (['wait="7"'], 7),
        (["WAIT = 3"], 3),
        (["handling=lenient", "wait=2; foo=bar"], 2),
        ([f"wait={MAX_WAIT_SECONDS * 10}"], MAX_WAIT_SECONDS),
        (["wait=0"], 0),
    ],
)
def test_a_wait_preference_is_read_as_rfc_7240_writes_it(headers: list[str], seconds: int) -> None:
    assert waiting.preferred_wait(headers) == seconds


@pytest.mark.parametrize(
    "headers",
    [[], [""], ["wait"], ["wait=-1"], ["wait=1.5"], ["wait=abc"], ["wait=١"], ["return=minimal"]],
)
def test_anything_else_is_no_wait(headers: list[str]) -> None:
    assert waiting.preferred_wait(headers) is None


def test_the_final_read_survives_a_connection_the_server_dropped(
    app: Flask, auth: dict[str, str]
) -> None:
    """A waiter reads on the ledger's engine, which does not ping a connection before use
    (PostgreSQL restarted, a proxy's idle timeout): the read runs once more on a new one."""
    client = app.test_client()
    body = {"task": "tests.echo", "args": {"value": 1}, "countdown": 3600}
    job_id = client.post("/api/v1/jobs", json=body, headers=auth).get_json()["id"]
    with app.app_context():
        engine = app.extensions["ledger_engine"]
        if engine.dialect.name != "postgresql":
            pytest.skip("PostgreSQL only: a server to drop the connection")
        assert waiting.load(job_id) is not None  # its connection is now in the pool
        db.session.rollback()
        # As a restart would: every other connection to the database, the pool's included.
        with db.engine.connect() as other:
            dropped = other.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        assert dropped

        job = waiting.load(job_id)

        assert job is not None and job.id == job_id
        db.session.rollback()
    client.post(f"/api/v1/jobs/{job_id}/cancel", headers=auth)
