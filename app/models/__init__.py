"""Typed SQLAlchemy 2.0 models; importing this package registers every table."""

from app.models.api_key import ApiKey
from app.models.dataset import Dataset
from app.models.dataset import Document
from app.models.dataset import Segment
from app.models.dataset import UploadBatch
from app.models.generation import Generation
from app.models.job import TERMINAL_STATES
from app.models.job import Job
from app.models.job import JobAttempt
from app.models.job import JobState
from app.models.mail import Mail
from app.models.mail import MailSend
from app.models.trace import Trace

__all__ = [
    "TERMINAL_STATES",
    "ApiKey",
    "Dataset",
    "Document",
    "Generation",
    "Job",
    "JobAttempt",
    "JobState",
    "Mail",
    "MailSend",
    "Segment",
    "Trace",
    "UploadBatch",
]
