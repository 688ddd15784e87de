"""Migration i1_lane_state: the lanes' stored states go, what they knew stays (both dialects).

A document's status and a mail's state read after the upgrade (derived from the job and
the lane's own facts) are the ones stored before it, and the downgrade stores them again.
"""

from __future__ import annotations

from datetime import UTC
from datetime import datetime
from typing import Any

from flask_migrate import downgrade
from flask_migrate import upgrade
from sqlalchemy import bindparam
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.types import DateTime

from app import create_app
from app.extensions.ext_database import db
from app.models import Document
from app.models import Mail
from tests.conftest import make_settings
from tests.unit.test_migration_ledger import fresh_url  # noqa: F401  (a fixture)

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
_TIMES = ("t", "completed", "paused", "sent")

# id: (stored status, job state or None, resume_stage, completed_at set, error)
DOCUMENTS = {
    "d-waiting": ("waiting", "queued", None, False, None),
    "d-splitting": ("splitting", "started", "splitting", False, None),
    "d-completed": ("completed", "succeeded", None, True, None),
    # A reindex under way: the last run's completed_at must not make it `completed`.
    "d-reindexing": ("parsing", "started", "parsing", True, None),
    "d-error": ("error", "succeeded", None, False, "no text was found"),
    "d-paused": ("paused", "succeeded", "cleaning", False, None),
    "d-no-job": ("completed", None, None, True, None),
}
# id: (stored state, job state or None, sent, last log outcome)
MAILS = {
    "m-queued": ("queued", "queued", False, None),
    "m-sending": ("sending", "started", False, "handed_over"),
    "m-retrying": ("retrying", "retrying", False, "deferred"),
    "m-sent": ("sent", "succeeded", True, "accepted"),
    "m-failed": ("failed", "failed", False, "rejected"),
    # Left unconfirmed by the old code, with its log row still saying handed_over.
    "m-unconfirmed": ("unconfirmed", "failed", False, "handed_over"),
}


def _insert(statement: str, **values: Any) -> None:
    clause = text(statement).bindparams(
        *(bindparam(n, type_=DateTime(timezone=True)) for n in _TIMES if f":{n}" in statement)
    )
    db.session.execute(clause, values)


def _job(job_id: str, state: str) -> None:
    started = state != "queued"
    finished = state in ("succeeded", "failed")
    _insert(
        "INSERT INTO jobs (id, task, queue, state, args, attempts, max_attempts, project_id, "
        "created_at, updated_at, published_at, started_at, finished_at, lease_owner, "
        "lease_expires_at) VALUES (:id, 'tests.echo', 'dataset', :state, '{}', :attempts, 4, "
        f"(SELECT id FROM projects ORDER BY id LIMIT 1), :t, :t, :t, "
        f"{':t' if started else 'NULL'}, {':t' if finished else 'NULL'}, "
        f"{repr('w:1') if state == 'started' else 'NULL'}, "
        f"{':t' if state == 'started' else 'NULL'})",
        id=job_id,
        state=state,
        attempts=1 if started else 0,
        t=T0,
    )


def _seed() -> None:
    db.session.execute(
        text(
            "INSERT INTO projects (name, created_at) SELECT 'default', :t WHERE NOT EXISTS "
            "(SELECT 1 FROM projects)"
        ).bindparams(bindparam("t", type_=DateTime(timezone=True))),
        {"t": T0},
    )
    _insert(
        "INSERT INTO datasets (id, name, chunk_size, chunk_overlap, embeddings_enabled, "
        "index_version, project_id, created_at, updated_at) VALUES ('ds', 'ds', 500, 50, "
        "false, 0, (SELECT id FROM projects ORDER BY id LIMIT 1), :t, :t)",
        t=T0,
    )
    for doc_id, (status, job_state, stage, completed, error) in DOCUMENTS.items():
        job_id = f"job-{doc_id}" if job_state else None
        if job_state:
            _job(f"job-{doc_id}", job_state)
        _insert(
            "INSERT INTO dataset_documents (id, dataset_id, name, file_type, size, checksum, "
            "indexing_status, resume_stage, pause_requested, removing, job_id, error, "
            "segments_done, created_at, updated_at, completed_at) VALUES (:id, 'ds', :id, "
            "'txt', 1, 'c', :status, :stage, false, false, :job, :error, 0, :t, :t, "
            ":completed)",
            **{"id": doc_id, "status": status, "stage": stage, "job": job_id, "error": error},
            t=T0,
            completed=T0 if completed else None,
        )
    for mail_id, (state, job_state, sent, outcome) in MAILS.items():
        _job(f"job-{mail_id}", job_state)
        _insert(
            "INSERT INTO mails (id, template, recipients, context, subject, text_body, "
            "html_body, message_id, state, attempts, job_id, created_at, updated_at, sent_at) "
            "VALUES (:id, 'job_finished', '[]', '{}', 's', 't', 'h', :id, :state, 1, :job, "
            ":t, :t, :sent)",
            id=mail_id,
            state=state,
            job=f"job-{mail_id}",
            t=T0,
            sent=T0 if sent else None,
        )
        if outcome:
            _insert(
                "INSERT INTO mail_sends (mail_id, attempt, outcome, started_at) "
                "VALUES (:id, 1, :outcome, :t)",
                id=mail_id,
                outcome=outcome,
                t=T0,
            )
    db.session.commit()


def test_lane_states_read_the_same_after_the_upgrade_and_are_stored_again_by_the_downgrade(
    base_settings: dict[str, Any],
    fresh_url: str,  # noqa: F811
) -> None:
    app = create_app(make_settings(base_settings, DATABASE_URL=fresh_url))
    with app.app_context():
        upgrade(revision="t1_projects")
        _seed()

        upgrade(revision="i1_lane_state")

        shown = dict(db.session.execute(select(Document.id, Document.indexing_status)).all())
        assert {k: v.value for k, v in shown.items()} == {k: v[0] for k, v in DOCUMENTS.items()}
        mails = {m.id: (m.state.value, m.attempts) for m in db.session.scalars(select(Mail))}
        # Attempts are the job's now (a queued job has made none).
        assert mails == {k: (v[0], int(v[1] != "queued")) for k, v in MAILS.items()}
        db.session.rollback()

        downgrade(revision="t1_projects")

        stored = dict(
            db.session.execute(text("SELECT id, indexing_status FROM dataset_documents")).all()
        )
        assert stored == {k: v[0] for k, v in DOCUMENTS.items()}
        stored_mails = dict(db.session.execute(text("SELECT id, state FROM mails")).all())
        assert stored_mails == {k: v[0] for k, v in MAILS.items()}
        db.session.rollback()
