"""One page of a PDF as a PNG for the note page: the cited page, with the cited text highlighted
where the PDF's text layer holds it.

The cited text is a chunk's text, which sync cleaned (sync/pdf.py: spaces joined, hyphenated
line breaks joined, ligatures expanded), so it is matched on letters and digits only (NFKC,
case-folded) against the page's characters; each matched character keeps its index in the text
page, whose boxes PDFium gives back. No text layer (a scan), or text not found: the page is shown
without a highlight. Encrypted PDFs, pages out of range and absurd page sizes are errors with a
reason, never a crash. Rendered PNGs are kept in an LRU bounded by bytes (`PageCache`)."""

from __future__ import annotations

import hashlib
import struct
import threading
import unicodedata
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# PDFium is not thread-safe: the renderer and sync's extractor share sync's one lock.
from sync.pdf import _PDFIUM_LOCK as PDFIUM_LOCK

WIDTH = 1200  # px: sharp on a phone (390 pt at 3x) and fills a desktop column
MAX_HEIGHT = 12 * WIDTH  # px: a strip taller than this is refused, not rendered
MAX_WIDTH = 4000  # px: what a caller may ask for
PREFIX = 60  # letters the fallback search uses when the whole passage is not found
MIN_MATCH = 8  # fewer letters than this could match anywhere: no highlight
# A highlighter: multiplying by yellow keeps the ink dark and turns the paper yellow.
HIGHLIGHT = np.array([255, 221, 51], dtype=np.uint16)
PAD = 2  # px around each highlighted box


