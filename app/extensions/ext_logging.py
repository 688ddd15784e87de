"""Process-wide logging level and format from settings."""

from __future__ import annotations

import logging

from flask import Flask

from config import Settings


def init_app(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root.setLevel(settings.LOG_LEVEL)
    app.logger.setLevel(settings.LOG_LEVEL)
