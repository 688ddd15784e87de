"""Bearer API keys: random tokens, stored as SHA-256 digests, compared by digest.

Each key belongs to a project and holds scopes (app.services.tenancy).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from app.extensions.ext_database import db
from app.models import ApiKey
from app.models import Project
from app.models.base import utcnow
from app.models.project import DEFAULT_PROJECT
from app.services import tenancy

TOKEN_PREFIX = "tl_"
# How long an API process trusts a key it looked up (app.api.auth): a key revoked by
# another process is refused at most this many seconds later. Every request would
# otherwise pay a pooled checkout, its pre-ping and a SELECT before doing anything.
CACHE_TTL = 5.0
# In the second half of its life an entry is refreshed by ONE request while the others
# keep using it; and a key not cached is looked up by one request while the others wait
# for it. Otherwise every request in flight at the expiry (or at start) looked it up.
CACHE_REFRESH_AHEAD = CACHE_TTL / 2
# Bounded: a flood of distinct valid keys cannot grow the process without limit.
CACHE_MAX_KEYS = 10_000
# Unknown or revoked tokens are never cached: a new key works at once, and a guesser
# gets no cheaper answer than before.
_clock: Callable[[], float] = time.monotonic


def digest(token: str) -> str:
    # Keys are 256-bit random tokens, so a fast digest is safe; no salt or KDF is needed.
    return hashlib.sha256(token.encode()).hexdigest()


def create(
    name: str, *, project: str = DEFAULT_PROJECT, scopes: Iterable[str] | None = None
) -> tuple[ApiKey, str]:
    """Create a key in `project` (created if missing); the plain token is returned once.

    Without `scopes` the key gets every scope but `admin`. ValueError names unknown scopes.
    """
    granted = tenancy.check_scopes(tenancy.DEFAULT_SCOPES if scopes is None else scopes)
    if not granted:
        raise ValueError("a key needs at least one scope")
    project_id = tenancy.project_named(project).id
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        prefix=token[:10],
        key_hash=digest(token),
        project_id=project_id,
        scopes=granted,
    )
    db.session.add(key)
    db.session.commit()
    return key, token


def authenticate(token: str) -> ApiKey | None:
    key = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(token)))
    if key is None or key.revoked_at is not None:
        return None
    _projects()[key.id] = key.project_id
    return key


@dataclass(frozen=True)
class KeyGrant:
    """What a request needs of its key; a plain value, safe to share across requests."""

    id: int
    project_id: int
    scopes: tuple[str, ...]


class _Entry:
    __slots__ = ("expires", "grant", "refreshing")

    def __init__(self, expires: float, grant: KeyGrant) -> None:
        self.expires = expires
        self.grant = grant
        self.refreshing = False


def authenticate_cached(token: str) -> KeyGrant | None:
    """`authenticate`, trusted for CACHE_TTL seconds per process; None if unknown/revoked."""
    cache: dict[str, _Entry] = current_app.extensions.setdefault("api_key_grants", {})
    hashed = digest(token)
    entry = cache.get(hashed)
    now = _clock()
    if entry is not None and now < entry.expires:
        if entry.refreshing or now < entry.expires - CACHE_REFRESH_AHEAD:
            return entry.grant
        entry.refreshing = True  # this request looks the key up again; the rest need not
        return _look_up(cache, hashed, token)
    with _lock_for(hashed):
        entry = cache.get(hashed)
        if entry is not None and _clock() < entry.expires:
            return entry.grant  # another request looked it up while this one waited
        return _look_up(cache, hashed, token)


def _look_up(cache: dict[str, _Entry], hashed: str, token: str) -> KeyGrant | None:
    started = _clock()
    key = authenticate(token)
    grant = None
    if key is not None:
        grant = KeyGrant(id=key.id, project_id=key.project_id, scopes=tuple(key.scopes))
    # The lookup opened a transaction on the request's session; end it now (after reading
    # the key: a rollback expires it), so the rest of the request starts clean.
    db.session.rollback()
    if grant is None:
        cache.pop(hashed, None)
        return None
    if len(cache) >= CACHE_MAX_KEYS:
        cache.clear()
    # From when the lookup started: a revocation it missed is seen within CACHE_TTL.
    cache[hashed] = _Entry(started + CACHE_TTL, grant)
    return grant


_locks: dict[str, threading.Lock] = {}


def _lock_for(hashed: str) -> threading.Lock:
    # A gevent worker patches threading, so waiting here yields to other requests.
    lock = _locks.get(hashed)
    if lock is None:
        if len(_locks) >= CACHE_MAX_KEYS:
            _locks.clear()
        lock = _locks.setdefault(hashed, threading.Lock())
    return lock


def forget_cached() -> None:
    """Drop this process's cached keys (after a revoke made here)."""
    current_app.extensions.pop("api_key_grants", None)


def _projects() -> dict[int, int]:
    # Per app (so per database): a test process may run apps on several databases.
    cache: dict[int, int] = current_app.extensions.setdefault("api_key_projects", {})
    return cache


def project_of(api_key_id: int | None) -> int | None:
    """The project of a key; cached in-process, since a key never changes project."""
    if api_key_id is None:
        return None
    cache = _projects()
    if api_key_id not in cache:
        project_id = db.session.scalar(select(ApiKey.project_id).where(ApiKey.id == api_key_id))
        if project_id is None:
            return None
        cache[api_key_id] = project_id
    return cache[api_key_id]


def revoke(prefix: str) -> int:
    """Revoke every active key whose prefix matches; returns how many were revoked."""
    keys = db.session.scalars(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
    ).all()
    for key in keys:
        key.revoked_at = utcnow()
    db.session.commit()
    # Other processes honour it within CACHE_TTL; this one at once.
    forget_cached()
    return len(keys)


def list_keys() -> list[tuple[ApiKey, str]]:
    """Every key with the name of its project."""
    query = select(ApiKey, Project.name).join(Project).order_by(ApiKey.id)
    return [(key, project) for key, project in db.session.execute(query)]
