"""Periodic-job schedules: seconds (`"90"`) or a five-field crontab line (`"0 6 * * *"`, UTC).

Checked here when settings load; app/beat.py turns the parts into Celery schedules.
"""

from __future__ import annotations

CRONTAB_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def schedule_parts(value: str) -> float | dict[str, str]:
    """Positive seconds, or Celery `crontab` keyword arguments (minute, hour, ...)."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        fields = text.split()
        if len(fields) != len(CRONTAB_FIELDS):
            raise ValueError(
                f"schedule {value!r} is neither a number of seconds nor a crontab line "
                "with five fields (minute hour day-of-month month day-of-week)"
            ) from None
        return dict(zip(CRONTAB_FIELDS, fields, strict=True))
    if seconds <= 0:
        raise ValueError(f"schedule {value!r} must be a positive number of seconds")
    return seconds


def check_schedule(value: str) -> str:
    parts = schedule_parts(value)
    if isinstance(parts, dict):
        # Celery's own parser judges each field (minute 0-59, names of days...), so what
        # loads here is what beat accepts; imported only for a crontab line.
        from celery.schedules import crontab

        crontab(**parts)
    return value
