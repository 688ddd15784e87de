"""/api/v1/datasets: datasets, document upload and status, batches, retrieval."""

from __future__ import annotations

from typing import Any

from flask import g
from flask import request
from flask.views import MethodView
from marshmallow import ValidationError
from werkzeug.exceptions import UnsupportedMediaType

from app.api import access
from app.api import auth
from app.api import notify
from app.api import validation
from app.api.dataset_schemas import BatchSchema
from app.api.dataset_schemas import DatasetCreateSchema
from app.api.dataset_schemas import DatasetListSchema
from app.api.dataset_schemas import DatasetSchema
from app.api.dataset_schemas import DocumentListQuerySchema
from app.api.dataset_schemas import DocumentListSchema
from app.api.dataset_schemas import DocumentSchema
from app.api.dataset_schemas import PageQuerySchema
from app.api.dataset_schemas import RemovalSchema
from app.api.dataset_schemas import RetrievalSchema
from app.api.dataset_schemas import RetrieveSchema
from app.api.dataset_schemas import TextsSchema
from app.api.dataset_schemas import UploadSchema
from app.models.dataset import Dataset
from app.models.dataset import Document
from app.services.dataset import batches
from app.services.dataset import datasets
from app.services.dataset import documents
from app.services.dataset import retrieval
from app.services.dataset.documents import Upload
from app.services.dataset.errors import InvalidUpload
from app.services.mail.errors import InvalidRecipient
from config import current_settings

blp = auth.blueprint(
    "datasets",
    __name__,
    url_prefix="/api/v1/datasets",
    description="Datasets for retrieval",
    json_body=False,
)

UPLOAD_ENDPOINT = "datasets.DocumentCollection"
validation.BODY_LIMITS[UPLOAD_ENDPOINT] = lambda settings: settings.dataset.max_upload_bytes


@blp.before_request
def _upload_limit() -> None:
    # Uploads may be far larger than the app-wide MAX_REQUEST_BYTES; only this endpoint.
    if request.endpoint == UPLOAD_ENDPOINT and request.method == "POST":
        limit = current_settings().dataset.max_upload_bytes
        request.max_content_length = limit


def _document_view(described: dict[str, Any]) -> dict[str, Any]:
    doc: Document = described["document"]
    view = {name: getattr(doc, name) for name in DocumentSchema().fields if hasattr(doc, name)}
    view.update(
        indexing_status=described["indexing_status"],
        error=described["error"],
        job_state=described["job_state"],
        segments={"completed": doc.segments_done, "total": doc.segment_count},
    )
    return view


def _one(doc: Document) -> dict[str, Any]:
    [described] = documents.describe([doc])
    return _document_view(described)


@blp.route("")
class DatasetCollection(MethodView):
    @blp.arguments(DatasetCreateSchema)
    @blp.response(201, DatasetSchema)
    def post(self, body: dict[str, Any]) -> Dataset:
        """Create a dataset with its chunking settings."""
        return datasets.create(**body, api_key_id=g.api_key_id)

    @blp.arguments(PageQuerySchema, location="query")
    @blp.response(200, DatasetListSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """List datasets, newest first."""
        found = datasets.list_datasets(
            query["limit"], query["offset"], project_id=access.project_filter()
        )
        return {"items": found}


@blp.route("/<dataset_id>")
class DatasetItem(MethodView):
    @blp.answers(204, refusals={404: "No such dataset"})
    def delete(self, dataset_id: str) -> None:
        """Delete the dataset with its documents, segments and files."""
        datasets.remove(dataset_id)

    @blp.answers(200, DatasetSchema, {404: "No such dataset"})
    def get(self, dataset_id: str) -> Dataset:
        """One dataset."""
        return datasets.get(dataset_id)


def _uploads() -> tuple[list[Upload], list[str] | None]:
    """The uploaded files or texts, and whom to mail once their batch has finished."""
    if request.mimetype == "multipart/form-data":
        files = request.files.getlist("files") + request.files.getlist("file")
        for index, file in enumerate(files):
            validation.check_text("form", f"files[{index}].filename", file.filename or "")
        for value in request.form.getlist("notify"):
            validation.check_text("form", "notify", value)
        notify_to = notify.form_addresses(request.form.getlist("notify"))
        return [Upload(file.filename or "unnamed", file.stream) for file in files], notify_to
    if request.is_json:
        try:
            body = TextsSchema().load(request.get_json())
        except ValidationError as exc:
            messages = exc.messages
            if isinstance(messages, dict) and "notify" in messages:
                # The same 422 as every other endpoint's bad notify address, not a 400.
                detail = " ".join(str(message) for message in messages["notify"])
                raise InvalidRecipient(f"notify: {detail}") from None
            raise InvalidUpload(f"the JSON body is not a list of texts: {exc.messages}") from None
        uploads = [
            documents.text_upload(item.get("name"), item["text"], number)
            for number, item in enumerate(body["documents"], start=1)
        ]
        return uploads, body.get("notify")
    raise UnsupportedMediaType(
        "send files as multipart/form-data (field 'files') or texts as application/json "
        '{"documents": [{"name": ..., "text": ...}]}'
    )


# The body is read by hand (files or JSON), so its two forms are described here.
UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "format": "binary"},
                    },
                    "notify": {
                        "type": "string",
                        "pattern": notify.FORM_ADDRESSES,
                        "description": "comma-separated e-mail addresses sent the "
                        "job_finished mail once every document of the upload has finished",
                    },
                },
            }
        },
        "application/json": {"schema": TextsSchema},
    },
}


