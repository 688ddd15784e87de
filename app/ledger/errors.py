"""Errors that mean "the database did not answer", whoever raised them."""

from __future__ import annotations

import sqlite3

import psycopg
from sqlalchemy.exc import SQLAlchemyError

# SQLAlchemy's own, and the drivers' (plain SQL on the driver raises those directly).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, psycopg.Error, sqlite3.Error)


class TransitionRefused(Exception):
    """The job is not in a state the transition may start from; nothing was written."""
