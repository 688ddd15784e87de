"""The Sentry `before_send` scrubber: secrets and document text never leave, the rest does."""

from __future__ import annotations

from typing import Any

from app.extensions.ext_sentry import _expected
from app.observability.scrubbing import FILTERED
from app.observability.scrubbing import make_before_send
from app.observability.scrubbing import secret_values
from app.tasking import ExpectedFailure
from app.tasking import JobCancelled
from config import Settings

SMTP_PASSWORD = "hunter2-smtp-password"
PROVIDER_KEY = "sk-live-provider-key-123"


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        MAIL_SMTP_PASSWORD=SMTP_PASSWORD,
        EMBEDDING_API_KEY=PROVIDER_KEY,
        SECRET_KEY="flask-cookie-secret",
    )


def event() -> dict[str, Any]:
    return {
        "event_id": "abc",
        "tags": {"job_id": "j-1", "queue": "dataset"},
        "request": {
            "url": "http://127.0.0.1/api/v1/jobs",
            "headers": {"Authorization": "Bearer tl_abcdefghijklmnop", "Accept": "*/*"},
            "data": {"args": {"text": "the whole confidential document"}},
        },
        "exception": {
            "values": [
                {
                    "type": "RuntimeError",
                    "value": f"provider said no to {PROVIDER_KEY}; smtp {SMTP_PASSWORD}",
                }
            ]
        },
        "extra": {"celery-job": {"kwargs": {"api_key": "k", "content": "document body"}}},
        "breadcrumbs": {
            "values": [
                {"message": "calling with Bearer abc.def-ghi"},
                # Celery's "Task received" log line, as a breadcrumb of the worker's main process.
                {
                    "category": "celery.worker.strategy",
                    "data": {"data": {"args": "()", "kwargs": "{'text': 'the whole document'}"}},
                },
            ]
        },
    }


def scrub(data: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any] | None:
    return make_before_send(settings(), drop=_expected)(data, hint or {})


def test_secret_settings_are_collected_by_name() -> None:
    values = secret_values(settings())
    assert {SMTP_PASSWORD, PROVIDER_KEY, "flask-cookie-secret"} <= set(values)
    assert "Tasklane <tasklane@localhost>" not in values  # MAIL_FROM is not a secret


def test_headers_keys_and_document_text_are_blanked() -> None:
    scrubbed = scrub(event())
    assert scrubbed is not None
    assert scrubbed["request"]["headers"]["Authorization"] == FILTERED
    assert scrubbed["request"]["headers"]["Accept"] == "*/*"
    assert scrubbed["request"]["data"]["args"]["text"] == FILTERED
    kwargs = scrubbed["extra"]["celery-job"]["kwargs"]
    assert kwargs == {"api_key": FILTERED, "content": FILTERED}


def test_arguments_printed_as_one_string_are_blanked_whole() -> None:
    scrubbed = scrub(event())
    assert scrubbed is not None
    logged = scrubbed["breadcrumbs"]["values"][1]["data"]["data"]
    assert logged == {"args": "()", "kwargs": FILTERED}


def test_configured_secrets_and_token_shapes_are_cut_out_of_strings() -> None:
    scrubbed = scrub(event())
    assert scrubbed is not None
    message = scrubbed["exception"]["values"][0]["value"]
    assert message == f"provider said no to {FILTERED}; smtp {FILTERED}"
    crumb = scrubbed["breadcrumbs"]["values"][0]["message"]
    assert crumb == f"calling with Bearer {FILTERED}"
    assert "tl_abcdefghijklmnop" not in repr(scrubbed)


def test_what_operators_need_is_kept() -> None:
    scrubbed = scrub(event())
    assert scrubbed is not None
    assert scrubbed["tags"] == {"job_id": "j-1", "queue": "dataset"}
    assert scrubbed["exception"]["values"][0]["type"] == "RuntimeError"
    assert scrubbed["request"]["url"] == "http://127.0.0.1/api/v1/jobs"


def test_expected_failures_are_dropped() -> None:
    for exc in (ExpectedFailure("bad input"), JobCancelled("cancelled")):
        assert scrub(event(), {"exc_info": (type(exc), exc, None)}) is None
    error = ValueError("bug")
    assert scrub(event(), {"exc_info": (ValueError, error, None)}) is not None
