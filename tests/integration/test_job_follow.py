"""Following jobs on notifications: `/events`, `GET /jobs/{id}?wait=` and `Prefer: wait` on POST.

Real workers, the real Redis the ledger publishes on; a private redis-server where a test
takes the notifications away.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from app.api import job_events
from app.api import waiting
from app.extensions import ext_notify
from app.ledger import transitions
from app.models import Job
from app.models import JobState
from app.services import jobs as jobs_service
from tests.support.api import Api
from tests.support.api import sse_events
from tests.support.redis_control import RedisServer
from tests.support.waiting import wait_for


def _stream(api: Api, job_id: str, path: str = "/api/v1/jobs/{id}/events") -> TestResponse:
    response = api.client.get(path.format(id=job_id), headers=api.auth, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    return response


def _get(api: Api, job_id: str, query: str = "") -> tuple[int, dict[str, Any], float]:
    began = time.monotonic()
    response = api.client.get(f"/api/v1/jobs/{job_id}{query}", headers=api.auth)
    return response.status_code, dict(response.get_json()), time.monotonic() - began


def test_a_follower_sees_every_state_of_a_fast_job_in_order(api: Api) -> None:
    # Queued for a second, then a no-op that starts and succeeds within milliseconds: a
    # reader polling the row every 0.25 s would mostly skip `started`.
    job = api.submit("tests.echo", args={"value": "fast"}, countdown=1)

    events = sse_events(_stream(api, job["id"]))

    states = [data["state"] for name, data in events if name == "state"]
    assert states == ["queued", "started", "succeeded"]
    assert events[-1][0] == "end"
    assert events[-1][1]["result"] == {"value": "fast"}


def test_the_dashboard_live_view_follows_the_same_stream(app: Flask, api: Api) -> None:
    job = api.submit("tests.echo", args={"value": "dash"}, countdown=1)
    dashboard = app.test_client()
    page = dashboard.get("/dashboard/sign-in").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    token = api.auth["Authorization"].removeprefix("Bearer ")
    signed_in = dashboard.post(
        "/dashboard/sign-in", data={"api_key": token, "csrf_token": csrf.group(1)}
    )
    assert signed_in.status_code == 302

    response = dashboard.get(f"/dashboard/jobs/{job['id']}/events", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = sse_events(response)

    assert [d["state"] for n, d in events if n == "state"] == ["queued", "started", "succeeded"]


def test_progress_arrives_as_it_is_written(api: Api, markers: Path) -> None:
    job = api.submit("tests.steps", args={"count": 4, "interval": 0.2, "marker_dir": str(markers)})

    events = sse_events(_stream(api, job["id"]))

    progress = [data["progress"]["current"] for name, data in events if name == "progress"]
    assert progress == sorted(progress) and progress[-1] == 4
    assert len(progress) >= 3  # every step, not one sample per poll
    assert events[-1][1]["state"] == "succeeded"


def test_wait_returns_as_soon_as_the_job_is_final(api: Api, markers: Path) -> None:
    job = api.submit("tests.steps", args={"count": 5, "interval": 0.2, "marker_dir": str(markers)})

    status, body, took = _get(api, job["id"], "?wait=60")

    assert status == 200
    assert body["state"] == "succeeded" and body["result"] == {"steps": 5}
    assert took < 60  # it answered when the job ended, not when the wait was over


def test_wait_answers_after_the_wait_with_the_state_then(api: Api) -> None:
    job = api.submit("tests.echo", args={"value": "later"}, countdown=60)
    try:
        status, body, took = _get(api, job["id"], "?wait=1.5")

        assert status == 200
        assert body["state"] == "queued"
        assert took >= 1.5  # it did wait
    finally:
        api.post(f"/jobs/{job['id']}/cancel", expect=202)


def test_wait_ends_when_the_job_is_cancelled_meanwhile(api: Api) -> None:
    job = api.submit("tests.echo", args={"value": "cancel"}, countdown=60)
    answers: list[tuple[int, dict[str, Any], float]] = []
    waiter = threading.Thread(target=lambda: answers.append(_get(api, job["id"], "?wait=60")))
    waiter.start()
    hub: ext_notify.Hub = api.client.application.extensions["notify_hub"]
    wait_for(lambda: hub.followers() > 0, what="the long-poll to follow the job")

    api.post(f"/jobs/{job['id']}/cancel", expect=202)
    waiter.join()

    status, body, took = answers[0]
    assert status == 200 and body["state"] == "cancelled"
    assert took < 60


def test_a_stream_closes_at_its_limit_and_a_reconnect_starts_from_the_row(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stream holds a request slot for its whole life: past API_EVENTS_MAX_SECONDS the
    # server closes it (no `end`: the job is not over), and the reconnect's first event is
    # the job as it is then.
    settings = api.client.application.config["SETTINGS"]
    monkeypatch.setattr(settings.api, "events_max_seconds", 1.0)
    job = api.submit("tests.echo", args={"value": "long"}, countdown=60)
    try:
        began = time.monotonic()
        events = sse_events(_stream(api, job["id"]))
        took = time.monotonic() - began

        assert [(name, data["state"]) for name, data in events] == [("state", "queued")]
        assert 1.0 <= took < 30
        api.post(f"/jobs/{job['id']}/cancel", expect=202)
        again = sse_events(_stream(api, job["id"]))
        assert [d["state"] for n, d in again if n == "state"] == ["cancelled"]
        assert again[-1][0] == "end"
    finally:
        api.client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=api.auth)


@pytest.mark.parametrize("value", ["-1", "61", "soon", "nan"])
def test_a_bad_wait_is_a_422_problem(api: Api, value: str) -> None:
    job = api.submit("tests.echo", args={"value": value})
    response = api.client.get(f"/api/v1/jobs/{job['id']}?wait={value}", headers=api.auth)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"


def test_wait_on_an_unknown_job_is_a_404(api: Api) -> None:
    status, body, _ = _get(api, "no-such-job", "?wait=5")
    assert status == 404 and body["status"] == 404


def _post_waiting(
    api: Api, prefer: str, **body: Any
) -> tuple[int, dict[str, Any], dict[str, str], float]:
    began = time.monotonic()
    response = api.client.post("/api/v1/jobs", json=body, headers={**api.auth, "Prefer": prefer})
    took = time.monotonic() - began
    return response.status_code, dict(response.get_json()), dict(response.headers), took


def test_a_submit_with_prefer_wait_answers_with_the_outcome(api: Api, markers: Path) -> None:
    args = {"count": 3, "interval": 0.2, "marker_dir": str(markers)}

    status, body, headers, took = _post_waiting(api, "wait=60", task="tests.steps", args=args)

    assert status == 200
    assert body["state"] == "succeeded" and body["result"] == {"steps": 3}
    assert headers["Preference-Applied"] == "wait=60"
    assert headers["Location"].endswith(f"/api/v1/jobs/{body['id']}")
    assert took < 60  # it answered when the job ended
    # The row is the one GET shows.
    assert api.client.get(headers["Location"], headers=api.auth).get_json() == body


def test_a_failed_job_is_an_outcome_too(api: Api) -> None:
    status, body, _, _ = _post_waiting(
        api, "respond-async, wait=60", task="tests.fail", args={"message": "no"}
    )

    assert status == 200
    assert body["state"] == "failed" and "no" in body["error"]["message"]


def test_a_submit_whose_wait_runs_out_is_a_202_with_the_job_then(api: Api) -> None:
    status, body, headers, took = _post_waiting(
        api, "wait=1", task="tests.echo", args={"value": "later"}, countdown=60
    )
    try:
        assert status == 202
        assert body["state"] == "queued"
        assert headers["Preference-Applied"] == "wait=1"
        assert took >= 1  # it did wait
    finally:
        api.post(f"/jobs/{body['id']}/cancel", expect=202)


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "return=minimal", "wait"])
def test_a_preference_not_understood_is_ignored(api: Api, prefer: str) -> None:
    """RFC 7240: the request is answered as without it (at once, 202, nothing applied)."""
    status, body, headers, _ = _post_waiting(
        api, prefer, task="tests.echo", args={"value": "x"}, countdown=60
    )
    try:
        assert status == 202 and body["state"] == "queued"
        assert "Preference-Applied" not in headers
    finally:
        api.post(f"/jobs/{body['id']}/cancel", expect=202)


def test_a_wait_over_the_limit_is_capped(api: Api) -> None:
    status, body, headers, _ = _post_waiting(
        api, "wait=3600", task="tests.echo", args={"value": "capped"}
    )

    assert status == 200 and body["result"] == {"value": "capped"}
    assert headers["Preference-Applied"] == "wait=60"


def test_a_replayed_submit_waits_for_the_earlier_job(api: Api) -> None:
    first = api.submit("tests.echo", args={"value": "once"}, idempotency_key="prefer-replay")

    status, body, headers, _ = _post_waiting(
        api, "wait=60", task="tests.echo", args={"value": "once"}, idempotency_key="prefer-replay"
    )

    assert status == 200 and body["id"] == first["id"] and body["state"] == "succeeded"
    assert headers["Idempotent-Replayed"] == "true"


def test_a_submit_that_waits_hears_a_job_that_ends_before_the_answer(
    app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job ends (and is announced) the moment it is published, before the view waits.

    Had the view followed the job only after publishing it, the announcement would pass
    unheard and the request would sit out its 60 s; following it first, it hears it.
    """
    hub: ext_notify.Hub = app.extensions["notify_hub"]
    real_publish = jobs_service.publish_after_commit

    def publish_then_finish(celery_app: Any, message: dict[str, Any], *, timeout: float) -> None:
        real_publish(celery_app, message, timeout=timeout)
        job_id = message["id"]
        with app.extensions["ledger_engine"].connect() as connection:
            query = select(Job.state).where(Job.id == job_id)
            wait_for(
                lambda: connection.scalar(query) == JobState.SUCCEEDED,
                what="the job to end before the view waits",
            )
        wait_for(lambda: hub.received >= 2, what="its notifications to arrive")

    monkeypatch.setattr(jobs_service, "publish_after_commit", publish_then_finish)
    with hub.follow("nobody"):  # the listener is up: its notifications reach this process
        wait_for(lambda: hub.live, what="the notification listener to subscribe")
    hub.received = 0

    status, body, _, took = _post_waiting(api, "wait=60", task="tests.echo", args={"value": "r"})

    assert status == 200 and body["state"] == "succeeded"
    assert took < 60


