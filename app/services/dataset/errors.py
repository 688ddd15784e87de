"""Errors the dataset API answers with; each names what the caller can do about it."""

from __future__ import annotations

from app.services.errors import JobError


class DatasetNotFound(JobError):
    status = 404
    title = "Dataset not found"


class DocumentNotFound(JobError):
    status = 404
    title = "Document not found"


class BatchNotFound(JobError):
    status = 404
    title = "Batch not found"


class FileTooLarge(JobError):
    status = 413
    title = "File too large"


class UnsupportedFileType(JobError):
    status = 415
    title = "Unsupported file type"


class InvalidUpload(JobError):
    status = 400
    title = "Invalid upload"


class InvalidDatasetSettings(JobError):
    status = 422
    title = "Invalid dataset settings"


class DocumentBusy(JobError):
    status = 409
    title = "Document is not in a state that allows this"


class RetrievalUnavailable(JobError):
    status = 422
    title = "Retrieval mode unavailable"


class NoIndexableTerms(JobError):
    status = 422
    title = "Query has no indexable term"


class DocumentFailed(Exception):
    """Processing stopped for a reason in the document itself; the message says what to do."""
