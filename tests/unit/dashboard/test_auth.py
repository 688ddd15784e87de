"""Sign-in with an API key, the session cookie, and CSRF on every action."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from app.services import api_keys
from tests.unit.dashboard.conftest import csrf_token


def test_pages_send_a_visitor_without_a_session_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/dashboard/jobs?state=failed")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/dashboard/sign-in?next=/dashboard/jobs")


def test_an_htmx_refresh_without_a_session_redirects_the_page(client: FlaskClient) -> None:
    response = client.get("/dashboard/live", headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"].startswith("/dashboard/sign-in")


def test_an_unknown_key_is_refused_with_what_to_do(client: FlaskClient) -> None:
    response = client.post(
        "/dashboard/sign-in", data={"api_key": "tl_nope", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 401
    assert "keys create" in response.get_data(as_text=True)


def test_sign_in_without_the_csrf_token_is_refused(client: FlaskClient, api_token: str) -> None:
    response = client.post("/dashboard/sign-in", data={"api_key": api_token})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert client.get("/dashboard/").status_code == 302


def test_the_session_holds_the_key_id_and_never_the_key(
    dashboard: FlaskClient, api_token: str
) -> None:
    cookie = dashboard.get_cookie("session")
    assert cookie is not None and api_token not in cookie.value
    assert dashboard.get("/dashboard/").status_code == 200


def test_revoking_the_key_signs_its_sessions_out(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        key, token = api_keys.create("dashboard-revoke")
        prefix = key.prefix
    client.post("/dashboard/sign-in", data={"api_key": token, "csrf_token": csrf_token(client)})
    assert client.get("/dashboard/jobs").status_code == 200
    with app.app_context():
        assert api_keys.revoke(prefix) == 1
    assert client.get("/dashboard/jobs").status_code == 302


def test_an_action_without_the_csrf_token_changes_nothing(dashboard: FlaskClient) -> None:
    response = dashboard.post("/dashboard/jobs/some-id/cancel")
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)


def test_sign_in_never_redirects_off_the_dashboard(client: FlaskClient, api_token: str) -> None:
    response = client.post(
        "/dashboard/sign-in",
        data={
            "api_key": api_token,
            "csrf_token": csrf_token(client),
            "next": "https://evil.example/dashboard",
        },
    )
    assert response.headers["Location"] == "/dashboard/"
