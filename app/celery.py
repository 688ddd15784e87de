"""Worker and beat entry point: `celery -A app.celery worker ...` finds `celery` here."""

import gc

from app import create_app
from config import ConfigError

try:
    flask_app = create_app()
except ConfigError as exc:
    # The message says what to set; a traceback through Celery's loader would bury it.
    raise SystemExit(f"tasklane: {exc}") from None
celery = flask_app.extensions["celery"]
# What is loaded by now lives as long as the process: keep it out of the collector, so the
# interpreter's last collection at exit does not walk it all (workers and beat took 10-40 s
# to exit on a busy machine) and prefork children do not copy those pages by touching them.
gc.freeze()
