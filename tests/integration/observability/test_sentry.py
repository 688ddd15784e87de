"""Sentry from real processes: events with job tags, ledger event ids, transactions, cron
check-ins, and no secret in any envelope. The DSN points at a local envelope receiver."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.observability import DOCUMENT_TEXT
from tests.support.observability import PROVIDER_KEY
from tests.support.observability import SMTP_PASSWORD
from tests.support.observability import Stack
from tests.support.observability import secrets
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

pytestmark = pytest.mark.integration


def _event_for(stack: Stack, job_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: next(
            (e for e in stack.sentry.events() if (e.get("tags") or {}).get("job_id") == job_id),
            None,
        ),
        timeout=30,
        what=f"a Sentry error event for job {job_id}",
    )


@pytest.mark.parametrize(
    ("task", "queue", "pool"),
    [("obs.boom", "dataset", "prefork"), ("obs.io_boom", "generation", "gevent")],
)
def test_failed_task_reports_an_event_tagged_with_its_job(
    observability_stack: Stack, task: str, queue: str, pool: str
) -> None:
    stack = observability_stack
    job_id = stack.submit(task, text=DOCUMENT_TEXT).body["id"]
    assert stack.wait(job_id)["state"] == "failed"

    event = _event_for(stack, job_id)

    tags = event["tags"]
    assert tags["queue"] == queue
    assert tags["task"] == task
    assert str(tags["attempt"]) == "1"
    assert tags["role"] == "worker"
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["environment"] == "observability-tests"
    assert event["release"].startswith("tasklane@")
    # The ledger row points at the event, so an operator gets from the job to Sentry.
    job = wait_for(
        lambda: (j := stack.job(job_id))["sentry_event_id"] and j,
        timeout=15,
        what=f"job {job_id} to record its Sentry event id ({pool})",
    )
    assert job["sentry_event_id"] == event["event_id"]
    # ...and the event names the job's OpenTelemetry trace.
    assert tags["trace_id"] == job["trace_id"]


def test_a_job_killed_at_its_hard_time_limit_is_reported_with_its_tags(
    observability_stack: Stack,
) -> None:
    stack = observability_stack
    # It ignores its soft limit, so only the hard limit (3 s) ends it: in the main process.
    job_id = stack.submit("tests.overrun", ignore_soft_limit=True).body["id"]
    job = stack.wait(job_id)
    assert (job["state"], job["error"]["type"]) == ("failed", "TimeLimitExceeded")

    event = _event_for(stack, job_id)

    assert (event["tags"]["task"], event["tags"]["queue"]) == ("tests.overrun", "dataset")
    assert str(event["tags"]["attempt"]) == "1"
    assert event["exception"]["values"][-1]["type"] == "TimeLimitExceeded"
    job = wait_for(
        lambda: (j := stack.job(job_id))["sentry_event_id"] and j,
        timeout=15,
        what=f"job {job_id} to record the event of its hard time limit",
    )
    assert job["sentry_event_id"] == event["event_id"]
    reported = [e for e in stack.sentry.events() if e.get("tags", {}).get("job_id") == job_id]
    assert len(reported) == 1


def test_expected_failure_is_recorded_but_not_reported(observability_stack: Stack) -> None:
    stack = observability_stack
    expected = stack.submit("tests.fail", message="bad input", expected=True).body["id"]
    assert stack.wait(expected)["state"] == "failed"
    # A real failure on the same worker afterwards: once its event is in, any event for the
    # expected failure (sent earlier by the same process) would be too.
    unexpected = stack.submit("obs.io_boom").body["id"]
    stack.wait(unexpected)
    _event_for(stack, unexpected)

    reported = [e for e in stack.sentry.events() if (e.get("tags") or {}).get("job_id") == expected]
    assert reported == []
    assert stack.job(expected)["sentry_event_id"] is None


def test_each_task_run_is_a_transaction(observability_stack: Stack) -> None:
    stack = observability_stack
    job_id = stack.submit("tests.echo", value=1).body["id"]
    assert stack.wait(job_id)["state"] == "succeeded"

    transaction = wait_for(
        lambda: next(
            (
                t
                for t in stack.sentry.transactions()
                if t.get("transaction") == "tests.echo"
                and (t.get("tags") or {}).get("job_id") == job_id
            ),
            None,
        ),
        timeout=30,
        what="a Sentry transaction for the tests.echo run",
    )
    assert transaction["contexts"]["trace"]["op"] == "queue.task.celery"
    assert transaction["tags"]["queue"] == "dataset"


def test_no_secret_leaves_in_any_envelope(observability_stack: Stack) -> None:
    stack = observability_stack
    # Failures whose messages carry the provider key and SMTP password, with document text
    # as an argument, submitted with the API key in the Authorization header.
    jobs = [
        stack.submit("obs.boom", text=DOCUMENT_TEXT).body["id"],
        stack.submit("obs.io_boom", text=DOCUMENT_TEXT).body["id"],
    ]
    events = [_event_for(stack, job_id) for job_id in jobs]
    wait_for(
        lambda: any(
            t.get("transaction", "").endswith("/api/v1/jobs")
            or t.get("transaction") == "jobs.JobCollection"
            for t in stack.sentry.transactions()
        ),
        timeout=30,
        what="the API's transaction for POST /api/v1/jobs",
    )

    raw = stack.sentry.raw()
    for secret in (stack.token, SMTP_PASSWORD, PROVIDER_KEY, DOCUMENT_TEXT):
        assert secret.encode() not in raw
    # The scrubber, not luck, removed them: the messages are still there, masked.
    messages = [e["exception"]["values"][-1]["value"] for e in events]
    assert all("[Filtered]" in message for message in messages), messages


def test_a_job_quoting_every_secret_setting_leaks_none(observability_stack: Stack) -> None:
    """Its ledger row (served and stored), the worker's log lines and the Sentry envelopes
    (raw bytes) hold no secret; the redactor, not luck, took them out."""
    stack = observability_stack
    job_id = stack.submit("obs.leak").body["id"]
    job = stack.wait(job_id)
    assert job["state"] == "failed"
    event = _event_for(stack, job_id)
    stored = stack.ledger_error(job_id)

    def worker_lines() -> str | None:
        log = stack.processes["cpu"].log()
        return log if job_id in log and "could not connect" in log else None

    worker_log = wait_for(worker_lines, timeout=30, what="the worker's log lines of the job")
    raw = stack.sentry.raw()
    for secret in secrets():
        assert secret not in job["error"]["message"]
        assert secret not in stored
        assert secret not in worker_log
        assert secret.encode() not in raw
    assert job["error"]["message"].count("[Filtered]") >= 5, job["error"]["message"]
    assert "[Filtered]" in event["exception"]["values"][-1]["value"]


def test_beat_jobs_report_cron_check_ins(
    observability_stack: Stack,
    observability_beat: WorkerProcess,
) -> None:
    stack = observability_stack

    def check_ins(slug: str, status: str) -> list[dict[str, Any]]:
        return [
            c
            for c in stack.sentry.check_ins()
            if c.get("monitor_slug") == slug and c.get("status") == status
        ]

    for slug, outcome in (("obs-cron-ok", "ok"), ("obs-cron-fail", "error")):
        finished = wait_for(
            lambda slug=slug, outcome=outcome: check_ins(slug, outcome),
            timeout=45,
            what=f"a {outcome} check-in for {slug} (beat log: {observability_beat.log_path})",
        )[0]
        started = check_ins(slug, "in_progress")
        assert [c["check_in_id"] for c in started] == [finished["check_in_id"]]
        assert started[0]["monitor_config"]["schedule"] == {
            "type": "interval",
            "value": 1,
            "unit": "minute",
        }
