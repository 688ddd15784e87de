"""/api/v1/jobs: submit, inspect, list, cancel and retry jobs."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask import g
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from app.api import access
from app.api.auth import require_api_key
from app.api.auth import require_json_body
from app.api.schemas import JobListQuerySchema
from app.api.schemas import JobPageSchema
from app.api.schemas import JobSchema
from app.api.schemas import JobSubmitSchema
from app.models import Job
from app.models import JobState
from app.services import jobs
from app.services.jobs import InvalidArguments
from app.services.jobs import Submission
from app.services.mail import notifications
from config import current_settings

blp = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Background jobs")
blp.before_request(require_api_key)
blp.before_request(require_json_body)


def _celery() -> Any:
    return current_app.extensions["celery"]


def _broker_timeout() -> float:
    return float(current_settings().broker.submit_timeout)


def _location(job: Job) -> dict[str, str]:
    return {"Location": url_for("jobs.JobItem", job_id=job.id)}


@blp.route("")
class JobCollection(MethodView):
    @blp.arguments(JobSubmitSchema)
    @blp.response(202, JobSchema)
    @blp.alt_response(409, description="Idempotency key reused with other arguments")
    @blp.alt_response(422, description="Unknown task, invalid arguments or notify address")
    @blp.alt_response(503, description="Database unreachable; nothing was created")
    def post(self, body: dict[str, Any]) -> tuple[Job, int, dict[str, str]]:
        """Submit a job; answers at once with the queued job."""
        settings = current_settings()
        countdown = body.get("countdown")
        longest = settings.broker.task_max_countdown
        if countdown is not None and countdown > longest:
            raise InvalidArguments(f"countdown may be at most {longest}s (TASK_MAX_COUNTDOWN)")
        jobs.public_task(_celery(), body["task"])
        job, created = jobs.submit(
            _celery(),
            Submission(
                task=body["task"],
                args=body["args"],
                idempotency_key=body.get("idempotency_key"),
                countdown=countdown,
                priority=body.get("priority"),
                api_key_id=g.api_key_id,
                notify_to=body.get("notify"),
            ),
            broker_timeout=_broker_timeout(),
        )
        headers = _location(job)
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return job, 202, headers

    @blp.arguments(JobListQuerySchema, location="query")
    @blp.response(200, JobPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
        items, next_cursor = jobs.list_jobs(**query, project_id=access.project_filter())
        return {"items": items, "next_cursor": next_cursor}


@blp.route("/<job_id>")
class JobItem(MethodView):
    @blp.response(200, JobSchema)
    @blp.alt_response(404, description="No such job")
    def get(self, job_id: str) -> Job:
        """State, progress, result or error, attempts and timings of one job."""
        return jobs.get(job_id)


@blp.route("/<job_id>/cancel")
class JobCancel(MethodView):
    @blp.response(202, JobSchema)
    @blp.alt_response(409, description="The job has already finished")
    def post(self, job_id: str) -> tuple[Job, int, dict[str, str]]:
        """Cancel: a queued job never runs; a running job is asked to stop."""
        job = jobs.cancel(job_id)
        if job.state == JobState.CANCELLED and job.notify_to:
            # Its outcome is final now: no worker will run it to send the mail.
            notifications.notify_job_finished(_celery(), job, list(job.notify_to))
        return job, 202, {}


@blp.route("/<job_id>/retry")
class JobRetry(MethodView):
    @blp.response(202, JobSchema)
    @blp.alt_response(409, description="Only failed or cancelled jobs can be retried")
    def post(self, job_id: str) -> tuple[Job, int, dict[str, str]]:
        """Run a failed or cancelled job again as a new attempt."""
        job = jobs.retry(_celery(), job_id, broker_timeout=_broker_timeout())
        return job, 202, _location(job)
