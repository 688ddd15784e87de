"""POST /api/v1/jobs/batch: one transaction, one producer, per-item keys, all or nothing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from kombu import Producer
from kombu.transport.redis import PublishBatch
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.api.schemas import JobBatchAcceptedSchema
from app.extensions.ext_database import db
from app.ledger import requests
from app.models import Job
from app.services import job_publishing
from app.services.bulk_submit import MAX_BATCH
from tests.conftest import app_without_broker

BATCH = "/api/v1/jobs/batch"


def _echo(value: Any, key: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"task": "tests.echo", "args": {"value": value}}
    if key is not None:
        item["idempotency_key"] = key
    return item


def _rows(app: Flask, ids: list[str]) -> dict[str, Job]:
    with app.app_context():
        found = db.session.scalars(select(Job).where(Job.id.in_(ids))).all()
        rows = {job.id: job for job in found}
        db.session.expunge_all()
        return rows


def _count_keys(app: Flask, keys: list[str]) -> int:
    with app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(Job).where(Job.idempotency_key.in_(keys))
        )
        db.session.rollback()
        return int(count or 0)


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int, Any]]]:
    """(job id, id of the producer, the kwargs) of every task message kombu published."""
    sent: list[tuple[str, int, Any]] = []
    real = Producer.publish

    def recording(producer: Producer, body: Any, **kwargs: Any) -> Any:
        answer = real(producer, body, **kwargs)
        headers = kwargs.get("headers") or {}
        if "task" in headers:
            sent.append((headers["id"], id(producer), body[1]))
        return answer

    monkeypatch.setattr(Producer, "publish", recording)
    yield sent


def test_a_batch_commits_every_row_and_publishes_all_on_one_producer(
    app: Flask, auth: dict[str, str], published: list[tuple[str, int, Any]]
) -> None:
    marker = uuid.uuid4().hex
    items = [_echo(f"{marker}-{i}") for i in range(25)]

    response = app.test_client().post(BATCH, json={"jobs": items}, headers=auth)

    assert response.status_code == 202, response.get_json()
    answered = response.get_json()["jobs"]
    assert [a["replayed"] for a in answered] == [False] * 25
    assert all(a["state"] == "queued" and a["queue"] == "dataset" for a in answered)
    ids = [a["id"] for a in answered]
    rows = _rows(app, ids)
    # In the order submitted, each row holding its own item's arguments.
    assert [rows[i].args["value"] for i in ids] == [f"{marker}-{i}" for i in range(25)]
    assert [job_id for job_id, _, _ in published] == ids
    assert len({producer for _, producer, _ in published}) == 1
    # Each message its own job's arguments (all but the first are copies of its message).
    assert [kwargs["value"] for _, _, kwargs in published] == [f"{marker}-{i}" for i in range(25)]


def test_one_refused_item_refuses_the_whole_batch_and_names_its_index(
    app: Flask, auth: dict[str, str], published: list[tuple[str, int, Any]]
) -> None:
    keys = [f"all-or-none-{uuid.uuid4().hex}-{i}" for i in range(3)]
    items = [_echo(1, keys[0]), _echo(2, keys[1]), _echo(3, keys[2])]
    items[1]["args"] = {"no_such_argument": 1}

    response = app.test_client().post(BATCH, json={"jobs": items}, headers=auth)

    assert response.status_code == 422, response.get_json()
    problem = response.get_json()
    assert response.content_type == "application/problem+json"
    assert list(problem["errors"]["json"]["jobs"]) == ["1"]
    assert "no_such_argument" in problem["errors"]["json"]["jobs"]["1"][0]
    assert _count_keys(app, keys) == 0
    assert published == []


def test_item_keys_replay_their_job_and_a_reused_key_refuses_the_batch(
    app: Flask, auth: dict[str, str]
) -> None:
    client = app.test_client()
    k1, k2, k3, k4 = (f"item-key-{uuid.uuid4().hex}-{i}" for i in range(4))
    first = client.post(BATCH, json={"jobs": [_echo(1, k1), _echo(2, k2)]}, headers=auth)
    assert first.status_code == 202, first.get_json()
    first_ids = [a["id"] for a in first.get_json()["jobs"]]

    again = client.post(BATCH, json={"jobs": [_echo(1, k1), _echo(3, k3)]}, headers=auth)
    assert again.status_code == 202, again.get_json()
    replay, fresh = again.get_json()["jobs"]
    assert (replay["id"], replay["replayed"]) == (first_ids[0], True)
    assert fresh["replayed"] is False and fresh["id"] not in first_ids

    # k2 named job 2's arguments: another request with it refuses the batch, k4 included.
    clash = client.post(BATCH, json={"jobs": [_echo(4, k4), _echo(99, k2)]}, headers=auth)
    assert clash.status_code == 409, clash.get_json()
    assert list(clash.get_json()["errors"]["json"]["jobs"]) == ["1"]
    assert _count_keys(app, [k1, k2, k3, k4]) == 3


def test_the_same_key_twice_in_one_batch_is_one_job_or_a_conflict(
    app: Flask, auth: dict[str, str]
) -> None:
    client = app.test_client()
    key, other = f"twice-{uuid.uuid4().hex}", f"twice-{uuid.uuid4().hex}"
    same = client.post(BATCH, json={"jobs": [_echo(1, key), _echo(1, key)]}, headers=auth)
    assert same.status_code == 202, same.get_json()
    one, two = same.get_json()["jobs"]
    assert one["id"] == two["id"] and (one["replayed"], two["replayed"]) == (False, True)
    assert _count_keys(app, [key]) == 1

    differ = client.post(BATCH, json={"jobs": [_echo(1, other), _echo(2, other)]}, headers=auth)
    assert differ.status_code == 409, differ.get_json()
    # The refusal names the job the key's first item would have been.
    [message] = differ.get_json()["errors"]["json"]["jobs"]["1"]
    assert "for job None" not in message and "with a different task" in message
    assert _count_keys(app, [other]) == 0


def test_a_batch_sent_again_whole_replays_every_item_and_writes_nothing(
    app: Flask, auth: dict[str, str]
) -> None:
    # What a client retrying a batch after a lost answer sends (found by the contract test:
    # an INSERT of no rows, a 500).
    client = app.test_client()
    keys = [f"resent-{uuid.uuid4().hex}-{i}" for i in range(2)]
    batch = {"jobs": [_echo(i, key) for i, key in enumerate(keys)]}
    first = client.post(BATCH, json=batch, headers=auth)
    assert first.status_code == 202, first.get_json()

    again = client.post(BATCH, json=batch, headers=auth)

    assert again.status_code == 202, again.get_json()
    assert [(a["id"], a["replayed"]) for a in again.get_json()["jobs"]] == [
        (a["id"], True) for a in first.get_json()["jobs"]
    ]
    assert _count_keys(app, keys) == 2


def test_a_batch_is_one_insert_and_touches_no_session(
    app: Flask, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    client.post(BATCH, json={"jobs": [_echo(0)]}, headers=auth)  # warm: key cache, pools
    statements: list[str] = []
    with app.app_context():
        engines = [db.engine, app.extensions["ledger_engine"]]

    request_thread = threading.get_ident()

    def of_the_request() -> bool:
        # The request's thread, and the one its INSERT runs in beside the publish; not the
        # process's relay and flusher, which run in threads of their own.
        here = threading.current_thread()
        return here.ident == request_thread or here.name == "tasklane-beside"

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if of_the_request():
            statements.append(statement.split()[0].upper())

    real = requests.run_sql

    def plain(engine: Any, sql: str, params: dict[str, Any]) -> Any:
        # Plain SQL on the driver (PostgreSQL's batch INSERT) fires no engine event.
        if of_the_request():
            statements.append(sql.split()[0].upper())
        return real(engine, sql, params)

    monkeypatch.setattr(requests, "run_sql", plain)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", on_execute)
    try:
        response = client.post(BATCH, json={"jobs": [_echo(i) for i in range(200)]}, headers=auth)
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", on_execute)
    assert response.status_code == 202
    # The confirmation flusher may add its bulk UPDATE; the request itself is one INSERT.
    assert [s for s in statements if s != "UPDATE"] == ["INSERT"], statements


def test_a_batch_larger_than_the_limit_is_refused_whole(app: Flask, auth: dict[str, str]) -> None:
    items = [_echo(i) for i in range(MAX_BATCH + 1)]
    response = app.test_client().post(BATCH, json={"jobs": items}, headers=auth)
    assert response.status_code == 422
    assert "jobs" in response.get_json()["errors"]["json"]


def test_no_message_leaves_when_the_rows_did_not_commit(
    app: Flask,
    auth: dict[str, str],
    published: list[tuple[str, int, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The INSERT runs beside the building of the messages; they are flushed only once it
    # committed. Here it fails, as a database going away would: its error reaches the
    # publish once every message is built, whenever the INSERT failed.
    def fails(*_args: Any) -> None:
        raise OperationalError("INSERT INTO jobs", {}, ConnectionError("server closed"))

    monkeypatch.setattr(requests, "create_rows", fails)
    # What kombu's Redis batch sends (its commands at each flush) and throws away.
    flushed: list[int] = []
    discarded: list[int] = []
    real_flush, real_discard = PublishBatch.flush, PublishBatch.discard

    def flush(batch: PublishBatch) -> None:
        flushed.append(batch._buffered)
        real_flush(batch)

    def discard(batch: PublishBatch) -> None:
        discarded.append(batch._buffered)
        real_discard(batch)

    monkeypatch.setattr(PublishBatch, "flush", flush)
    monkeypatch.setattr(PublishBatch, "discard", discard)
    marker = uuid.uuid4().hex
    keys = [f"{marker}-{i}" for i in range(5)]

    response = app.test_client().post(
        BATCH, json={"jobs": [_echo(i, key) for i, key in enumerate(keys)]}, headers=auth
    )

    assert response.status_code == 503, response.get_json()
    assert response.headers["Retry-After"]
    # All five were built (the first by Celery, four copies), none was sent.
    assert [job_id for job_id, _, _ in published] and len(published) == 5
    assert sum(flushed) == 0
    assert discarded == [5]
    assert _count_keys(app, keys) == 0


def test_with_the_broker_away_a_batch_is_accepted_and_left_to_the_relay(
    base_settings: dict[str, Any], app: Flask, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failed publish marks the broker down for this process; undone after the test.
    monkeypatch.setattr(job_publishing._BrokerState, "down_until", 0.0)
    # The intents stay: this app runs no relay of its own.
    down = app_without_broker(base_settings)
    try:
        response = down.test_client().post(
            BATCH, json={"jobs": [_echo(i) for i in range(5)]}, headers=auth
        )
        assert response.status_code == 202, response.get_json()
        ids = [a["id"] for a in response.get_json()["jobs"]]
        rows = _rows(app, ids)
        # Every row committed with its publish intent still open: the relay's to publish.
        assert sorted(rows) == sorted(ids)
        assert all(row.published_at is None for row in rows.values())
    finally:
        with down.app_context():
            db.engine.dispose()
        down.extensions["ledger_engine"].dispose()


def test_a_single_submit_with_a_used_key_replays_or_conflicts(
    app: Flask, auth: dict[str, str]
) -> None:
    # POST /jobs inserts first and looks up only on the clash (no SELECT for a new key).
    client = app.test_client()
    item = _echo(1, f"single-{uuid.uuid4().hex}")
    first = client.post("/api/v1/jobs", json=item, headers=auth)
    again = client.post("/api/v1/jobs", json=item, headers=auth)
    other = client.post("/api/v1/jobs", json={**item, "args": {"value": 2}}, headers=auth)

    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 409)
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count_keys(app, [item["idempotency_key"]]) == 1


def test_the_answer_is_what_its_schema_dumps(app: Flask, auth: dict[str, str]) -> None:
    # The view answers with JSON it builds itself (bulk_submit.describe), not through
    # marshmallow's dump: the two must not drift apart.
    key = f"answer-{uuid.uuid4().hex}"
    client = app.test_client()
    first = client.post(BATCH, json={"jobs": [_echo(1, key)]}, headers=auth)
    assert first.status_code == 202
    response = client.post(BATCH, json={"jobs": [_echo(2), _echo(1, key)]}, headers=auth)
    assert response.status_code == 202
    answered = response.get_json()["jobs"]
    assert [a["replayed"] for a in answered] == [False, True]

    as_values = [{**a, "created_at": datetime.fromisoformat(a["created_at"])} for a in answered]
    assert JobBatchAcceptedSchema().dump({"jobs": as_values})["jobs"] == answered
