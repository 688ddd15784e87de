"""The base of every error a caller can act on; the API turns each into problem+json."""

from __future__ import annotations


class JobError(Exception):
    """`status` is the HTTP status that fits; `title` the problem's title."""

    status = 400
    title = "Bad request"
