"""The one redactor: configured secrets at any depth, and credentials by their shape."""

from __future__ import annotations

import logging
import random
import re
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic import SecretStr

from app.observability import redaction
from app.settings.generation import ProviderSpec
from config import Settings

NESTED_KEY = "nested-provider-key-42"


# A field whose name says its value is secret, or that holds a URL that may carry one.
SECRET_NAME = re.compile(r"pass(word)?|secret|(^|_)key$|dsn|auth|(^|_)url$|backend", re.I)
# Named like one but public: where a link or the embedded endpoint points.
NOT_SECRET = {"trace_url", "sentry_url", "embedding_base_url", "base_url"}

SECRETS = {
    "SECRET_KEY": "flask-secret-value",
    "MAIL_SMTP_PASSWORD": "smtp-password-value",
    "DATABASE_URL": "postgresql://tasklane:db-password-value@db.internal/prod",
    "REDIS_URL": "redis://:redis-password-value@cache:6379/0",
    "CELERY_BROKER_URL": "amqp://u:broker-password-value@mq//",
    "CELERY_RESULT_BACKEND": "redis://backend-password-value@cache:6379/1",
    "EMBEDDING_API_KEY": "embedding-key-value",
    "SENTRY_DSN": "https://sentry-dsn-key@o1.ingest.sentry.io/2",
    "TRACE_LANGFUSE_PUBLIC_KEY": "pk-lf-public-value",
    "TRACE_LANGFUSE_SECRET_KEY": "sk-lf-secret-value",
    "FLOWER_BASIC_AUTH": "ops:flower-password-value",
}


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        **SECRETS,
        GENERATION_PROVIDERS={
            "acme": {"base_url": "http://acme/v1", "api_key": NESTED_KEY, "models": ["m"]}
        },
    )


def test_every_secret_setting_is_known_nested_ones_and_url_passwords_included() -> None:
    found = set(redaction.secret_values(settings()))
    expected = {value for name, value in SECRETS.items() if "URL" not in name} | {
        "db-password-value",
        "redis-password-value",
        "broker-password-value",
        NESTED_KEY,
    }
    assert expected <= found
    assert "http://acme/v1" not in found


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for name, field in model.model_fields.items():
        found.append((prefix + name, field.annotation))
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            found += _fields(field.annotation, prefix + name + ".")
    return found


def test_every_setting_named_like_a_secret_is_a_secret_str() -> None:
    """The redactor finds secrets by type: a secret declared as plain str would leak."""
    fields = _fields(Settings) + _fields(ProviderSpec, "generation.providers[].")
    secretish = [
        (path, annotation)
        for path, annotation in fields
        if SECRET_NAME.search(path.rsplit(".", 1)[-1]) and path.rsplit(".", 1)[-1] not in NOT_SECRET
    ]
    assert len(secretish) >= 12
    plain = [path for path, annotation in secretish if SecretStr not in _members(annotation)]
    assert plain == []


def _members(annotation: Any) -> set[Any]:
    return {annotation, *getattr(annotation, "__args__", ())}


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
        # One of each remaining shape and spelling: the one-scan pre-check must let them by.
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEhunter2pass\n-----END RSA PRIVATE KEY-----",
        "BEARER abc.def-ghi",
        "ACCESS_TOKEN: 'hunter2pass'",
        "Api-Key=hunter2pass",
        "PASSWD=hunter2pass",
        "client secret=hunter2pass",
        "amqp://u:hunter2pass@mq//",
        "pk-abcdefghijklmnop1234 and rk-abcdefghijklmnop1234",
        "ASIAABCDEFGHIJKLMNOP",
        "github_pat_abcdefghijklmnopqrstuvwxyz",
        "gho_abcdefghijklmnopqrstuvwxyz0123",
        "xoxb-1234567890-abcdefghijklmnop",
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


def test_log_extras_are_judged_whole_and_redacted_where_any_string_holds_a_secret() -> None:
    """Celery's task lines carry a dict of strings: a clean one is left as it is (one scan
    for all of them), one with a secret at any depth, or a key, is redacted throughout."""
    redaction.configure(settings())
    clean = {"id": "abc", "name": "system.canary", "args": ["1", {"k": "v"}], "runtime": 0.1}
    nested = {"id": "abc", "kwargs": {"inner": ["ok", "token smtp-password-value"]}}
    keyed = {"flask-secret-value": "x"}
    failed = {"exc": RuntimeError("boom")}
    records = []
    for data in (clean, nested, keyed, failed):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "done", None, None)
        record.data = data
        records.append(record)
    try:
        for record in records:
            assert redaction.RedactingFilter().filter(record)
    finally:
        redaction.configure(Settings(_env_file=None))  # type: ignore[call-arg]
    assert records[0].data is clean
    masked = f"token {redaction.FILTERED}"
    assert records[1].data == {"id": "abc", "kwargs": {"inner": ["ok", masked]}}
    assert records[2].data == {redaction.FILTERED: "x"}
    assert records[3].data == {"exc": "RuntimeError('boom')"}


def test_the_quick_shape_test_never_misses_what_the_shape_scan_finds() -> None:
    """`maybe_shaped` stands in for MAYBE_SHAPED on ASCII text: it may say yes more often,
    never less. Random lines built of the shapes' fragments in any case, and real shapes."""
    rng = random.Random(11)
    fragments = [
        "-----BEGIN", "Bearer ", "BASIC", "PassWord=", "passwd", "PWD", "Secret", "api_key",
        "API-Key", "apikey", "Access_Token", "access-token", "://", "sk-", "PK-", "rk-",
        "tl_", "AKIA", "asia", "AIza", "ya29.", "ghp_", "GHO_", "github_pat_", "xoxb-",
        "eyJ", "a", "b", "-", "_", " ", ".", ":", "/", "=", "k", "e", "y", "x", "o", "1",
    ]  # fmt: skip
    lines = ["".join(rng.choice(fragments) for _ in range(rng.randint(1, 12))) for _ in range(5000)]
    lines += [
        "ordinary words about a password-less login",
        "postgresql://u:pw@host/db",
        "token sk-abcdefghijklmnop",
        "Asian markets",
    ]
    for line in lines:
        assert redaction.maybe_shaped(line) or not redaction.MAYBE_SHAPED.search(line), line
    assert not redaction.maybe_shaped("Task system.canary[8f05e957] succeeded in 0.001s: None")
