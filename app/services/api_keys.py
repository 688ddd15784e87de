"""Bearer API keys: random tokens, stored as SHA-256 digests, compared by digest."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import ApiKey
from app.models.base import utcnow

TOKEN_PREFIX = "tl_"


def digest(token: str) -> str:
    # Keys are 256-bit random tokens, so a fast digest is safe; no salt or KDF is needed.
    return hashlib.sha256(token.encode()).hexdigest()


def create(name: str) -> tuple[ApiKey, str]:
    """Create a key; the plain token is returned once and never stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(name=name, prefix=token[:10], key_hash=digest(token))
    db.session.add(key)
    db.session.commit()
    return key, token


def authenticate(token: str) -> ApiKey | None:
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(token)))
    if key is None or key.revoked_at is not None:
        return None
    return key


def revoke(prefix: str) -> int:
    """Revoke every active key whose prefix matches; returns how many were revoked."""
    keys = db.session.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    ).all()
    for key in keys:
        key.revoked_at = utcnow()
    db.session.commit()
    return len(keys)


def list_keys() -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).order_by(ApiKey.id)))
