"""The generation lane: LLM providers and the retry policy of a generation.

A provider entry is validated here, when settings load, so a bad entry stops start-up; the
provider code (app/services/generation/providers/) builds its clients from these specs.
"""

from __future__ import annotations

import json
from typing import Annotated
from typing import Any

from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import SecretStr
from pydantic import ValidationError
from pydantic import field_validator

from app.settings.base import Concern
from app.settings.base import env

# The built-in provider's name; no configured provider may take it.
OFFLINE = "offline"


class ProviderSpec(BaseModel):
    """One OpenAI-compatible chat-completions endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    api_key: SecretStr | None = None
    # Empty means any model the endpoint accepts.
    models: tuple[str, ...] = ()
    # Whole-request deadline in seconds, enforced by the client (gevent ignores soft limits).
    timeout: float = Field(default=120.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, got {value!r}")
        return value.rstrip("/")


def validate_providers(raw: Any) -> dict[str, ProviderSpec]:
    """Check every entry (JSON text or a dict) into a spec, with one message per bad entry."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object of provider name -> settings")
    checked: dict[str, ProviderSpec] = {}
    for name, entry in raw.items():
        if name == OFFLINE:
            raise ValueError(f"provider name {OFFLINE!r} is reserved for the built-in provider")
        if isinstance(entry, ProviderSpec):
            checked[name] = entry
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"provider {name!r}: expected an object of settings")
        try:
            checked[name] = ProviderSpec.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(f"provider {name!r}: {problems}") from None
    return checked


Providers = Annotated[dict[str, ProviderSpec], BeforeValidator(validate_providers)]


class GenerationSettings(Concern):
    # LLM providers, JSON: name -> {base_url, api_key, models, timeout, connect_timeout}.
    providers: Providers = env("GENERATION_PROVIDERS", default_factory=dict)
    # Retries of a generation after 429, 5xx, connection errors and timeouts (at most 10).
    max_retries: int = env("GENERATION_MAX_RETRIES", 4, ge=0, le=10)
    # Retry delay: base doubling per attempt, capped, full jitter; Retry-After wins when longer.
    retry_base_delay: float = env("GENERATION_RETRY_BASE_DELAY", 1.0, gt=0)
    retry_max_delay: float = env("GENERATION_RETRY_MAX_DELAY", 60.0, gt=0)
    # Least seconds between two writes of a streaming generation's text so far to Redis,
    # where GET /generations/{id} reads it while the job runs.
    progress_interval: float = env("GENERATION_PROGRESS_INTERVAL", 0.2, ge=0.01, le=1.0)
    # Least seconds between two database writes of a streaming generation (its text and
    # its job's progress); a stream shorter than this writes its row once, at the end.
    db_write_interval: float = env("GENERATION_DB_WRITE_INTERVAL", 3.0, ge=0.01, le=60.0)
