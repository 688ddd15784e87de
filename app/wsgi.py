"""WSGI entry point for gunicorn: `gunicorn app.wsgi:application`."""

from app import create_app
from app.embedded_redis import ensure_for

application = create_app()
ensure_for(application)
