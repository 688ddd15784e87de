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


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    """The cache's clock, moved by the test."""
    fake = _Clock()
    monkeypatch.setattr(api_keys, "_clock", fake)
    return fake


def _status(app: Flask, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return app.test_client().get("/api/v1/jobs?limit=1", headers=headers).status_code


def _new_key(app: Flask, name: str) -> tuple[int, str, str]:
    """A fresh key: its id, prefix and token."""
    with app.app_context():
        key, token = api_keys.create(name)
        return key.id, key.prefix, token


def _revoke_elsewhere(app: Flask, key_id: int) -> None:
    """As another API process or `flask keys revoke` on another host would: only the row."""
    with app.app_context():
        db.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(revoked_at=utcnow()))
        db.session.commit()


def test_a_key_revoked_elsewhere_is_refused_once_its_cache_entry_expires(
    app: Flask, clock: _Clock
) -> None:
    key_id, _prefix, token = _new_key(app, "cached")
    assert _status(app, token) == 200

    _revoke_elsewhere(app, key_id)
    # Within the TTL this process still trusts what it looked up...
    clock.now += api_keys.CACHE_TTL - api_keys.CACHE_REFRESH_AHEAD - 0.5
    assert _status(app, token) == 200
    # ...and refuses the key once the TTL has passed (or, with traffic, a bit before:
    # a request in the entry's last second looks it up again).
    clock.now += api_keys.CACHE_REFRESH_AHEAD + 1.0
    response = app.test_client().get(
        "/api/v1/jobs?limit=1", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert "revoked" in response.get_json()["detail"]


def test_a_key_revoked_in_this_process_is_refused_at_once(app: Flask, clock: _Clock) -> None:
    _key_id, prefix, token = _new_key(app, "revoked-here")
    assert _status(app, token) == 200
    with app.app_context():
        assert api_keys.revoke(prefix) == 1
    assert _status(app, token) == 401


def test_a_cached_key_costs_no_lookup_and_an_unknown_token_is_never_cached(
    app: Flask, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    real = api_keys.authenticate

    def counted(token: str) -> ApiKey | None:
        lookups.append(token)
        return real(token)

    monkeypatch.setattr(api_keys, "authenticate", counted)
    _key_id, _prefix, token = _new_key(app, "counted")
    for _ in range(3):
        assert _status(app, token) == 200
        assert _status(app, "tl_unknown") == 401
    assert lookups.count(token) == 1
    assert lookups.count("tl_unknown") == 3


def test_in_its_second_half_one_request_refreshes_an_entry_and_the_others_use_it(
    app: Flask, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, _prefix, token = _new_key(app, "refresh-ahead")
    assert _status(app, token) == 200
    lookups: list[str] = []
    real = api_keys.authenticate

    def revoked_meanwhile(token: str) -> ApiKey | None:
        # While the refreshing request waits on the database, others arrive.
        lookups.append(token)
        if len(lookups) == 1:
            assert _status(app, token) == 200  # served from the entry, no second lookup
        return real(token)

    monkeypatch.setattr(api_keys, "authenticate", revoked_meanwhile)
    _revoke_elsewhere(app, key_id)
    clock.now += api_keys.CACHE_TTL - api_keys.CACHE_REFRESH_AHEAD / 2
    # The refreshing request finds the key revoked, and so does every request after it.
    assert _status(app, token) == 401
    assert _status(app, token) == 401
    assert lookups == [token, token]
