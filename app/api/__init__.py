"""REST API under /api/v1: blueprints and their registration."""

from __future__ import annotations

from flask import Flask

from app.api import answers
from app.api import datasets
from app.api import generations
from app.api import job_events
from app.api import jobs
from app.api import mail
from app.api import system
from app.api import traces


def register_blueprints(app: Flask) -> None:
    api = app.extensions["api"]
    for blueprint in (
        system.blp,
        jobs.blp,
        mail.blp,
        generations.blp,
        datasets.blp,
        traces.blp,
        job_events.blp,
        answers.blp,
    ):
        api.register_blueprint(blueprint)
