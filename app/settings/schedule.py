"""Periodic-job schedules: seconds (`"90"`) or a five-field crontab line (`"0 6 * * *"`, UTC).

Checked here when settings load; app/beat.py turns the parts into Celery schedules.
"""

from __future__ import annotations


def schedule_parts(value: str) -> float | tuple[str, str, str, str, str]:
    """Positive seconds, or (minute, hour, day-of-month, month, day-of-week)."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(
                f"schedule {value!r} is neither a number of seconds nor a crontab line "
                "with five fields (minute hour day-of-month month day-of-week)"
            ) from None
        minute, hour, day_of_month, month, day_of_week = fields
        return minute, hour, day_of_month, month, day_of_week
    if seconds <= 0:
        raise ValueError(f"schedule {value!r} must be a positive number of seconds")
    return seconds


def check_schedule(value: str) -> str:
    schedule_parts(value)
    return value
