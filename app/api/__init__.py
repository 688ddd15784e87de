"""REST API under /api/v1: blueprints and their registration."""

from __future__ import annotations

from flask import Flask

from app.api import jobs
from app.api import system


def register_blueprints(app: Flask) -> None:
    api = app.extensions["api"]
    for blueprint in (system.blp, jobs.blp):
        api.register_blueprint(blueprint)
