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
    # The ledger's own engine (app/extensions/ext_database.py), no overflow: its statements
    # are single round trips, and more connections than the server has cores to answer them
    # only queue inside PostgreSQL (POST /jobs at 64 clients, two API processes, 2 cores:
    # p99/p50 3.8 with 10 per process, 2.5 with 4, the same requests/s).
    ledger_pool_size: int = env("LEDGER_POOL_SIZE", 4, ge=1)
