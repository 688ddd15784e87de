"""What each lane knows about its own work: documents, mails and generations, newest first."""

from __future__ import annotations

from flask import render_template
from flask import request

from app.dashboard import queries
from app.dashboard.blueprint import bp
from app.services.errors import JobError


def _cursor() -> str | None:
    return request.args.get("cursor") or None


def _bad_cursor(exc: JobError) -> tuple[str, int]:
    return render_template("dashboard/error.html", status=400, message=str(exc)), 400


@bp.route("/datasets")
def datasets() -> str | tuple[str, int]:
    try:
        rows, next_cursor = queries.documents_page(_cursor())
    except JobError as exc:
        return _bad_cursor(exc)
    return render_template("dashboard/datasets.html", rows=rows, next_cursor=next_cursor)


@bp.route("/mail")
def mail() -> str | tuple[str, int]:
    try:
        rows, next_cursor = queries.mails_page(_cursor())
    except JobError as exc:
        return _bad_cursor(exc)
    return render_template("dashboard/mail.html", rows=rows, next_cursor=next_cursor)


@bp.route("/generations")
def generations() -> str | tuple[str, int]:
    try:
        rows, next_cursor = queries.generations_page(_cursor())
    except JobError as exc:
        return _bad_cursor(exc)
    return render_template("dashboard/generations.html", rows=rows, next_cursor=next_cursor)
