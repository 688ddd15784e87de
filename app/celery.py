"""Worker and beat entry point: `celery -A app.celery worker ...` finds `celery` here."""

from app import create_app
from app.embedded_redis import ensure_for

flask_app = create_app()
ensure_for(flask_app)
celery = flask_app.extensions["celery"]
