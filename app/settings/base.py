"""What every concern's settings model shares: the environment variable names.

Each field names its variable with `validation_alias` (the names in the README's
configuration table), so `config.Settings` can route a flat `DATABASE_URL` from the
environment, `.env` or a test's overrides into `database.url`. A concern validates by either
name: the env name (routed input) or the field name (a nested dict built by hand).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import SecretStr


class Concern(BaseModel):
    model_config = ConfigDict(validate_by_alias=True, validate_by_name=True, extra="forbid")


def env(name: str, default: Any = None, **constraints: Any) -> Any:
    """A field read from the environment variable `name` (`default_factory` works too)."""
    if "default_factory" in constraints:
        return Field(validation_alias=name, **constraints)
    return Field(default, validation_alias=name, **constraints)


def env_names(concern: type[BaseModel]) -> dict[str, str]:
    """Environment variable name -> field name, for every field of `concern`."""
    return {
        str(field.validation_alias): name
        for name, field in concern.model_fields.items()
        if isinstance(field.validation_alias, str)
    }


def split_commas(value: Any) -> Any:
    """`"a, b"` from the environment -> `["a", "b"]`; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def reveal(secret: SecretStr | None) -> str | None:
    """A secret's value at the one place it is used (None stays None)."""
    return secret.get_secret_value() if secret is not None else None
