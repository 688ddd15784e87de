"""Turn a stored file into plain text, written to a file so large inputs stay out of memory."""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import docx
from bs4 import BeautifulSoup
from docx.opc.exceptions import OpcError
from lxml.etree import LxmlError  # type: ignore[import-untyped]
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from app.services.dataset.errors import DocumentFailed

TEXT_CHUNK = 1024 * 1024


def parse(source: Path, file_type: str, out: TextIO) -> None:
    """Write the text of `source` to `out`; DocumentFailed when the file cannot be read."""
    parser = PARSERS[file_type]
    try:
        for piece in parser(source):
            out.write(piece)
    except DocumentFailed:
        raise
    except (
        PyPdfError,
        OpcError,
        LxmlError,
        zipfile.BadZipFile,
        KeyError,
        ValueError,
        OSError,
    ) as exc:
        raise DocumentFailed(
            f"the {file_type.upper()} file could not be read ({type(exc).__name__}: {exc}); "
            "it may be damaged or password-protected: re-export it and upload it again"
        ) from exc


def _text(source: Path) -> Iterator[str]:
    with open(source, encoding="utf-8", errors="replace", newline=None) as fh:
        while piece := fh.read(TEXT_CHUNK):
            yield piece


def _html(source: Path) -> Iterator[str]:
    with open(source, "rb") as fh:
        soup = BeautifulSoup(fh, "html.parser")
    for hidden in soup(["script", "style", "noscript", "template"]):
        hidden.decompose()
    yield soup.get_text("\n")


def _pdf(source: Path) -> Iterator[str]:
    reader = PdfReader(source)
    if reader.is_encrypted:
        raise DocumentFailed("the PDF is password-protected; upload an unprotected copy")
    for page in reader.pages:
        yield (page.extract_text() or "") + "\n\n"


def _docx(source: Path) -> Iterator[str]:
    document = docx.Document(str(source))
    for paragraph in document.paragraphs:
        yield paragraph.text + "\n\n"
    for table in document.tables:
        for row in table.rows:
            yield " | ".join(cell.text for cell in row.cells) + "\n"
        yield "\n"


def _csv(source: Path) -> Iterator[str]:
    # One paragraph per row, each value labelled with its column, so a row stays findable.
    with open(source, encoding="utf-8", errors="replace", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None:
            return
        for row in rows:
            cells = [f"{name}: {value}" for name, value in zip(header, row, strict=False) if value]
            if cells:
                yield "; ".join(cells) + "\n\n"


PARSERS = {
    "txt": _text,
    "md": _text,
    "html": _html,
    "pdf": _pdf,
    "docx": _docx,
    "csv": _csv,
}
