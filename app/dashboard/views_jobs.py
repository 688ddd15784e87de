"""Jobs, one job (live progress, cancel, retry) and failures grouped (retry a whole group)."""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from flask import Response
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from werkzeug.wrappers import Response as BaseResponse

from app import queues
from app.api.job_events import stream
from app.dashboard import queries
from app.dashboard.blueprint import bp
from app.dashboard.formatting import outside_link
from app.extensions.ext_database import db
from app.models import Job
from app.models import JobState
from app.services import jobs
from app.services.errors import JobError
from config import current_settings


class BadFilter(ValueError):
    """A filter value the jobs page cannot use; the message says which and why."""


def _celery() -> Any:
    return current_app.extensions["celery"]


def _broker_timeout() -> float:
    return float(current_settings().broker.submit_timeout)


def _when(name: str) -> datetime | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadFilter(f"{name}: {raw!r} is not a date and time like 2026-01-31T12:00") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _filters() -> queries.JobFilters:
    state = request.args.get("state", "").strip()
    queue = request.args.get("queue", "").strip()
    if state and state not in {s.value for s in JobState}:
        raise BadFilter(f"state: {state!r} is not one of {', '.join(s.value for s in JobState)}")
    if queue and queue not in queues.QUEUES:
        raise BadFilter(f"queue: {queue!r} is not one of {', '.join(queues.QUEUES)}")
    return queries.JobFilters(
        state=JobState(state) if state else None,
        queue=queue or None,
        task=request.args.get("task", "").strip() or None,
        since=_when("since"),
        until=_when("until"),
    )


def _task_names() -> list[str]:
    return sorted(name for name in _celery().tasks if not name.startswith("celery."))


@bp.route("/jobs")
def job_list() -> tuple[str, int]:
    """The ledger newest first, filtered by state, queue, task and time, one cursor page."""
    args = {k: v for k, v in request.args.items() if k != "cursor" and v}
    try:
        filters = _filters()
        rows, next_cursor = queries.jobs_page(filters, request.args.get("cursor") or None)
        error, status = None, 200
    except (BadFilter, JobError) as exc:
        rows, next_cursor, error, status = [], None, str(exc), 400
    return render_template(
        "dashboard/jobs.html",
        jobs=rows,
        next_cursor=next_cursor,
        args=args,
        states=[s.value for s in JobState],
        queue_names=list(queues.QUEUES),
        task_names=_task_names(),
        error=error,
    ), status


@bp.route("/jobs/<job_id>")
def job_detail(job_id: str) -> tuple[str, int]:
    job = db.session.get(Job, job_id)
    if job is None:
        message = f"No job with id {job_id!r}. Find it on the Jobs page."
        return render_template("dashboard/error.html", status=404, message=message), 404
    settings = current_settings()
    return render_template(
        "dashboard/job.html",
        job=job,
        attempts=queries.attempts(job),
        trace_url=outside_link(settings.dashboard.trace_url, job.trace_id),
        sentry_url=outside_link(settings.dashboard.sentry_url, job.sentry_event_id),
        queued_for=queries.age(job.created_at, job.started_at) if job.started_at else None,
        ran_for=queries.age(job.started_at, job.finished_at) if job.finished_at else None,
    ), 200


@bp.route("/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    """The API's Server-Sent Events stream, behind the dashboard's session sign-in.

    An EventSource cannot send a bearer header, so the page reads this route, which serves
    the very same stream (the same notification follower) as GET /api/v1/jobs/{id}/events.
    """
    return stream(job_id)


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
def job_cancel(job_id: str) -> BaseResponse:
    try:
        job = jobs.cancel(job_id)
        if job.state == JobState.CANCELLED:
            flash("Cancelled: the job will never run.", "ok")
        else:
            flash("Cancel requested: the job stops at its next progress report.", "ok")
    except JobError as exc:
        flash(str(exc), "error")
    return redirect(url_for("dashboard.job_detail", job_id=job_id))


@bp.route("/jobs/<job_id>/retry", methods=["POST"])
def job_retry(job_id: str) -> BaseResponse:
    try:
        jobs.retry(_celery(), job_id, broker_timeout=_broker_timeout())
        flash("Queued again as a new attempt.", "ok")
    except JobError as exc:
        flash(str(exc), "error")
    return redirect(url_for("dashboard.job_detail", job_id=job_id))


@bp.route("/failures")
def failures() -> str:
    return render_template(
        "dashboard/failures.html",
        groups=queries.failure_groups(),
        retry_limit=queries.RETRY_GROUP_LIMIT,
    )


@bp.route("/failures/retry", methods=["POST"])
def failures_retry() -> BaseResponse:
    """Retry the failed jobs of one (task, error type) group, newest first."""
    task = request.form.get("task", "")
    # An empty error type stands for a failure recorded without one.
    error_type = request.form.get("error_type") or None
    retried = 0
    for job_id in queries.failed_job_ids(task, error_type):
        try:
            jobs.retry(_celery(), job_id, broker_timeout=_broker_timeout())
            retried += 1
        except JobError:
            # Retried meanwhile by someone else: nothing to do for this one.
            continue
    flash(f"Retried {retried} failed {task} job(s) ({error_type or 'no error type'}).", "ok")
    return redirect(url_for("dashboard.failures"))
