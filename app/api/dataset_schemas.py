"""Request and response schemas of the datasets API."""

from __future__ import annotations

from marshmallow import Schema
from marshmallow import fields
from marshmallow import validate

from app.api import paging
from app.api.model_schema import ModelSchema
from app.api.notify import Notify
from app.api.validation import StrictBoolean
from app.models.dataset import Dataset
from app.models.dataset import Document
from app.models.dataset import IndexingStatus
from app.services.dataset.retrieval import MODES

STATUSES = [status.value for status in IndexingStatus]


class DatasetCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(1, 200))
    description = fields.String(validate=validate.Length(max=2000))
    chunk_size = fields.Integer(
        strict=True,
        load_default=1000,
        validate=validate.Range(100, 20000),
        metadata={"description": "characters per segment"},
    )
    chunk_overlap = fields.Integer(
        strict=True,
        load_default=100,
        validate=validate.Range(0, 5000),
        metadata={"description": "characters neighbouring segments share"},
    )
    embeddings_enabled = StrictBoolean(load_default=True)


class DatasetSchema(ModelSchema):
    class Meta:
        model = Dataset
        exclude = ("api_key_id", "index_version")


class PageQuerySchema(Schema):
    limit = paging.limit_field()
    offset = paging.offset_field()


class DocumentListQuerySchema(PageQuerySchema):
    status = fields.String(validate=validate.OneOf(STATUSES))


class DatasetListSchema(Schema):
    items = fields.List(fields.Nested(DatasetSchema))


class TextSchema(Schema):
    name = fields.String(validate=validate.Length(1, 255))
    text = fields.String(required=True, validate=validate.Length(min=1))


class TextsSchema(Schema):
    documents = fields.List(
        fields.Nested(TextSchema), required=True, validate=validate.Length(min=1)
    )
    notify = Notify(
        "e-mail addresses (one, or a list) sent the job_finished mail once every document "
        "of the upload has finished"
    )


class SegmentProgressSchema(Schema):
    completed = fields.Integer()
    total = fields.Integer(allow_none=True)


class DocumentSchema(ModelSchema):
    class Meta:
        model = Document
        include_fk = True
        exclude = ("resume_stage", "removing", "segment_count", "segments_done", "updated_at")

    indexing_status = fields.String(metadata={"enum": STATUSES})
    # Read from the document's job, and its segment progress: see documents.describe.
    job_state = fields.String(allow_none=True)
    segments = fields.Nested(SegmentProgressSchema)


class DocumentListSchema(Schema):
    items = fields.List(fields.Nested(DocumentSchema))


class QueuedDocumentSchema(Schema):
    id = fields.String()
    name = fields.String()
    file_type = fields.String()
    size = fields.Integer()
    job_id = fields.String(allow_none=True)
    indexing_status = fields.String()


class UploadSchema(Schema):
    batch_id = fields.String()
    notify = fields.List(fields.String(), allow_none=True)
    documents = fields.List(fields.Nested(QueuedDocumentSchema))


class BatchSchema(Schema):
    id = fields.String()
    dataset_id = fields.String()
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    total_documents = fields.Integer()
    finished_documents = fields.Integer()
    counts = fields.Dict(keys=fields.String(), values=fields.Integer())
    segments_done = fields.Integer()
    segments_total = fields.Integer()
    notify = fields.List(
        fields.String(),
        allow_none=True,
        metadata={"description": "addresses sent the job_finished mail when the batch closes"},
    )


class RemovalSchema(Schema):
    document_id = fields.String()
    job_id = fields.String()


class RetrieveSchema(Schema):
    query = fields.String(required=True, validate=validate.Length(1, 2000))
    top_k = fields.Integer(strict=True, load_default=5, validate=validate.Range(1, 100))
    mode = fields.String(load_default="keyword", validate=validate.OneOf(MODES))


class RetrievedSegmentSchema(Schema):
    segment_id = fields.Integer()
    score = fields.Float()
    document_id = fields.String()
    document_name = fields.String()
    position = fields.Integer()
    text = fields.String()


class RetrievalSchema(Schema):
    query = fields.String()
    mode = fields.String()
    results = fields.List(fields.Nested(RetrievedSegmentSchema))
