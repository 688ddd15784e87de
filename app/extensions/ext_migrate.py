"""Alembic migrations through Flask-Migrate (`flask db upgrade`)."""

from __future__ import annotations

import os

from flask import Flask
from flask_migrate import Migrate

from app.extensions.ext_database import db

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "migrations")

migrate = Migrate()


def init_app(app: Flask) -> None:
    # render_as_batch lets Alembic alter SQLite tables by copying them.
    migrate.init_app(app, db, directory=os.path.abspath(MIGRATIONS_DIR), render_as_batch=True)
