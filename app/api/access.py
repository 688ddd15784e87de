"""Per-request authorisation: the key's scopes, and its project's rows only.

`authorize` runs right after the key is authenticated (app.api.auth.require_api_key), so
every endpoint is covered without code of its own:

- The scope an endpoint needs follows from its blueprint and method (GET reads, anything
  else writes); the few that do not fit are in OVERRIDES. An endpoint of a blueprint not
  listed needs `admin`, so a new blueprint is closed until it is declared here. A missing
  scope is a 403 that names it (it says nothing about any row).
- A resource named in the path (`job_id`, `dataset_id`, `mail_id`) must belong to the
  key's project, else the request ends in the very 404 a missing one gets, so a key cannot
  learn that another project's row exists. Rows under a dataset (documents, batches) are
  looked up within the dataset the path names, so checking the dataset covers them.
- Listings filter by `project_filter()` themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import g
from flask import request

from app.models import ApiKey
from app.services import tenancy
from app.services.api_keys import KeyGrant
from app.services.dataset.errors import DatasetNotFound
from app.services.errors import JobError
from app.services.generation.generations import GenerationNotFound
from app.services.jobs import JobNotFound
from app.services.mail.errors import MailNotFound
from app.services.tenancy import MissingScope
from app.services.tenancy import Principal

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Blueprint -> the area of its scopes; None: any valid key (health, readiness, queues show
# no project's rows).
AREAS: dict[str, str | None] = {
    "system": None,
    "jobs": "jobs",
    "job_events": "jobs",
    "datasets": "datasets",
    "dataset_answers": "datasets",
    "generations": "generations",
    "mail": "mail",
    "traces": "traces",
}
OVERRIDES: dict[str, tuple[str, ...]] = {
    # Retrieval only reads, though it is a POST.
    "datasets.Retrieve": ("datasets:read",),
    # An answer reads the dataset and submits a generation.
    "dataset_answers.DatasetAnswer": ("datasets:read", "generations:write"),
}

Owns = Callable[[str, int], bool]
NotFound = Callable[[str], JobError]


def _job_not_found(job_id: str) -> JobError:
    return JobNotFound(f"no job with id {job_id!r}")


def _dataset_not_found(dataset_id: str) -> JobError:
    return DatasetNotFound(f"no dataset with id {dataset_id!r}")


# (blueprint, path parameter) -> the ownership check, and the 404 the endpoint itself gives
# for a missing row (word for word: a test compares the two).
PATH_RESOURCES: dict[tuple[str, str], tuple[Owns, NotFound]] = {
    ("jobs", "job_id"): (tenancy.owns_job, _job_not_found),
    ("job_events", "job_id"): (tenancy.owns_job, _job_not_found),
    (
        "generations",
        "job_id",
    ): (
        tenancy.owns_job,
        lambda job_id: GenerationNotFound(f"no generation with job id {job_id!r}"),
    ),
    ("datasets", "dataset_id"): (tenancy.owns_dataset, _dataset_not_found),
    ("dataset_answers", "dataset_id"): (tenancy.owns_dataset, _dataset_not_found),
    ("mail", "mail_id"): (
        tenancy.owns_mail,
        lambda mail_id: MailNotFound(f"no mail with id {mail_id!r}"),
    ),
}


# A read of a job checks its ownership by reading the row the view then shows: one statement
# where EXISTS and the view's SELECT were two.
READ_CHECKS: dict[tuple[str, str], Owns] = {("jobs", "job_id"): tenancy.owns_job_read}


def required_scopes(endpoint: str, method: str) -> tuple[str, ...]:
    """The scopes a request to `endpoint` with `method` needs (all of them)."""
    if endpoint in OVERRIDES:
        return OVERRIDES[endpoint]
    blueprint = endpoint.rpartition(".")[0]
    if blueprint not in AREAS:
        return (tenancy.ADMIN,)
    area = AREAS[blueprint]
    if area is None:
        return ()
    scope = f"{area}:{'read' if method in READ_METHODS else 'write'}"
    return (scope,) if scope in tenancy.SCOPES else (tenancy.ADMIN,)


def authorize(key: ApiKey | KeyGrant) -> None:
    """Put the key's principal on `g`, then 403 on a missing scope, 404 on a foreign row."""
    principal = Principal(
        api_key_id=key.id, project_id=key.project_id, scopes=frozenset(key.scopes)
    )
    g.principal = principal
    g.api_key_id = key.id
    for scope in required_scopes(request.endpoint or "", request.method):
        if not principal.allows(scope):
            raise MissingScope(
                f"this API key lacks the scope {scope!r} that {request.method} "
                f"{request.path} needs; create a key with it: "
                f"flask keys create NAME --project P --scope {scope}"
            )
    if principal.is_admin:
        return
    blueprint = (request.endpoint or "").rpartition(".")[0]
    reading = request.method in READ_METHODS
    for name, value in (request.view_args or {}).items():
        check = PATH_RESOURCES.get((blueprint, name))
        if check is None:
            continue
        owns = READ_CHECKS.get((blueprint, name), check[0]) if reading else check[0]
        if not owns(str(value), principal.project_id):
            raise check[1](str(value))


def current() -> Principal:
    principal: Principal = g.principal
    return principal


def project_filter() -> int | None:
    """The project listings are restricted to; None for an admin key (every project)."""
    return current().project_filter