class PdfPageError(Exception):
    """The page cannot be shown; `reason` says why in words fit for a page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EncryptedPdf(PdfPageError):
    pass


class PageOutOfRange(PdfPageError):
    pass


class PageTooLarge(PdfPageError):
    pass


@dataclass(frozen=True)
class PageImage:
    png: bytes
    width: int
    height: int
    page: int  # 1-based, as ChunkRecord.page
    pages: int
    # The highlighted boxes in image pixels (left, top, right, bottom); empty: no highlight.
    boxes: tuple[tuple[int, int, int, int], ...] = ()

    @property
    def highlighted(self) -> bool:
        return bool(self.boxes)


def encode_png(rgb: np.ndarray) -> bytes:
    """A plain RGB8 PNG (filter 0, zlib 6): Pillow is not a dependency, and for rendered text
    pages filter 0 compressed smallest in a test (165 KB vs 189/197 KB for Sub/Up)."""
    height, width, channels = rgb.shape
    if channels != 3 or rgb.dtype != np.uint8:
        raise ValueError("encode_png takes an (h, w, 3) uint8 array")
    rows = np.empty((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 0] = 0
    rows[:, 1:] = rgb.reshape(height, width * 3)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def _skeleton(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text).casefold() if c.isalnum())


def _page_skeleton(textpage) -> tuple[str, list[int]]:  # noqa: ANN001 (a PdfTextPage)
    """The page's letters and digits, each with the index of the PDFium char it came from
    (a ligature gives several letters of one char)."""
    import pypdfium2.raw as raw

    letters: list[str] = []
    where: list[int] = []
    for i in range(textpage.count_chars()):
        code = raw.FPDFText_GetUnicode(textpage.raw, i)
        if not code or code > 0x10FFFF:
            continue
        for c in unicodedata.normalize("NFKC", chr(code)).casefold():
            if c.isalnum():
                letters.append(c)
                where.append(i)
    return "".join(letters), where


def find_cited(page_letters: str, cited: str) -> tuple[int, int] | None:
    """(start, end) of the cited passage in `page_letters` (skeleton positions, end exclusive):
    the whole passage, else its first PREFIX letters, else its last PREFIX letters."""
    want = _skeleton(cited)
    if len(want) < MIN_MATCH:
        return None
    for needle in (want, want[:PREFIX], want[-PREFIX:]):
        at = page_letters.find(needle)
        if at >= 0:
            return at, at + len(needle)
    return None


def _open(path: Path):  # noqa: ANN202 (a PdfDocument)
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise EncryptedPdf("encrypted PDF: it cannot be shown without its password") from exc
        raise PdfPageError(f"unreadable PDF: {exc}") from exc
    except OSError as exc:
        raise PdfPageError(f"unreadable PDF: {exc.strerror or exc}") from exc


def render_page(path: Path, page: int, cited: str | None = None, width: int = WIDTH) -> PageImage:
    """Page `page` (1-based) of the PDF at `path`, `width` px wide, with `cited` highlighted
    where the text layer holds it."""
    if not 100 <= width <= MAX_WIDTH:
        raise PdfPageError(f"width must be between 100 and {MAX_WIDTH} px")
    with PDFIUM_LOCK:
        pdf = _open(Path(path))
        try:
            pages = len(pdf)
            if not 1 <= page <= pages:
                raise PageOutOfRange(f"page {page} is not in this PDF (it has {pages})")
            pdf_page = pdf[page - 1]
            try:
                return _render(pdf_page, page, pages, cited, width)
            finally:
                pdf_page.close()
        except PdfPageError:
            raise
        except Exception as exc:  # PDFium raises many kinds of errors on broken files
            raise PdfPageError(f"unreadable PDF page: {type(exc).__name__}: {exc}") from exc
        finally:
            pdf.close()


def _render(pdf_page, page: int, pages: int, cited: str | None, width: int) -> PageImage:  # noqa: ANN001
    page_w, page_h = pdf_page.get_size()
    if not (page_w > 1 and page_h > 1):
        raise PdfPageError(f"page {page} has no size")
    scale = width / page_w
    if page_h * scale > MAX_HEIGHT:
        raise PageTooLarge(f"page {page} is too tall to show ({page_h:.0f} x {page_w:.0f} pt)")
    bitmap = pdf_page.render(scale=scale, rev_byteorder=True)
    try:
        rgb = np.array(bitmap.to_numpy()[:, :, :3], dtype=np.uint8)  # our copy
        boxes = _cited_boxes(pdf_page, bitmap, cited, rgb.shape) if cited else ()
    finally:
        bitmap.close()
    for left, top, right, bottom in boxes:
        area = rgb[top:bottom, left:right].astype(np.uint16)
        rgb[top:bottom, left:right] = (area * HIGHLIGHT // 255).astype(np.uint8)
    return PageImage(encode_png(rgb), rgb.shape[1], rgb.shape[0], page, pages, boxes)


def _cited_boxes(
    pdf_page,
    bitmap,
    cited: str,
    shape: tuple[int, ...],  # noqa: ANN001
) -> tuple[tuple[int, int, int, int], ...]:
    textpage = pdf_page.get_textpage()
    try:
        letters, where = _page_skeleton(textpage)
        found = find_cited(letters, cited)
        if found is None:
            return ()
        first, last = where[found[0]], where[found[1] - 1]
        if not cited.rstrip()[-1:].isalnum():  # the passage ends with its `.` or `"`
            last = _with_closing_marks(textpage, last)
        conv = bitmap.get_posconv(pdf_page)
        height, width = shape[0], shape[1]
        boxes = []
        for i in range(textpage.count_rects(first, last - first + 1)):
            left, bottom, right, top = textpage.get_rect(i)
            # Page to image coordinates (handles the page's rotation and the scale).
            xs, ys = zip(conv.to_bitmap(left, bottom), conv.to_bitmap(right, top), strict=True)
            box = (
                max(0, int(min(xs)) - PAD),
                max(0, int(min(ys)) - PAD),
                min(width, int(max(xs)) + 1 + PAD),
                min(height, int(max(ys)) + 1 + PAD),
            )
            if box[2] > box[0] and box[3] > box[1]:
                boxes.append(box)
        return tuple(boxes)
    finally:
        textpage.close()


def _with_closing_marks(textpage, last: int) -> int:  # noqa: ANN001
    """`last` moved over the punctuation right after it (a sentence's `.`, a closing quote), so
    a highlighted sentence ends where the reader sees it end."""
    import pypdfium2.raw as raw

    end = min(textpage.count_chars(), last + 4)
    while last + 1 < end:
        ch = chr(raw.FPDFText_GetUnicode(textpage.raw, last + 1) or 32)
        if ch.isalnum() or ch.isspace():
            break
        last += 1
    return last


class PageCache:
    """Rendered pages, least recently used first out, at most `max_bytes` of PNG. A page is
    keyed by the file's identity (size, mtime, inode), so an edited PDF is rendered afresh."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[tuple[object, ...], PageImage] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, path: Path, page: int, cited: str | None = None, width: int = WIDTH) -> PageImage:
        try:
            st = Path(path).stat()
        except OSError as exc:
            raise PdfPageError(f"unreadable PDF: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(cited.encode("utf-8")).hexdigest() if cited else None
        key = (
            str(Path(path).resolve()),
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            page,
            digest,
            width,
        )
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        image = render_page(path, page, cited, width)  # outside our lock: PDFium has its own
        size = len(image.png)
        if size > self.max_bytes:
            return image
        with self._lock:
            if key not in self._items:
                self._items[key] = image
                self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= len(old.png)
        return image
