"""/api/v1/jobs: submit, inspect, list, cancel and retry jobs."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask import g
from flask import jsonify
from flask import request
from flask.views import MethodView
from werkzeug.exceptions import Conflict
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import UnprocessableEntity

from app.api import access
from app.api import auth
from app.api import waiting
from app.api.schemas import MAX_WAIT_SECONDS
from app.api.schemas import JobBatchAcceptedSchema
from app.api.schemas import JobBatchSchema
from app.api.schemas import JobGetQuerySchema
from app.api.schemas import JobListQuerySchema
from app.api.schemas import JobPageSchema
from app.api.schemas import JobSchema
from app.api.schemas import JobSubmitSchema
from app.api.submitting import Accepted
from app.api.submitting import accepted
from app.api.submitting import broker_timeout
from app.api.submitting import celery
from app.api.submitting import job_location
from app.extensions import ext_notify
from app.extensions.ext_database import reads_only
from app.models import Job
from app.models import JobState
from app.models.base import new_id
from app.services import bulk_submit
from app.services import jobs
from app.services.bulk_submit import BatchRefused
from app.services.errors import JobError
from app.services.jobs import InvalidArguments
from app.services.jobs import Submission
from app.services.mail import notifications
from config import current_settings

blp = auth.blueprint("jobs", __name__, url_prefix="/api/v1/jobs", description="Background jobs")
SUBMIT_REFUSALS = {
    409: "Idempotency key reused with other arguments",
    422: "Unknown task, invalid arguments or notify address",
}
BATCH_REFUSALS = {
    409: "An item's idempotency key was used for another job",
    422: "An item names an unknown task or invalid arguments",
}
FINISHED_WITHIN_WAIT = "With `Prefer: wait=N`: the job ended within the wait (its outcome)"
PREFER_WAIT = {
    "in": "header",
    "name": "Prefer",
    "required": False,
    "schema": {"type": "string"},
    "description": (
        "RFC 7240. `wait=N`: answer once the job ended, waiting at most N seconds (capped at "
        f"{MAX_WAIT_SECONDS}; `Preference-Applied` says what was applied); other preferences "
        "are ignored"
    ),
}
ITEM_REFUSALS = {404: "No such job", 422: "`wait` is not a number of seconds from 0 to 60"}


@blp.route("")
class JobCollection(MethodView):
    @blp.answers(202, JobSchema, SUBMIT_REFUSALS, takes=JobSubmitSchema)
    @blp.alt_response(200, schema=JobSchema, description=FINISHED_WITHIN_WAIT)
    @blp.doc(parameters=[PREFER_WAIT])
    def post(self, body: dict[str, Any]) -> Accepted:
        """Submit a job; answers at once with the queued job.

        With `Prefer: wait=N` (RFC 7240) the answer waits up to N seconds (at most 60) for
        the job to end: 200 with the final job, or 202 with the job as it is then.
        """
        wait = waiting.preferred_wait(request.headers.getlist("Prefer"))
        if not wait:
            job, _created, headers = _submit(_submission(body))
            return job, 202, headers
        job_id = new_id()
        submission = _submission(body, job_id=job_id)
        # Followed before its message is published: its end cannot pass unheard.
        with ext_notify.hub().follow(job_id) as follower:
            job, created, headers = _submit(submission)
            headers["Preference-Applied"] = f"wait={wait}"
            reads_only()  # nothing writes from here on: the final read needs no transaction
            # A replayed submit waits for the earlier job, which someone else created.
            job = waiting.wait_new(follower, wait) if created else waiting.wait_final(job.id, wait)
        return job, 200 if job.state.terminal else 202, headers

    @blp.arguments(JobListQuerySchema, location="query")
    @blp.response(200, JobPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
        items, next_cursor = jobs.list_jobs(**query, project_id=access.project_filter())
        return {"items": items, "next_cursor": next_cursor}


def _submit(submission: Submission) -> tuple[Job, bool, dict[str, str]]:
    """Create and publish one job: the job, whether it is new, the 202's headers."""
    # `standalone`: one autocommitted INSERT, the job built from it (nothing read back).
    job, created = jobs.submit(
        celery(), submission, broker_timeout=broker_timeout(), standalone=True
    )
    headers = job_location(job)
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return job, created, headers


