from __future__ import annotations

import pytest

from config import ConfigError
from config import Settings
from config import load_settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_give_the_embedded_stack() -> None:
    s = settings()
    assert s.database.url is None and s.broker.redis_url is None
    assert s.embedded_redis
    assert s.broker.visibility_timeout > s.broker.task_max_countdown + s.broker.task_time_limit


def test_bad_value_names_the_variable_and_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_SOFT_TIME_LIMIT", "soon")
    with pytest.raises(ConfigError) as excinfo:
        load_settings(_env_file=None)
    message = str(excinfo.value)
    assert "TASK_SOFT_TIME_LIMIT" in message
    assert "'soon'" in message
    assert "Fix the environment variables" in message


def test_production_has_no_default_secrets_or_servers() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(_env_file=None, TASKLANE_ENV="production")
    assert "SECRET_KEY" in str(excinfo.value)
    assert "DATABASE_URL" in str(excinfo.value)
    assert "REDIS_URL" in str(excinfo.value)
    ok = load_settings(
        _env_file=None,
        TASKLANE_ENV="production",
        SECRET_KEY="s",
        DATABASE_URL="postgresql://db/x",
        REDIS_URL="redis://r:6379/0",
    )
    assert ok.core.secret_key == "s"


def test_visibility_timeout_must_outlast_countdown_plus_run() -> None:
    with pytest.raises(ConfigError, match="BROKER_VISIBILITY_TIMEOUT"):
        load_settings(_env_file=None, BROKER_VISIBILITY_TIMEOUT=600, TASK_MAX_COUNTDOWN=3600)


def test_hard_limit_must_exceed_soft_limit() -> None:
    with pytest.raises(ConfigError, match="TASK_TIME_LIMIT"):
        load_settings(_env_file=None, TASK_SOFT_TIME_LIMIT=100, TASK_TIME_LIMIT=100)


def test_extra_task_modules_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLANE_EXTRA_TASK_MODULES", "a.tasks, b.tasks")
    assert load_settings(_env_file=None).core.extra_task_modules == ["a.tasks", "b.tasks"]
