"""Type detection by content and parsing of real PDF, DOCX, HTML and CSV files."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from app.services.dataset.detect import detect
from app.services.dataset.errors import DocumentFailed
from app.services.dataset.errors import UnsupportedFileType
from app.services.dataset.parsing import parse
from tests.fixtures.dataset.files import CORPUS
from tests.fixtures.dataset.files import docx_bytes
from tests.fixtures.dataset.files import pdf_bytes


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def text_of(path: Path, name: str) -> str:
    out = io.StringIO()
    parse(path, detect(path, name), out)
    return out.getvalue()


def test_pdf_and_docx_are_detected_and_parsed(tmp_path: Path) -> None:
    pdf = write(tmp_path, "a.pdf", pdf_bytes())
    doc = write(tmp_path, "b.docx", docx_bytes())
    assert detect(pdf, "a.pdf") == "pdf"
    assert detect(doc, "b.docx") == "docx"
    assert "lighthouse keeper" in text_of(pdf, "a.pdf").lower()
    assert "cider press" in text_of(doc, "b.docx")


def test_content_wins_over_a_misleading_extension(tmp_path: Path) -> None:
    # A real PDF named .txt is still read as a PDF.
    pdf = write(tmp_path, "notes.txt", pdf_bytes())
    assert detect(pdf, "notes.txt") == "pdf"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("report.pdf", b"just some text pretending to be a PDF"),
        ("archive.docx", b""),
        ("program.exe", b"MZ\x90\x00\x03\x00\x00\x00"),
        ("data.json", b'{"a": 1}'),
    ],
)
def test_unsupported_content_is_refused(tmp_path: Path, name: str, data: bytes) -> None:
    if name == "archive.docx":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("hello.txt", "not a word document")
        data = buffer.getvalue()
    with pytest.raises(UnsupportedFileType):
        detect(write(tmp_path, name, data), name)


def test_a_corrupt_pdf_fails_with_an_actionable_message(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.pdf", pdf_bytes()[:300])
    with pytest.raises(DocumentFailed, match="could not be read"):
        text_of(broken, "broken.pdf")


def test_a_corrupt_docx_fails_with_an_actionable_message(tmp_path: Path) -> None:
    broken = write(tmp_path, "broken.docx", docx_bytes()[:200])
    with pytest.raises(DocumentFailed, match="could not be read"):
        text_of(broken, "broken.docx")


def test_html_loses_markup_and_scripts(tmp_path: Path) -> None:
    text = text_of(CORPUS / "tale_of_two_cities.html", "tale_of_two_cities.html")
    assert "best of times" in text
    assert "<p>" not in text and "console.log" not in text


def test_csv_rows_become_labelled_paragraphs(tmp_path: Path) -> None:
    text = text_of(CORPUS / "planets.csv", "planets.csv")
    assert "planet: Jupiter; order from sun: 5; moons: 95" in text
