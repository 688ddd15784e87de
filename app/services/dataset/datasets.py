"""Datasets: create, list, look up, delete (rows cascade; files go with them)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy import update

from app.extensions.ext_database import db
from app.models.dataset import Dataset
from app.services import api_keys
from app.services.dataset import storage
from app.services.dataset.errors import DatasetNotFound
from app.services.dataset.errors import InvalidDatasetSettings


def create(
    *,
    name: str,
    description: str | None = None,
    chunk_size: int = 1000,
    chunk_overlap: int = 100,
    embeddings_enabled: bool = True,
    api_key_id: int | None = None,
) -> Dataset:
    if chunk_overlap >= chunk_size:
        raise InvalidDatasetSettings(
            f"chunk_overlap ({chunk_overlap}) must be smaller than chunk_size ({chunk_size})"
        )
    dataset = Dataset(
        name=name,
        description=description,
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        embeddings_enabled=embeddings_enabled,
        api_key_id=api_key_id,
        project_id=api_keys.project_of(api_key_id),
    )
    db.session.add(dataset)
    db.session.commit()
    return dataset


def get(dataset_id: str) -> Dataset:
    dataset = db.session.get(Dataset, dataset_id)
    if dataset is None:
        raise DatasetNotFound(f"no dataset with id {dataset_id!r}")
    return dataset


def list_datasets(limit: int, offset: int, *, project_id: int | None = None) -> list[Dataset]:
    """Newest first; with `project_id` only that project's, without every one (admin keys)."""
    query = select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id).limit(limit)
    if project_id is not None:
        query = query.where(Dataset.project_id == project_id)
    return list(db.session.scalars(query.offset(offset)))


def remove(dataset_id: str) -> None:
    """Delete the dataset, its documents, segments and files; running jobs find nothing left."""
    get(dataset_id)
    db.session.execute(delete(Dataset).where(Dataset.id == dataset_id))
    db.session.commit()
    storage.remove_dataset(dataset_id)


def bump_index_version(dataset_id: str) -> None:
    """Tell every process the dataset's searchable segments changed, in this transaction.

    Processes caching the dataset's vectors (vector_index) reload when the version they
    read differs from the one they loaded.
    """
    db.session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(index_version=Dataset.index_version + 1)
    )
