"""What this process is (api, worker or beat) and which release of Tasklane it runs."""

from __future__ import annotations

import sys
import tomllib
from functools import cache
from pathlib import Path

from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool

ROOT = Path(__file__).resolve().parents[2]


def _started_by(program_name: str) -> bool:
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return program.name == program_name or program.parent.name == program_name


def initial_role(configured: str | None) -> str | None:
    """The role known at app creation: the configured one, else `api` for a server.

    None for `celery` processes, whose role (worker or beat) Celery's signals tell later,
    and for one-off `flask` commands (migrations, keys), which report nothing.
    """
    if configured:
        return configured
    if _started_by("celery") or _started_by("flask"):
        return None
    return "api"


def is_prefork(worker: object) -> bool:
    """Whether a Celery WorkController (from `worker_init`) runs tasks in forked children."""
    pool = get_implementation(getattr(worker, "pool_cls", "prefork"))
    return isinstance(pool, type) and issubclass(pool, PreforkPool)


@cache
def version() -> str:
    """The project version from pyproject.toml (the project is not installed as a package)."""
    try:
        with open(ROOT / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def release(configured: str | None) -> str:
    return configured or f"tasklane@{version()}"
