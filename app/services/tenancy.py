"""Projects and scopes: which rows a key sees and what it may do with them.

A key belongs to one project and holds scopes. Jobs and datasets carry their project;
generations, mails and traces belong to the project of the job they were made for, and a
dataset's documents, batches and segments to the dataset's. Rows of no project (system
jobs from beat, traces shipping) and every project's rows are seen by `admin` keys only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy import exists
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app.extensions.ext_database import db
from app.models import Dataset
from app.models import Document
from app.models import Job
from app.models import Mail
from app.models import Project
from app.models import Trace
from app.models import UploadBatch
from app.services.errors import JobError

ADMIN = "admin"
# Every scope a key can hold. `*:write` covers submit, cancel, retry, delete and the like;
# `admin` implies every other scope and sees across projects.
SCOPES = (
    "jobs:read",
    "jobs:write",
    "datasets:read",
    "datasets:write",
    "generations:read",
    "generations:write",
    "mail:read",
    "mail:write",
    "traces:read",
    ADMIN,
)
DEFAULT_SCOPES = tuple(scope for scope in SCOPES if scope != ADMIN)
MAX_PROJECT_NAME = 100


@dataclass(frozen=True)
class Principal:
    """Who is calling: the authenticated key, its project and its scopes."""

    api_key_id: int
    project_id: int
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.scopes

    def allows(self, scope: str) -> bool:
        return self.is_admin or scope in self.scopes

    @property
    def project_filter(self) -> int | None:
        """The project to restrict queries to; None (no restriction) for an admin key."""
        return None if self.is_admin else self.project_id


class MissingScope(JobError):
    status = 403
    title = "Missing scope"


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """Known scopes in declaration order, without repeats; ValueError names unknown ones."""
    wanted = set(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    return [scope for scope in SCOPES if scope in wanted]


def project_named(name: str) -> Project:
    """The project called `name`, created if it does not exist yet."""
    if not 1 <= len(name) <= MAX_PROJECT_NAME or name != name.strip():
        raise ValueError(
            f"a project name is 1 to {MAX_PROJECT_NAME} characters without surrounding spaces"
        )
    project = db.session.scalar(select(Project).where(Project.name == name))
    if project is not None:
        return project
    project = Project(name=name)
    db.session.add(project)
    try:
        db.session.commit()
    except IntegrityError:
        # Created concurrently by another command; use that one.
        db.session.rollback()
        return db.session.scalars(select(Project).where(Project.name == name)).one()
    return project


# Session.info key: rows an ownership check read for the view that follows (_keep).
KEPT_ROWS = "tasklane.kept_rows"


# Row ids are at most 36 characters and never hold NUL (which PostgreSQL would refuse):
# such an id names nothing, so it is not worth a query.
def _plausible(row_id: str) -> bool:
    return len(row_id) <= 36 and "\x00" not in row_id


def owns_job(job_id: str, project_id: int) -> bool:
    return _plausible(job_id) and bool(
        db.session.scalar(select(exists().where(Job.id == job_id, Job.project_id == project_id)))
    )


def owns_job_read(job_id: str, project_id: int) -> bool:
    """owns_job for a request that reads the job next: the row itself with its attempts,
    in one statement, so the view's own read is answered by the session's identity map.

    Not for a write: its statements change the row, and this copy would then be stale.
    """
    if not _plausible(job_id):
        return False
    job = db.session.get(Job, job_id, options=[joinedload(Job.attempt_rows)])
    _keep(job)
    return job is not None and job.project_id == project_id


def _keep(row: object | None) -> None:
    """Hold `row` for the rest of the session: its identity map holds rows weakly, and one
    nothing refers to is gone before the view asks for it (a second SELECT)."""
    if row is not None:
        db.session.info.setdefault(KEPT_ROWS, []).append(row)


def owns_dataset(dataset_id: str, project_id: int) -> bool:
    # The row itself, not EXISTS: the view looks the dataset up next, and the session's
    # identity map then answers without a second query.
    if not _plausible(dataset_id):
        return False
    dataset = db.session.get(Dataset, dataset_id)
    _keep(dataset)
    return dataset is not None and dataset.project_id == project_id


def owns_mail(mail_id: str, project_id: int) -> bool:
    """A mail belongs to the project of the job that sends it."""
    return _plausible(mail_id) and bool(
        db.session.scalar(
            select(
                exists().where(
                    Mail.id == mail_id, Mail.job_id == Job.id, Job.project_id == project_id
                )
            )
        )
    )


def visible_traces(query: Select[Any], project_id: int | None) -> Select[Any]:
    """Restrict a query of traces to those of the project's jobs (None: no restriction)."""
    if project_id is None:
        return query
    return query.join(Job, Job.id == Trace.job_id).where(Job.project_id == project_id)


def dataset_project(dataset_id: str) -> int | None:
    return db.session.scalar(select(Dataset.project_id).where(Dataset.id == dataset_id))


def document_project(document_id: str) -> int | None:
    """The project of a document's dataset: its jobs belong there, whoever started them."""
    return db.session.scalar(
        select(Dataset.project_id)
        .join(Document, Document.dataset_id == Dataset.id)
        .where(Document.id == document_id)
    )


def batch_project(batch_id: str) -> int | None:
    return db.session.scalar(
        select(Dataset.project_id)
        .join(UploadBatch, UploadBatch.dataset_id == Dataset.id)
        .where(UploadBatch.id == batch_id)
    )
