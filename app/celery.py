"""Worker and beat entry point: `celery -A app.celery worker ...` finds `celery` here."""

from app import create_app
from config import ConfigError

try:
    flask_app = create_app()
except ConfigError as exc:
    # The message says what to set; a traceback through Celery's loader would bury it.
    raise SystemExit(f"tasklane: {exc}") from None
celery = flask_app.extensions["celery"]
