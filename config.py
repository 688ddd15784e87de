"""Tasklane settings: one typed tree by concern, read once from the environment and `.env`.

`settings.database.url`, `settings.broker.task_time_limit`, `settings.mail.smtp_host`, ...:
each concern is a pure-pydantic model in the `app/settings/` package, composed here.
The environment variables keep their flat names (the README's configuration table): every
field names its variable, and a flat name, from the environment, `.env` or keyword
overrides (`Settings(DATABASE_URL=...)`, as the tests pass them), is routed into its concern.

Defaults give the embedded stack (SQLite file, the dev stack's Redis). In production every
secret and every server URL must be given explicitly. Secrets are `SecretStr`: read them
with `.get_secret_value()` where they are used, and nowhere else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError
from pydantic import model_validator
from pydantic_settings import BaseSettings
from pydantic_settings import EnvSettingsSource
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict

from app.settings import ApiSettings
from app.settings import BrokerSettings
from app.settings import CoreSettings
from app.settings import DashboardSettings
from app.settings import DatabaseSettings
from app.settings import DatasetSettings
from app.settings import GenerationSettings
from app.settings import LedgerSettings
from app.settings import MailSettings
from app.settings import ObservabilitySettings
from app.settings import OperationsSettings
from app.settings import TracingSettings
from app.settings import env_names

if TYPE_CHECKING:
    from flask import Flask


class ConfigError(ValueError):
    """Raised when the environment holds a setting Tasklane cannot start with."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    core: CoreSettings
    database: DatabaseSettings
    ledger: LedgerSettings
    broker: BrokerSettings
    api: ApiSettings
    operations: OperationsSettings
    mail: MailSettings
    dataset: DatasetSettings
    generation: GenerationSettings
    tracing: TracingSettings
    observability: ObservabilitySettings
    dashboard: DashboardSettings

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Overrides win over the environment, which wins over `.env`. The stock sources would
        # look for variables named after the concerns (`DATABASE`, `MAIL`...): not used.
        return (
            init_settings,
            _FlatNames(settings_cls, env_settings),
            _FlatNames(settings_cls, dotenv_settings),
        )

    @model_validator(mode="before")
    @classmethod
    def _route_flat_names(cls, data: Any) -> Any:
        return route(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _production_is_explicit(self) -> Settings:
        if self.core.environment == "production":
            missing = [
                name
                for name, value in (
                    ("SECRET_KEY", self.core.secret_key),
                    ("DATABASE_URL", self.database.url),
                )
                if not value
            ]
            if not (self.broker.redis_url or self.broker.broker_url):
                missing.append("REDIS_URL (or CELERY_BROKER_URL)")
            if missing:
                raise ValueError(
                    "production needs these set explicitly (no defaults): " + ", ".join(missing)
                )
        return self


# Environment variable name -> (concern, its field): the one list of flat names.
ROUTES: dict[str, tuple[str, str]] = {
    name: (concern, field)
    for concern, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
    for name, field in env_names(info.annotation).items()
}
ENV_NAMES = frozenset(ROUTES)


def route(data: dict[str, Any]) -> dict[str, Any]:
    """`{"DATABASE_URL": x}` -> `{"database": {"DATABASE_URL": x}}`; other keys are kept.

    A concern keeps its env names as keys (its fields accept them), so a validation error
    names the variable the operator set.
    """
    # Every concern is present (its defaults fill it in), so none needs a default of its own.
    routed: dict[str, Any] = {concern: {} for concern in Settings.model_fields}
    flat: list[tuple[str, Any]] = []
    for key, value in data.items():
        if str(key).upper() in ROUTES:
            flat.append((str(key).upper(), value))
        else:
            routed[key] = value
    for name, value in flat:
        concern = ROUTES[name][0]
        section = routed[concern]
        if isinstance(section, BaseModel):
            section = {field: getattr(section, field) for field in type(section).model_fields}
        routed[concern] = {**section, name: value}
    return routed


class _FlatNames(PydanticBaseSettingsSource):
    """The variables of `source` (the environment or `.env`) that name a setting."""

    def __init__(self, settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.source = source

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the variables directly

    def __call__(self) -> dict[str, Any]:
        if not isinstance(self.source, EnvSettingsSource):
            return {}
        found: dict[str, Any] = {}
        for key, value in self.source.env_vars.items():
            if value is not None and key.upper() in ROUTES:
                found[key.upper()] = value
        return found


def settings_of(app: Flask) -> Settings:
    """The settings `create_app` gave `app`, typed (Flask's config holds `Any`)."""
    settings: Settings = app.config["SETTINGS"]
    return settings


def current_settings() -> Settings:
    """The settings of the app in context."""
    from flask import current_app

    return settings_of(current_app)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment, turning validation errors into one clear message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            parts = [str(part) for part in error["loc"]]
            # ("broker", "TASK_TIME_LIMIT") -> the variable; a concern's own check keeps its
            # name (its message names the variables).
            if len(parts) > 1 and parts[0] in Settings.model_fields:
                parts = parts[1:]
            name = ".".join(parts) or "settings"
            value = error.get("input")
            shown = f" (got {value!r})" if not isinstance(value, dict) else ""
            lines.append(f"  {name}: {error['msg']}{shown}")
        raise ConfigError(
            "Tasklane cannot start, the configuration is invalid:\n"
            + "\n".join(lines)
            + "\nFix the environment variables (or .env) named above and start again."
        ) from None