def _submission(body: dict[str, Any], job_id: str | None = None) -> Submission:
    """The checked request of one job (POST /jobs, or one item of a batch)."""
    settings = current_settings()
    countdown = body.get("countdown")
    if countdown is not None and countdown > settings.broker.task_max_countdown:
        raise InvalidArguments(
            f"countdown may be at most {settings.broker.task_max_countdown}s (TASK_MAX_COUNTDOWN)"
        )
    jobs.public_task(celery(), body["task"])
    return Submission(
        task=body["task"],
        args=body["args"],
        idempotency_key=body.get("idempotency_key"),
        countdown=countdown,
        priority=body.get("priority"),
        api_key_id=g.api_key_id,
        project_id=access.current().project_id,
        notify_to=body.get("notify"),
        job_id=job_id,
    )


@blp.route("/batch")
class JobBatch(MethodView):
    @blp.answers(202, JobBatchAcceptedSchema, BATCH_REFUSALS, takes=JobBatchSchema)
    def post(self, body: dict[str, Any]) -> tuple[Response, int]:
        """Submit up to 1,000 jobs at once: all of them, or none.

        The rows commit in one transaction and the messages go out in one publish. An
        item whose idempotency key names an earlier job with the same task and arguments
        answers with that job (`replayed: true`). Any refused item refuses the whole
        batch (409 or 422) and nothing is created; the problem's `errors.json.jobs` names
        each refused item by its index.
        """
        refused: dict[int, list[str]] = {}
        items: list[Submission] = []
        for index, item in enumerate(body["jobs"]):
            try:
                items.append(_submission(item))
            except JobError as exc:
                refused[index] = [str(exc)]
        try:
            if refused:
                raise BatchRefused(422, "Invalid jobs in the batch", refused)
            queued = bulk_submit.submit_batch(celery(), items, broker_timeout=broker_timeout())
        except BatchRefused as exc:
            raise _refusal(exc) from None
        # The items are JSON already, as JobBatchAcceptedSchema dumps them (a unit test
        # holds the two equal): marshmallow's dump of 1,000 items was 7 % of a batch.
        return jsonify({"jobs": bulk_submit.describe(queued)}), 202


def _refusal(exc: BatchRefused) -> HTTPException:
    refusal: HTTPException = Conflict() if exc.status == 409 else UnprocessableEntity()
    # The shape webargs gives validation errors, so a client reads both alike.
    refusal.data = {"messages": {"json": {"jobs": exc.errors}}}  # type: ignore[attr-defined]
    return refusal


@blp.route("/<id:job_id>")
class JobItem(MethodView):
    @blp.answers(200, JobSchema, ITEM_REFUSALS, takes=JobGetQuerySchema, location="query")
    def get(self, query: dict[str, Any], job_id: str) -> Job:
        """State, progress, result or error, attempts and timings of one job.

        With `?wait=SECONDS` the answer waits until the job is final, or the seconds passed.
        """
        seconds = query.get("wait")
        if seconds:
            return waiting.wait_final(job_id, seconds)
        return jobs.get(job_id)


@blp.route("/<id:job_id>/cancel")
class JobCancel(MethodView):
    @blp.answers(202, JobSchema, {409: "The job has already finished"})
    def post(self, job_id: str) -> Accepted:
        """Cancel: a queued job never runs; a running job is asked to stop."""
        job = jobs.cancel(job_id)
        if job.state == JobState.CANCELLED and job.notify_to:
            # Its outcome is final now: no worker will run it to send the mail.
            notifications.notify_job_finished(celery(), job, list(job.notify_to))
        return job, 202, {}


@blp.route("/<id:job_id>/retry")
class JobRetry(MethodView):
    @blp.answers(202, JobSchema, {409: "Only failed or cancelled jobs can be retried"})
    def post(self, job_id: str) -> Accepted:
        """Run a failed or cancelled job again as a new attempt."""
        return accepted(jobs.retry(celery(), job_id, broker_timeout=broker_timeout()))
