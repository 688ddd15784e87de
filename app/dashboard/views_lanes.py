"""What each lane knows about its own work: documents, mails and generations, newest first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import render_template
from flask import request

from app.dashboard import queries
from app.dashboard.blueprint import bp
from app.services.errors import JobError

# A lane's page query: its rows from a cursor (None: the newest), and the next cursor.
PageQuery = Callable[[str | None], tuple[list[Any], str | None]]


def _lane_page(page: PageQuery, template: str) -> str | tuple[str, int]:
    """One page of a lane's rows from the `cursor` argument; a cursor that does not parse
    answers 400."""
    try:
        rows, next_cursor = page(request.args.get("cursor") or None)
    except JobError as exc:
        return render_template("dashboard/error.html", status=400, message=str(exc)), 400
    return render_template(template, rows=rows, next_cursor=next_cursor)


@bp.route("/datasets")
def datasets() -> str | tuple[str, int]:
    return _lane_page(queries.documents_page, "dashboard/datasets.html")


@bp.route("/mail")
def mail() -> str | tuple[str, int]:
    return _lane_page(queries.mails_page, "dashboard/mail.html")


@bp.route("/generations")
def generations() -> str | tuple[str, int]:
    return _lane_page(queries.generations_page, "dashboard/generations.html")
