"""The dataset lane: uploads, storage, hybrid retrieval and the embeddings provider."""

from __future__ import annotations

from pydantic import SecretStr

from app.settings.base import Concern
from app.settings.base import env


class DatasetSettings(Concern):
    # Where uploaded files and per-stage artifacts live; None means `instance/uploads`.
    storage_dir: str | None = env("DATASET_STORAGE_DIR")
    # Largest single uploaded file (bytes); larger files are refused with 413.
    max_file_bytes: int = env("DATASET_MAX_FILE_BYTES", 15 * 1024 * 1024, ge=1024)
    # Largest upload request (all files together, bytes); larger requests get 413.
    max_upload_bytes: int = env("DATASET_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, ge=1024)
    # Most files (or raw texts) one upload may carry.
    max_files_per_upload: int = env("DATASET_MAX_FILES_PER_UPLOAD", 100, ge=1)
    # Hybrid retrieval's reciprocal rank fusion constant: 1 / (k + rank) per list.
    rrf_k: int = env("DATASET_RRF_K", 60, ge=1)
    # Candidates each of keyword and vector search hands to the fusion (at least top_k):
    # deeper lists mostly add items far down one list ahead of a strong match in the other.
    fusion_candidates: int = env("DATASET_FUSION_CANDIDATES", 10, ge=1, le=1000)
    # OpenAI-compatible embeddings endpoint base URL (…/v1); None means keyword retrieval only.
    embedding_base_url: str | None = env("EMBEDDING_BASE_URL")
    # Embedding model name sent to the provider.
    embedding_model: str = env("EMBEDDING_MODEL", "text-embedding-3-small")
    # Bearer key for the embedding provider, if it needs one.
    embedding_api_key: SecretStr | None = env("EMBEDDING_API_KEY")
    # Texts per /embeddings request.
    embedding_batch_size: int = env("EMBEDDING_BATCH_SIZE", 64, ge=1, le=2048)
    # Seconds one /embeddings request may take.
    embedding_timeout: float = env("EMBEDDING_TIMEOUT", 30.0, gt=0)
    # Tries per /embeddings request (exponential backoff between them).
    embedding_max_attempts: int = env("EMBEDDING_MAX_ATTEMPTS", 5, ge=1)
