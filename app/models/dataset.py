"""Datasets for retrieval: uploaded documents, their processing state and their segments."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import JSON
from sqlalchemy import BigInteger
from sqlalchemy import Enum
from sqlalchemy import ForeignKey
from sqlalchemy import Index
from sqlalchemy import Integer
from sqlalchemy import LargeBinary
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy import case
from sqlalchemy import literal
from sqlalchemy import select
from sqlalchemy import type_coerce
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import column_property
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import UTCDateTime

# Re-exported: tests/unit/dataset import it from here.
from app.models.base import new_id as new_id
from app.models.base import utcnow
from app.models.job import Job
from app.models.job import JobState


class IndexingStatus(enum.StrEnum):
    WAITING = "waiting"
    PARSING = "parsing"
    CLEANING = "cleaning"
    SPLITTING = "splitting"
    INDEXING = "indexing"
    COMPLETED = "completed"
    ERROR = "error"
    PAUSED = "paused"

    @property
    def settled(self) -> bool:
        """No job is working on a document in this state."""
        return self in (IndexingStatus.COMPLETED, IndexingStatus.ERROR, IndexingStatus.PAUSED)


def _status_enum() -> Enum:
    return Enum(
        IndexingStatus,
        native_enum=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
    )


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    # Characters per segment and characters shared by neighbouring segments.
    chunk_size: Mapped[int] = mapped_column(default=1000)
    chunk_overlap: Mapped[int] = mapped_column(default=100)
    # Whether segments get vectors from the configured embedding provider.
    embeddings_enabled: Mapped[bool] = mapped_column(default=True)
    # Bumped in the transaction that changes which segments retrieval sees (a swap, a
    # removal), so every process can tell its cached vector matrix is stale.
    index_version: Mapped[int] = mapped_column(default=0, server_default="0")
    api_key_id: Mapped[int | None]
    # The tenant; documents, batches and segments belong to it through the dataset.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class UploadBatch(Base):
    """The documents of one upload; closed once every one of them has settled."""

    __tablename__ = "dataset_batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Mailed (template job_finished) by the close job once every document has settled.
    notify_to: Mapped[list[str] | None] = mapped_column(JSON)


class Document(Base):
    __tablename__ = "dataset_documents"
    __table_args__ = (
        Index("ix_dataset_documents_dataset_id_created_at", "dataset_id", "created_at"),
        # Newest first across datasets, on the dashboard.
        Index("ix_dataset_documents_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    batch_id: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_batches.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    # Detected from the content, not the file name: txt, md, html, pdf, docx, csv.
    file_type: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))

    # The pipeline's own facts: the stage it is at (and resumes at after a pause), and how
    # its run ended (completed_at, paused_at, error). `indexing_status` below is derived
    # from them and the job's state; the document stores no status of its own.
    resume_stage: Mapped[str | None] = mapped_column(String(16))
    pause_requested: Mapped[bool] = mapped_column(default=False)
    removing: Mapped[bool] = mapped_column(default=False)
    job_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)

    word_count: Mapped[int | None]
    segment_count: Mapped[int | None]
    # Segments written so far by the indexing stage of the current run.
    segments_done: Mapped[int] = mapped_column(default=0)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    parsing_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cleaning_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    splitting_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    indexing_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Read-only, computed by the database on every load and usable in WHERE/GROUP BY.
    indexing_status: Mapped[IndexingStatus] = column_property(
        type_coerce(
            case(
                # How the pipeline's run ended, recorded by the pipeline itself.
                (error.isnot(None), literal(IndexingStatus.ERROR.value)),
                (
                    completed_at.isnot(None) & resume_stage.is_(None),
                    literal(IndexingStatus.COMPLETED.value),
                ),
                (paused_at.isnot(None), literal(IndexingStatus.PAUSED.value)),
                # Where the work is: the job's word. A job that ended without the pipeline
                # recording an outcome (killed, out of time, cancelled) leaves an error.
                (
                    select(Job.state)
                    .where(Job.id == job_id)
                    .scalar_subquery()
                    .in_([JobState.FAILED.value, JobState.CANCELLED.value]),
                    literal(IndexingStatus.ERROR.value),
                ),
                (
                    select(Job.state)
                    .where(Job.id == job_id)
                    .scalar_subquery()
                    .in_([JobState.STARTED.value, JobState.RETRYING.value])
                    & resume_stage.isnot(None),
                    resume_stage,
                ),
                else_=literal(IndexingStatus.WAITING.value),
            ),
            # The enum's type gives loaded values back as IndexingStatus.
            cast(Any, _status_enum()),
        )
    )


class Segment(Base):
    __tablename__ = "dataset_segments"
    __table_args__ = (
        # One row per position: a redelivered run can never add a second copy.
        UniqueConstraint("document_id", "position", name="uq_dataset_segments_document_position"),
        Index("ix_dataset_segments_dataset_id", "dataset_id"),
        # Never reuse a deleted segment's id (SQLite would): a reindex gets all-new ids,
        # as PostgreSQL's sequence gives anyway.
        {"sqlite_autoincrement": True},
    )

    # SQLite only autoincrements a plain INTEGER primary key.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    document_id: Mapped[str] = mapped_column(ForeignKey("dataset_documents.id", ondelete="CASCADE"))
    position: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    word_count: Mapped[int]
    # The text's stemmed terms, space-separated: what the database's full-text index
    # (SQLite FTS5, PostgreSQL tsvector) tokenises without a stemmer of its own, so both
    # stem exactly as the query analyser does (app/services/dataset/keywords.py).
    search_text: Mapped[str] = mapped_column(Text)
    # Unit-length vector from the embedding provider as little-endian float32, when one
    # is configured; the vector index (app/services/dataset/vector_index.py) reads it.
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Parts of the search indexes no model describes, being dialect-specific: SQLite's FTS5
# table (and its shadow tables; before migration j1 also sqlite-vec's), PostgreSQL's
# generated tsvector column and its GIN index. Alembic's autogenerate must neither add
# nor drop them.
SEARCH_INDEX_PREFIXES = ("dataset_segments_fts", "dataset_vectors_", "search_vector")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic `include_name` hook: False for the search index objects above."""
    if name is None:
        return True
    return not name.removeprefix("ix_dataset_segments_").startswith(SEARCH_INDEX_PREFIXES)