@blp.route("/<dataset_id>/documents")
class DocumentCollection(MethodView):
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(202, UploadSchema)
    @blp.alt_response(413, description="A file or the request is over the size limit")
    @blp.alt_response(415, description="A file is not of a supported type")
    @blp.alt_response(422, description="A notify address is not valid")
    def post(self, dataset_id: str) -> dict[str, Any]:
        """Upload files (multipart) or raw texts (JSON); one job per document."""
        uploads, notify_to = _uploads()
        batch, queued = documents.add(
            dataset_id, uploads, api_key_id=g.api_key_id, notify_to=notify_to
        )
        return {
            "batch_id": batch.id,
            "notify": batch.notify_to,
            "documents": [
                {
                    "id": doc.id,
                    "name": doc.name,
                    "file_type": doc.file_type,
                    "size": doc.size,
                    "job_id": job_id,
                    "indexing_status": doc.indexing_status.value,
                }
                for doc, job_id in queued
            ],
        }

    @blp.arguments(DocumentListQuerySchema, location="query")
    @blp.response(200, DocumentListSchema)
    def get(self, query: dict[str, Any], dataset_id: str) -> dict[str, Any]:
        """Documents of the dataset with their processing status, oldest first."""
        found = documents.list_documents(dataset_id, **query)
        return {"items": [_document_view(item) for item in documents.describe(found)]}


@blp.route("/<dataset_id>/documents/<document_id>")
class DocumentItem(MethodView):
    @blp.response(200, DocumentSchema)
    def get(self, dataset_id: str, document_id: str) -> dict[str, Any]:
        """Status, stage timestamps, error and segment counts of one document."""
        return _one(documents.get(dataset_id, document_id))

    @blp.response(202, RemovalSchema)
    def delete(self, dataset_id: str, document_id: str) -> dict[str, Any]:
        """Remove the document: hidden from retrieval now, segments deleted by a job."""
        job_id = documents.remove(dataset_id, document_id, api_key_id=g.api_key_id)
        return {"document_id": document_id, "job_id": job_id}


@blp.route("/<dataset_id>/documents/<document_id>/pause")
class DocumentPause(MethodView):
    @blp.response(202, DocumentSchema)
    def post(self, dataset_id: str, document_id: str) -> dict[str, Any]:
        """Stop processing before the next stage."""
        return _one(documents.pause(dataset_id, document_id))


@blp.route("/<dataset_id>/documents/<document_id>/resume")
class DocumentResume(MethodView):
    @blp.response(202, DocumentSchema)
    def post(self, dataset_id: str, document_id: str) -> dict[str, Any]:
        """Continue a paused document at the stage it stopped before."""
        return _one(documents.resume(dataset_id, document_id, api_key_id=g.api_key_id))


@blp.route("/<dataset_id>/documents/<document_id>/reindex")
class DocumentReindex(MethodView):
    @blp.response(202, DocumentSchema)
    def post(self, dataset_id: str, document_id: str) -> dict[str, Any]:
        """Process again; the old segments answer queries until the new ones replace them."""
        return _one(documents.reindex(dataset_id, document_id, api_key_id=g.api_key_id))


@blp.route("/<dataset_id>/batches/<batch_id>")
class BatchItem(MethodView):
    @blp.response(200, BatchSchema)
    def get(self, dataset_id: str, batch_id: str) -> dict[str, Any]:
        """Aggregate progress of one upload."""
        return batches.progress(batch_id, dataset_id)


@blp.route("/<dataset_id>/retrieve")
class Retrieve(MethodView):
    @blp.arguments(RetrieveSchema)
    @blp.response(200, RetrievalSchema)
    @blp.alt_response(
        422,
        description="Keyword mode and the query has no indexable term (only stop words), "
        "or vector/hybrid mode and no embedding provider is configured",
    )
    def post(self, body: dict[str, Any], dataset_id: str) -> dict[str, Any]:
        """Best-matching segments for a query, with scores and their documents.

        keyword: the database's full-text index (BM25 on SQLite, ts_rank on
        PostgreSQL); vector: cosine similarity; hybrid: reciprocal rank fusion of both.
        """
        results = retrieval.retrieve(
            dataset_id, body["query"], top_k=body["top_k"], mode=body["mode"]
        )
        return {"query": body["query"], "mode": body["mode"], "results": results}