def test_a_change_before_the_follower_listened_is_read_from_the_row(
    app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job ends (and is announced) right after the follower's one read of the row.

    Had the follower read the row before it subscribed, the announcement would fall in
    between and the long-poll would sit out its 60 s; subscribed first, it hears it (this
    test failed with the two swapped).
    """
    job = api.submit("tests.echo", args={"value": "raced"}, countdown=60)
    hub: ext_notify.Hub = app.extensions["notify_hub"]
    real_state = waiting._state
    finished = threading.Event()

    def read_then_finish(job_id: str) -> Any:
        found = real_state(job_id)
        if not finished.is_set():
            finished.set()
            before = hub.received
            number = transitions.begin_attempt(
                job_id, task="tests.echo", queue="dataset", worker="test", args={}, max_attempts=1
            )
            assert number == 1
            assert transitions.record_success(job_id, {"value": "raced"}, number)
            wait_for(lambda: hub.received >= before + 2, what="the notifications to arrive")
        return found

    monkeypatch.setattr(waiting, "_state", read_then_finish)

    status, body, took = _get(api, job["id"], "?wait=60")

    assert status == 200 and body["state"] == "succeeded"
    assert took < 60


@pytest.fixture
def private_hub(app: Flask, tmp_path: Path) -> Iterator[tuple[ext_notify.Hub, RedisServer]]:
    """The API process's listener moved to a private redis-server the test may stop."""
    server = RedisServer(tmp_path / "notify-redis").start()
    hub = ext_notify.Hub(server.url)
    original = app.extensions["notify_hub"]
    app.extensions["notify_hub"] = hub
    try:
        yield hub, server
    finally:
        app.extensions["notify_hub"] = original
        hub.stop()
        server.close()


def test_a_redis_outage_falls_back_to_reading_the_ledger(
    api: Api, markers: Path, private_hub: tuple[ext_notify.Hub, RedisServer]
) -> None:
    hub, server = private_hub
    parked = api.submit("tests.echo", args={"value": "parked"}, countdown=60)
    follower = hub.follow(parked["id"])
    wait_for(lambda: hub.live, what="the listener to subscribe")
    server.stop()
    wait_for(lambda: not hub.live, what="the listener to notice the outage")
    follower.close()

    args = {"count": 3, "interval": 0.2, "marker_dir": str(markers)}
    waited = api.submit("tests.steps", args=args)
    status, body, took = _get(api, waited["id"], "?wait=60")
    assert status == 200 and body["state"] == "succeeded"
    assert took < 60

    streamed = api.submit("tests.steps", args=args)
    events = sse_events(_stream(api, streamed["id"]))
    assert events[0][0] == "state" and events[-1][0] == "end"
    assert events[-1][1]["state"] == "succeeded"

    server.start()
    wait_for(lambda: hub.follow(parked["id"]).close() or hub.live, what="the listener back")
    api.post(f"/jobs/{parked['id']}/cancel", expect=202)


def test_a_lost_notification_is_caught_up_by_a_quiet_stream(
    app: Flask, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job ends without a word on Redis (the PUBLISH lost): the quiet stream re-reads."""
    monkeypatch.setattr(job_events, "KEEPALIVE_INTERVAL", 0.2)
    monkeypatch.setattr(job_events, "QUIET_REREAD", 1.0)
    job = api.submit("tests.echo", args={"value": "silent"}, countdown=60)
    hub: ext_notify.Hub = app.extensions["notify_hub"]

    def finish_silently() -> None:
        wait_for(lambda: hub.followers() > 0 and hub.live, what="the stream to follow")
        with app.app_context():
            monkeypatch.delitem(app.extensions, "notify_redis")  # every PUBLISH is lost
            number = transitions.begin_attempt(
                job["id"],
                task="tests.echo",
                queue="dataset",
                worker="test",
                args={},
                max_attempts=1,
            )
            transitions.record_success(job["id"], {"value": "silent"}, number)

    finisher = threading.Thread(target=finish_silently)
    finisher.start()
    events = sse_events(_stream(api, job["id"]))
    finisher.join()

    assert events[0][1]["state"] == "queued"
    assert events[-1][0] == "end" and events[-1][1]["state"] == "succeeded"
