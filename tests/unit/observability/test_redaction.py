"""The one redactor: configured secrets at any depth, and credentials by their shape."""

from __future__ import annotations

import logging

import pytest

from app.observability import redaction
from config import Settings

NESTED_KEY = "nested-provider-key-42"


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        SECRET_KEY="flask-secret-value",
        MAIL_SMTP_PASSWORD="smtp-password-value",
        DATABASE_URL="postgresql://tasklane:db-password-value@db.internal/prod",
        GENERATION_PROVIDERS={
            "acme": {"base_url": "http://acme/v1", "api_key": NESTED_KEY, "models": ["m"]}
        },
    )


def test_every_secret_setting_is_known_nested_ones_and_url_passwords_included() -> None:
    found = set(redaction.secret_values(settings()))
    assert {"flask-secret-value", "smtp-password-value", "db-password-value", NESTED_KEY} <= found
    assert "http://acme/v1" not in found


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abc.def-ghi",
        "basic dXNlcjpwYXNzd29yZA==",
        "redis://:hunter2pass@cache:6379/0",
        "dbname=x password=hunter2pass host=db",
        "key sk-proj-abcdefghijklmnop1234",
        "tl_abcdefghijklmnopqrst",
        "AKIAABCDEFGHIJKLMNOP",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "ya29.a0AfH6SMBabcdefghijklmnopqrst",
        "ghp_abcdefghijklmnopqrstuvwxyz0123",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ],
)
def test_credential_shapes_are_masked(text: str) -> None:
    masked = redaction.Redactor([]).text(text)
    assert redaction.FILTERED in masked
    for secret in (
        "abc.def-ghi",
        "hunter2pass",
        "abcdefghijklmnop",
        "ABCDEFGHIJKLMNOP",
        "SyA1234567890",
        "dozjgNryP4J3",
        "dXNlcjpwYXNzd29yZA",
    ):
        assert secret not in masked


def test_ordinary_text_is_left_alone() -> None:
    text = "max_tokens=200 took 3.2 s on task sk-short; see https://example.org/a?b=c"
    assert redaction.Redactor([]).text(text) == text


def test_redact_uses_the_configured_settings() -> None:
    redaction.configure(settings())
    try:
        assert NESTED_KEY not in redaction.redact(f"provider refused {NESTED_KEY}")
    finally:
        redaction.configure(Settings(_env_file=None))  # type: ignore[call-arg]


def test_log_records_leave_redacted_with_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    redaction.configure(settings())
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "failed: %s", ("smtp-password-value",), None
    )
    try:
        raise RuntimeError("connect to postgresql://u:db-password-value@h/d")
    except RuntimeError as exc:
        record.exc_info = (type(exc), exc, exc.__traceback__)
    record.data = {"traceback": "flask-secret-value"}
    try:
        assert redaction.RedactingFilter().filter(record)
        line = logging.Formatter("%(message)s %(data)s").format(record)
    finally:
        redaction.configure(Settings(_env_file=None))  # type: ignore[call-arg]
    assert "RuntimeError" in line
    for secret in ("smtp-password-value", "db-password-value", "flask-secret-value"):
        assert secret not in line
