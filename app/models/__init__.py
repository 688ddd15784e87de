"""Typed SQLAlchemy 2.0 models; importing this package registers every table."""

from app.models.api_key import ApiKey
from app.models.job import TERMINAL_STATES
from app.models.job import Job
from app.models.job import JobState

__all__ = ["ApiKey", "Job", "JobState", "TERMINAL_STATES"]
