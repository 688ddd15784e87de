"""WSGI entry point for gunicorn: `gunicorn app.wsgi:application`."""

import sys

from app import create_app
from config import ConfigError

# gunicorn halts (instead of restarting the worker for ever) when a worker exits with 3.
WORKER_BOOT_ERROR = 3

try:
    application = create_app()
except ConfigError as exc:
    # The message says what to set; a traceback would bury it.
    print(f"tasklane: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(WORKER_BOOT_ERROR) from None
