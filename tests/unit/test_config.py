from __future__ import annotations

from pathlib import Path

import pytest

from config import ENV_NAMES
from config import ROUTES
from config import ConfigError
from config import Settings
from config import load_settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_give_the_embedded_stack() -> None:
    s = settings()
    assert s.database.url is None and s.broker.redis_url is None
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
    assert ok.core.secret_key is not None and ok.core.secret_key.get_secret_value() == "s"


def test_visibility_timeout_must_outlast_countdown_plus_run() -> None:
    with pytest.raises(ConfigError, match="BROKER_VISIBILITY_TIMEOUT"):
        load_settings(_env_file=None, BROKER_VISIBILITY_TIMEOUT=600, TASK_MAX_COUNTDOWN=3600)


def test_hard_limit_must_exceed_soft_limit() -> None:
    with pytest.raises(ConfigError, match="TASK_TIME_LIMIT"):
        load_settings(_env_file=None, TASK_SOFT_TIME_LIMIT=100, TASK_TIME_LIMIT=100)


def test_extra_task_modules_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKLANE_EXTRA_TASK_MODULES", "a.tasks, b.tasks")
    assert load_settings(_env_file=None).core.extra_task_modules == ["a.tasks", "b.tasks"]


def test_flat_names_from_the_environment_dotenv_and_overrides_reach_their_concern(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("MAIL_SMTP_HOST=smtp.from-dotenv\nAPI_PAGE_LIMIT=7\nDATASET_RRF_K=11\n")
    monkeypatch.setenv("api_page_limit", "8")  # names are case-insensitive, as before
    monkeypatch.setenv("DATASET_RRF_K", "12")
    s = Settings(_env_file=dotenv, DATASET_RRF_K=13)  # type: ignore[call-arg]
    # .env < environment < overrides.
    assert s.mail.smtp_host == "smtp.from-dotenv"
    assert s.api.page_limit == 8
    assert s.dataset.rrf_k == 13
    # A variable named after a concern is not a setting.
    monkeypatch.setenv("MAIL", '{"smtp_host": "nope"}')
    assert settings().mail.smtp_host is None


def test_a_nested_concern_and_flat_names_combine() -> None:
    s = settings(mail={"smtp_port": 2525}, MAIL_SMTP_HOST="smtp.local")
    assert (s.mail.smtp_host, s.mail.smtp_port) == ("smtp.local", 2525)


def test_every_field_has_its_own_env_name() -> None:
    fields = [
        (concern, name)
        for concern, info in Settings.model_fields.items()
        for name in info.annotation.model_fields  # type: ignore[union-attr]
    ]
    assert sorted(ROUTES.values()) == sorted(fields)
    assert len(ENV_NAMES) == len(fields) > 90


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    s = settings(SECRET_KEY="flask-secret-value", DATABASE_URL="postgresql://u:pw-value@h/d")
    assert "flask-secret-value" not in repr(s) and "pw-value" not in repr(s)
    assert s.database.url is not None
    assert s.database.url.get_secret_value() == "postgresql://u:pw-value@h/d"


def test_provider_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="GENERATION_PROVIDERS.*reserved"):
        load_settings(_env_file=None, GENERATION_PROVIDERS='{"offline": {"base_url": "http://x"}}')
