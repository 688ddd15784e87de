from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import ApiKey
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
