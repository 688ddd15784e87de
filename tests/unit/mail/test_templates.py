"""Mail templates render both parts; HTML is escaped, the text part is not."""

from __future__ import annotations

from typing import Any

import pytest

from app.services.mail import templates
from app.services.mail.errors import InvalidMailContext
from app.services.mail.errors import UnknownTemplate

JOB = {
    "id": "j1",
    "task": "<b>bold</b>",
    "state": "failed",
    "queue": "dataset",
    "attempts": 2,
    "finished_at": "2026-11-22T10:00:00Z",
    "error": {"type": "ValueError", "message": "x < y"},
}

CONTEXTS: dict[str, dict[str, Any]] = {
    "job_finished": {"job": JOB},
    "queue_alert": {
        "queue": "dataset",
        "waiting": 1500,
        "oldest_age_seconds": 1200.4,
        "max_waiting": 1000,
        "max_age_seconds": 900.0,
        "checked_at": "2026-11-22T10:00:00+00:00",
    },
    "daily_report": {
        "day": "2026-11-21",
        "since": "2026-11-21T06:00:00+00:00",
        "until": "2026-11-22T06:00:00+00:00",
        "queues": [{"queue": "mail", "finished": 3, "failed": 1, "p50": 0.2, "p95": 1.5}],
        "total": {"finished": 3, "failed": 1},
        "failures": [{"task": "mail.send", "error_type": "PermanentSendError", "count": 1}],
    },
}


def test_every_template_has_a_sample_context_here() -> None:
    assert templates.available() == sorted(CONTEXTS)


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_template_renders_subject_text_and_html(name: str) -> None:
    rendered = templates.render(name, CONTEXTS[name])
    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.text.strip() and not rendered.text.startswith("Subject:")
    assert rendered.html.lstrip().startswith("<!doctype html>")


def test_html_part_is_escaped_and_text_part_is_not() -> None:
    rendered = templates.render("job_finished", {"job": JOB})
    assert "&lt;b&gt;bold&lt;/b&gt;" in rendered.html and "x &lt; y" in rendered.html
    assert "<b>bold</b>" in rendered.text and "x < y" in rendered.text
    assert rendered.subject == "Tasklane job <b>bold</b> failed"


def test_daily_report_lists_queue_figures() -> None:
    rendered = templates.render("daily_report", CONTEXTS["daily_report"])
    assert "mail: 3 finished, 1 failed, run time p50 0.2 s, p95 1.5 s" in rendered.text
    assert "1 x mail.send: PermanentSendError" in rendered.text


def test_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(UnknownTemplate, match="job_finished"):
        templates.render("../config", {})


def test_missing_context_value_is_an_error_not_a_blank() -> None:
    with pytest.raises(InvalidMailContext, match="'job' is undefined"):
        templates.render("job_finished", {})


BATCH = {
    "id": "b1",
    "dataset_id": "d1",
    "total_documents": 3,
    "completed": 2,
    "failed": 1,
    "segments": 12,
    "finished_at": "2026-11-22T10:00:00+00:00",
    "errors": [{"name": "<x>.pdf", "error": "it could not be read"}],
}


def test_job_finished_with_a_batch_reports_the_upload_in_both_parts() -> None:
    rendered = templates.render("job_finished", {"job": JOB, "batch": BATCH})
    assert rendered.subject == "Tasklane upload of 3 documents finished: 2 completed, 1 failed"
    assert "Your upload batch b1 to dataset d1 finished." in rendered.text
    assert "Failed:    <x>.pdf: it could not be read" in rendered.text
    assert "Closed by job j1" in rendered.text
    assert "GET /api/v1/datasets/d1/batches/b1" in rendered.text
    assert "<code>&lt;x&gt;.pdf</code>: it could not be read" in rendered.html
    assert "<code>b1</code>" in rendered.html and "<code>j1</code>" in rendered.html
    one = templates.render("job_finished", {"job": JOB, "batch": {**BATCH, "total_documents": 1}})
    assert one.subject.startswith("Tasklane upload of 1 document finished")
