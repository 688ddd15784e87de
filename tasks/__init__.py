"""Celery tasks, one module per queue or concern. Tasks are thin: ids in, one service call."""
