"""A generation's row as the worker reads and writes it: one statement each, no ORM session.

A run reads its row once and writes it once at the end (and every
GENERATION_DB_WRITE_INTERVAL seconds of a long stream). The statements run on the ledger's
engine: autocommitted, no pre-ping, a dropped connection retried once (app/ledger/execute.py),
so each is a single round trip. The text so far lives in Redis while streaming (`live_*`),
written every GENERATION_PROGRESS_INTERVAL, where the API reads it while the job runs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from typing import cast

import redis
from psycopg.types.json import Json
from sqlalchemy import Table
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.engine import Engine

from app.ledger.execute import is_postgres
from app.ledger.execute import run
from app.ledger.execute import run_sql
from app.models.base import utcnow
from app.models.generation import Generation

log = logging.getLogger(__name__)

# The live text outlives a stalled stream long enough to be read, then goes by itself.
LIVE_TTL_SECONDS = 600

_COLUMNS = (
    "provider",
    "model",
    "messages",
    "parameters",
    "text",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "usage_estimated",
    "latency_ms",
    "first_token_ms",
    "error",
)
# What a run writes at its end; `messages` only when the run composed them (answers).
_OUTCOME = _COLUMNS[4:]


@dataclass(frozen=True)
class Facts:
    """The domain facts of one generation: what was asked, and what came back."""

    id: str
    provider: str
    model: str
    messages: list[dict[str, Any]]
    parameters: dict[str, Any]
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    usage_estimated: bool = False
    latency_ms: float | None = None
    first_token_ms: float | None = None
    error: str | None = None

    @property
    def complete(self) -> bool:
        # An earlier attempt streamed the whole answer (its job's finish was then lost):
        # a run ends with its latency written, and with an error unless it completed.
        return self.latency_ms is not None and self.error is None

    def with_outcome(self, **values: Any) -> Facts:
        return replace(self, **values)


def _sync(durable: bool) -> str:
    return "on" if durable else "off"


# PostgreSQL: plain SQL on the driver. The `set_config` term makes the commit wait for the
# disk or not, as the ledger's own writes do (a partial write lost in a crash is rewritten).
_PG_SYNC = "set_config('synchronous_commit', %(sync)s, true) IS NOT NULL"
PG_LOAD = f"SELECT {', '.join(_COLUMNS)} FROM generations WHERE id = %(id)s"
PG_SAVE = (
    f"UPDATE generations SET {', '.join(f'{c} = %({c})s' for c in _OUTCOME)}, "
    "updated_at = %(now)s WHERE id = %(id)s AND " + _PG_SYNC
)
PG_SAVE_WITH_MESSAGES = PG_SAVE.replace(" SET ", " SET messages = %(messages)s, ", 1)
PG_PARTIAL = (
    "UPDATE generations SET text = %(text)s, completion_tokens = %(completion_tokens)s, "
    "updated_at = %(now)s WHERE id = %(id)s AND " + _PG_SYNC
)

# Elsewhere (SQLite in dev): the same through SQLAlchemy Core.
_table = cast(Table, Generation.__table__)
LOAD = select(*(_table.c[c] for c in _COLUMNS)).where(_table.c.id == bindparam("p_id"))


def _core_update(columns: tuple[str, ...]) -> Any:
    values: dict[str, Any] = {c: bindparam(f"p_{c}") for c in columns}
    values["updated_at"] = bindparam("p_now")
    return update(_table).where(_table.c.id == bindparam("p_id")).values(values)


SAVE = _core_update(_OUTCOME)
SAVE_WITH_MESSAGES = _core_update(("messages", *_OUTCOME))
PARTIAL = _core_update(("text", "completion_tokens"))


def load(engine: Engine, generation_id: str) -> Facts | None:
    if is_postgres(engine):
        row: Any = run_sql(engine, PG_LOAD, {"id": generation_id})
    else:
        row = run(engine, LOAD, {"p_id": generation_id})
    if row is None:
        return None
    values = dict(zip(_COLUMNS, tuple(row), strict=True))
    values["usage_estimated"] = bool(values["usage_estimated"])
    values["text"] = values["text"] or ""
    values["parameters"] = values["parameters"] or {}
    return Facts(id=generation_id, **values)


def save(engine: Engine, facts: Facts, *, messages: bool, durable: bool) -> None:
    """The run's outcome in one statement (with the composed messages of an answer)."""
    values = {c: getattr(facts, c) for c in _OUTCOME}
    if is_postgres(engine):
        params = {**values, "id": facts.id, "now": utcnow(), "sync": _sync(durable)}
        if messages:
            params["messages"] = Json(facts.messages)
        run_sql(engine, PG_SAVE_WITH_MESSAGES if messages else PG_SAVE, params)
        return
    params = {f"p_{c}": v for c, v in values.items()}
    params.update(p_id=facts.id, p_now=utcnow())
    if messages:
        params["p_messages"] = facts.messages
    run(engine, SAVE_WITH_MESSAGES if messages else SAVE, params)


def save_partial(engine: Engine, generation_id: str, text: str, tokens: int) -> None:
    """The text so far, for a reader after a crash: a long stream's periodic write."""
    if is_postgres(engine):
        params = {"id": generation_id, "text": text, "completion_tokens": tokens}
        run_sql(engine, PG_PARTIAL, {**params, "now": utcnow(), "sync": "off"})
        return
    run(
        engine,
        PARTIAL,
        {"p_id": generation_id, "p_text": text, "p_completion_tokens": tokens, "p_now": utcnow()},
    )


def _live_key(generation_id: str) -> str:
    return f"tasklane:generation:{generation_id}:live"


def live_write(client: redis.Redis, generation_id: str, text: str, tokens: int) -> bool:
    """The text so far in Redis: one command (a pipeline object alone costs more than it);
    False (logged) when Redis refused it.

    Best effort: the database gets the text at the end whatever Redis did.
    """
    value = json.dumps({"text": text, "completion_tokens": tokens})
    try:
        client.set(_live_key(generation_id), value, ex=LIVE_TTL_SECONDS)
    except redis.RedisError as exc:
        log.warning("could not store the live text of generation %s: %s", generation_id, exc)
        return False
    return True


def live_read(client: redis.Redis, generation_id: str) -> tuple[str, int] | None:
    """The text and token count a running generation last stored, if any."""
    try:
        found = client.get(_live_key(generation_id))
    except redis.RedisError as exc:
        log.warning("could not read the live text of generation %s: %s", generation_id, exc)
        return None
    if not isinstance(found, bytes | str):
        return None
    value = json.loads(found)
    return str(value["text"]), int(value["completion_tokens"])
