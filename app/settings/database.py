"""SQL database: the URL and SQLAlchemy's connection pool."""

from __future__ import annotations

from pydantic import SecretStr

from app.settings.base import Concern
from app.settings.base import env


class DatabaseSettings(Concern):
    # None means the SQLite file `instance/tasklane.db`. Secret: it may carry a password.
    url: SecretStr | None = env("DATABASE_URL")
    pool_size: int = env("SQLALCHEMY_POOL_SIZE", 10, ge=1)
    max_overflow: int = env("SQLALCHEMY_MAX_OVERFLOW", 20, ge=0)
    pool_recycle: int = env("SQLALCHEMY_POOL_RECYCLE", 3600, ge=1)
