"""/api/v1/health, /ready and /queues: is Tasklane up, and is every queue being served."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from app import queues
from app.api.auth import require_api_key
from app.api.schemas import QueuesSchema
from app.api.system_schemas import HealthSchema
from app.api.system_schemas import ReadySchema
from app.models.base import utcnow
from app.services.operations import queue_status
from app.services.operations import readiness
from config import current_settings

blp = Blueprint("system", __name__, url_prefix="/api/v1", description="Health and queues")


@blp.before_request
def _authenticate_all_but_health() -> None:
    if request.endpoint != "system.health":
        require_api_key()


@blp.route("/health")
@blp.doc(security=[])
@blp.response(200, HealthSchema)
def health() -> dict[str, str]:
    """The process is up (no dependencies are checked, no key is needed)."""
    return {"status": "ok"}


@blp.route("/ready")
@blp.response(200, ReadySchema)
@blp.alt_response(503, schema=ReadySchema, description="Not ready; the report says why")
def ready() -> tuple[dict[str, Any], int]:
    """Database, broker, and a canary job run through every declared queue; 503 if not."""
    settings = current_settings()
    report = readiness.check(
        current_app.extensions["celery"],
        inspect_timeout=settings.broker.inspect_timeout,
        canary_timeout=settings.api.ready_canary_timeout,
    )
    return report, 200 if report["ready"] else 503


@blp.route("/queues")
class Queues(MethodView):
    @blp.response(200, QueuesSchema)
    def get(self) -> dict[str, Any]:
        """Per queue: messages waiting, age of the oldest due job, consumers and their pools."""
        celery_app = current_app.extensions["celery"]
        timeout = current_settings().broker.inspect_timeout
        waiting = queue_status.waiting_counts(celery_app)
        found = queue_status.consumers(celery_app, timeout)
        oldest = queue_status.oldest_waiting()
        now = utcnow()
        rows = []
        for spec in queues.QUEUES.values():
            first = oldest.get(spec.name)
            rows.append(
                {
                    "name": spec.name,
                    "profile": spec.profile,
                    "pool": queues.PROFILES[spec.profile].pool,
                    "waiting": waiting.get(spec.name),
                    "oldest_waiting_age_seconds": (now - first).total_seconds() if first else None,
                    "consumers": len(found[spec.name]),
                    "workers": found[spec.name],
                }
            )
        return {"queues": rows}
