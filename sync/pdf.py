"""PDF text extraction, page by page, with pypdfium2.

PDFs that cannot be indexed raise `SkipFile(reason)`; the sync records the reason and moves on:
password-protected files, image-only files (scans without an OCR text layer) and files PDFium
cannot open. Nothing else escapes: one broken PDF must never stop a sync.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.models import ParsedNote

__all__ = [
    "ENCRYPTED",
    "NO_TEXT",
    "SkipFile",
    "clean_page_text",
    "extract_pdf",
    "parse_pdf",
    "pdf_title",
]

ENCRYPTED = "encrypted PDF"
NO_TEXT = "no text layer (image-only PDF; OCR it first)"

# PDFium is not thread-safe: one document at a time per process.
_PDFIUM_LOCK = threading.Lock()

# A page counts as a picture when images cover this share of it and it carries almost no
# text: e.g. a scan (or a photo with a one-line caption) whose text is not worth indexing.
_IMAGE_COVER = 0.25
_IMAGE_PAGE_MAX_CHARS = 40


class SkipFile(Exception):
    """This file cannot be indexed; `reason` says why, in words fit for a status page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Text cleaning
# ---------------------------------------------------------------------------------------------

# PDFium marks soft (line-break) hyphens as U+FFFE or U+0002; U+00AD is the Unicode one.
_SOFT_HYPHEN_RE = re.compile(r"[\u00ad\ufffe\x02]\n?")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff\u00ad]")
_LIGATURES = str.maketrans(
    {"ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "st", "ﬆ": "st"}
)
_SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_HYPHEN_BREAK_RE = re.compile(r"(?<=[a-z])-\n(?=[a-z]+\b)")
_BLANKS_RE = re.compile(r"\n{3,}")


def clean_page_text(text: str) -> str:
    """Normalise extracted text: `\n` newlines, soft hyphens joined, no control characters,
    single spaces, no trailing spaces, at most one blank line, and `exam-\nple` joined when
    both sides are lowercase letters. That simple case is mostly word-wrap hyphenation; a
    compound split at its own hyphen (`well-\nknown`) is joined too, a rare, accepted cost."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SOFT_HYPHEN_RE.sub("", text)
    text = _CONTROL_RE.sub("", text).translate(_LIGATURES)
    text = _SPACES_RE.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _HYPHEN_BREAK_RE.sub("", text)
    return _BLANKS_RE.sub("\n\n", text).strip()


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


def _open(path: Path):  # -> pdfium.PdfDocument
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        msg = str(exc)
        if "password" in msg.lower():
            raise SkipFile(ENCRYPTED) from exc
        raise SkipFile(f"unreadable PDF: {msg}") from exc
    except FileNotFoundError as exc:
        raise SkipFile(f"unreadable PDF: file not found: {path}") from exc
    except OSError as exc:
        raise SkipFile(f"unreadable PDF: {exc.strerror or exc}") from exc


def _image_cover(page, width: float, height: float) -> float:
    """Share of the page area covered by image objects (overlaps not removed; capped at 1)."""
    import pypdfium2.raw as raw

    area = 0.0
    for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=3):
        try:
            left, bottom, right, top = obj.get_bounds()
        except Exception:  # a malformed object must not stop extraction
            continue
        area += max(0.0, right - left) * max(0.0, top - bottom)
    return min(1.0, area / (width * height)) if width > 0 and height > 0 else 0.0


@dataclass
class _Doc:
    pages: list[tuple[int, str]]  # pages with text
    page_count: int
    meta: dict[str, str]
    picture_pages: list[int]  # pages that are images with (almost) no text


def _read(path: Path) -> _Doc:
    with _PDFIUM_LOCK:
        pdf = _open(path)
        try:
            try:
                meta = pdf.get_metadata_dict(skip_empty=True)
            except Exception:  # metadata is optional
                meta = {}
            doc = _Doc([], len(pdf), meta, [])
            for index in range(doc.page_count):
                page = pdf[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        text = clean_page_text(textpage.get_text_range())
                    finally:
                        textpage.close()
                    if len("".join(text.split())) < _IMAGE_PAGE_MAX_CHARS:
                        width, height = page.get_size()
                        if _image_cover(page, width, height) >= _IMAGE_COVER:
                            doc.picture_pages.append(index + 1)
                finally:
                    page.close()
                if text:
                    doc.pages.append((index + 1, text))
        except SkipFile:
            raise
        except Exception as exc:  # PDFium raises many kinds of errors on broken files
            raise SkipFile(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
        finally:
            pdf.close()
    if not any(n not in doc.picture_pages for n, _ in doc.pages):
        raise SkipFile(NO_TEXT)
    return doc


def extract_pdf(path: Path) -> list[tuple[int, str]]:
    """Cleaned text per page, as (1-based page number, text); pages without text are left out.

    Raises SkipFile for encrypted, image-only and unreadable PDFs."""
    return _read(Path(path)).pages


# Title metadata that names nothing: placeholders and file names left by the producing tool.
_JUNK_TITLE_RE = re.compile(
    r"^(?:untitled(?: document)?|no title|title|document|new document|\S+\.(?:pdf|docx?|odt|tex|dvi|rtf|pptx?|xlsx?))$",
    re.IGNORECASE,
)


def pdf_title(meta: dict[str, str], path_rel: str) -> str:
    """The PDF's Title metadata unless it is a placeholder, else the file name without `.pdf`."""
    # NUL, which PostgreSQL refuses in text, does occur in metadata strings.
    title = " ".join((meta.get("Title") or "").replace("\x00", "").split())
    if title and not _JUNK_TITLE_RE.match(title):
        return title
    name = path_rel.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def parse_pdf(path_rel: str, file: Path) -> ParsedNote:
    """A ParsedNote for a PDF: kind "pdf", title from the PDF's Title metadata (else the file
    name without extension), `pages` filled, `body` empty. Raises SkipFile like extract_pdf."""
    doc = _read(Path(file))
    note = ParsedNote(
        path=path_rel, kind="pdf", title=pdf_title(doc.meta, path_rel), pages=doc.pages
    )
    if doc.picture_pages:
        listed = ", ".join(map(str, doc.picture_pages[:20]))
        more = " ..." if len(doc.picture_pages) > 20 else ""
        note.warnings.append(f"pages that look like images without a text layer: {listed}{more}")
    return note
