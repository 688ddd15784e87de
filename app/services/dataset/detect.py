"""File type by content: magic bytes and structure decide, the extension only picks a flavour.

A PDF must start like a PDF and a DOCX must be a ZIP holding a Word document, whatever the
name says; text types must really be text.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from app.services.dataset.errors import UnsupportedFileType

TEXT_EXTENSIONS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".csv": "csv"}
HTML_EXTENSIONS = {".html", ".htm"}
SUPPORTED = ".txt, .md, .html, .pdf, .docx, .csv"
SNIFF_BYTES = 64 * 1024
HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the sniff window is still text.
        return exc.start >= len(head) - 3
    return True


def detect(source: Path, filename: str) -> str:
    """The document type of `source`: txt, md, html, pdf, docx or csv; else 415."""
    with open(source, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    suffix = Path(filename).suffix.lower()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        if _is_docx(source):
            return "docx"
        raise UnsupportedFileType(
            f"{filename!r} is a ZIP archive but not a Word document; supported: {SUPPORTED}"
        )
    if suffix in (".pdf", ".docx"):
        raise UnsupportedFileType(
            f"{filename!r} is named {suffix} but its content is not a "
            f"{suffix[1:].upper()} file; upload the real file"
        )
    if not _is_text(head):
        raise UnsupportedFileType(
            f"{filename!r} is neither text nor a PDF or DOCX file; supported: {SUPPORTED}"
        )
    if suffix in HTML_EXTENSIONS or HTML_START.match(head):
        return "html"
    if suffix in TEXT_EXTENSIONS:
        return TEXT_EXTENSIONS[suffix]
    if suffix:
        raise UnsupportedFileType(f"{filename!r}: {suffix} files are not supported: {SUPPORTED}")
    return "txt"


def _is_docx(source: Path) -> bool:
    try:
        with zipfile.ZipFile(source) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        # A damaged archive that claims to be one: let parsing report the damage.
        return True
