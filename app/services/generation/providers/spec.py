"""What a configured provider is: validated at settings load, so a bad entry stops start-up."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import field_validator

OFFLINE = "offline"


class ProviderSpec(BaseModel):
    """One OpenAI-compatible chat-completions endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    api_key: str | None = None
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


def validate_providers(raw: Any) -> dict[str, dict[str, Any]]:
    """Check every entry (JSON text or a dict); returns them normalised, defaults filled in."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object of provider name -> settings")
    checked: dict[str, dict[str, Any]] = {}
    for name, entry in raw.items():
        if name == OFFLINE:
            raise ValueError(f"provider name {OFFLINE!r} is reserved for the built-in provider")
        if not isinstance(entry, dict):
            raise ValueError(f"provider {name!r}: expected an object of settings")
        try:
            checked[name] = ProviderSpec.model_validate(entry).model_dump()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise ValueError(f"provider {name!r}: {problems}") from None
    return checked
