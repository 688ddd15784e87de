from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy import update

from app.extensions.ext_database import db
from app.models import ApiKey
from app.models.base import utcnow
from app.services import api_keys


def test_only_a_digest_of_the_key_is_stored(app: Flask) -> None:
    with app.app_context():
        key, token = api_keys.create("digest")
        stored = db.session.scalar(select(ApiKey).where(ApiKey.id == key.id))
        assert stored is not None
        assert token not in (stored.key_hash, stored.prefix)
        assert stored.key_hash == api_keys.digest(token)
        assert api_keys.authenticate(token) is not None
        assert api_keys.authenticate(token + "x") is None


def test_cli_creates_a_key_that_authenticates(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["keys", "create", "from-cli"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    assert token.startswith(api_keys.TOKEN_PREFIX)
    with app.app_context():
        assert api_keys.authenticate(token) is not None


def test_cli_revoke_of_unknown_prefix_says_what_to_do(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["keys", "revoke", "tl_missing"])
    assert result.exit_code != 0
    assert "flask keys list" in result.output


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _revoke_elsewhere(app: Flask, key_id: int) -> None:
    """As another API process or `flask keys revoke` on another host would: only the row."""
    with app.app_context():
        db.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
        db.session.commit()


def test_a_key_revoked_elsewhere_is_refused_once_its_cache_entry_expires(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    monkeypatch.setattr(api_keys, "_clock", clock)
    with app.app_context():
        key, token = api_keys.create("cached")
        key_id = key.id
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    assert client.get("/api/v1/jobs?limit=1", headers=headers).status_code == 200

    _revoke_elsewhere(app, key_id)
    # Within the TTL this process still trusts what it looked up...
    clock.now += api_keys.CACHE_TTL - 0.5
    assert client.get("/api/v1/jobs?limit=1", headers=headers).status_code == 200
    # ...and refuses the key as soon as the TTL has passed.
    clock.now += 1.0
    response = client.get("/api/v1/jobs?limit=1", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.get_json()["detail"]


def test_a_key_revoked_in_this_process_is_refused_at_once(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_keys, "_clock", _Clock())
    with app.app_context():
        key, token = api_keys.create("revoked-here")
        prefix = key.prefix
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    assert client.get("/api/v1/jobs?limit=1", headers=headers).status_code == 200
    with app.app_context():
        assert api_keys.revoke(prefix) == 1
    assert client.get("/api/v1/jobs?limit=1", headers=headers).status_code == 401


def test_a_cached_key_costs_no_lookup_and_an_unknown_token_is_never_cached(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_keys, "_clock", _Clock())
    lookups: list[str] = []
    real = api_keys.authenticate

    def counted(token: str) -> ApiKey | None:
        lookups.append(token)
        return real(token)

    monkeypatch.setattr(api_keys, "authenticate", counted)
    with app.app_context():
        _key, token = api_keys.create("counted")
    client = app.test_client()
    for _ in range(3):
        client.get("/api/v1/jobs?limit=1", headers={"Authorization": f"Bearer {token}"})
        client.get("/api/v1/jobs?limit=1", headers={"Authorization": "Bearer tl_unknown"})
    assert lookups.count(token) == 1
    assert lookups.count("tl_unknown") == 3
