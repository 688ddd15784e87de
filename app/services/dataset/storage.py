"""Uploaded files and per-stage artifacts on disk, one directory per document.

Workers find everything by document id, so no file content ever travels through the
broker. Every artifact is written to a temporary name and renamed into place, so a
killed worker never leaves a half-written file that a redelivered run would trust.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from typing import TextIO

from flask import current_app

from app.services.dataset.errors import FileTooLarge
from config import current_settings

SOURCE = "source"
PARSED = "parsed.txt"
CLEANED = "cleaned.txt"
SEGMENTS = "segments.jsonl"
INDEXED = "indexed.jsonl"

COPY_CHUNK = 1024 * 1024


def root() -> Path:
    configured = current_settings().dataset.storage_dir
    return Path(configured) if configured else Path(current_app.instance_path) / "uploads"


def document_dir(dataset_id: str, document_id: str) -> Path:
    return root() / dataset_id / document_id


def path(dataset_id: str, document_id: str, artifact: str) -> Path:
    return document_dir(dataset_id, document_id) / artifact


def save_source(
    stream: IO[bytes], dataset_id: str, document_id: str, *, max_bytes: int, name: str
) -> tuple[int, str]:
    """Copy an upload to disk; returns (size, sha256). FileTooLarge past `max_bytes`."""
    target = path(dataset_id, document_id, SOURCE)
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with open(target, "wb") as out:
        while chunk := stream.read(COPY_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                out.close()
                remove_document(dataset_id, document_id)
                raise FileTooLarge(
                    f"{name!r} is larger than the {max_bytes} byte limit per file "
                    "(DATASET_MAX_FILE_BYTES); split it or raise the limit"
                )
            digest.update(chunk)
            out.write(chunk)
    return size, digest.hexdigest()


@contextmanager
def write_text(target: Path) -> Iterator[TextIO]:
    """A text file that appears under `target` only once it is completely written."""
    partial = target.with_name(target.name + ".partial")
    with open(partial, "w", encoding="utf-8") as out:
        yield out
    os.replace(partial, target)


def remove_document(dataset_id: str, document_id: str) -> None:
    shutil.rmtree(document_dir(dataset_id, document_id), ignore_errors=True)


def remove_dataset(dataset_id: str) -> None:
    shutil.rmtree(root() / dataset_id, ignore_errors=True)
