"""Observability: Sentry hooks, OpenTelemetry tracing and metrics, and what they share.

Extensions in `app/extensions/ext_sentry.py`, `ext_otel.py` and `ext_logging.py` wire these
modules in; every one of them is inert until its setting turns it on.
"""
