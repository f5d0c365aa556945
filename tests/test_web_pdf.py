"""The cited PDF page as a PNG (vaultbot/web/pdf_page.py): the cited text highlighted where the
text layer holds it (a PDF made here, the corpus's Korean and OCR'd PDFs, a rotated page), an
image-only page shown without a highlight, clear errors for encrypted PDFs, missing pages and
absurd page sizes, and the byte-bounded LRU of rendered pages."""

from __future__ import annotations

import io
import os
import shutil
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from corpus import PDFS, need_corpus
from helpers import make_pdf

from vaultbot.web.pdf_page import (
    MAX_HEIGHT,
    PREFIX,
    WIDTH,
    EncryptedPdf,
    PageCache,
    PageImage,
    PageOutOfRange,
    PageTooLarge,
    PdfPageError,
    find_cited,
    render_page,
)

LINES = [
    "Quarterly report: revenue grew in every region.",
    "The launch moves to March after the security review.",
    "Hiring stays flat until the budget is approved.",
]


def decode_png(data: bytes) -> np.ndarray:
    """Our PNGs back to pixels (RGB8, filter 0), checking the format on the way."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 2)
            size = (height, width)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert size is not None
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(size[0], 1 + size[1] * 3)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(size[0], size[1], 3)


def _assert_highlight(plain: PageImage, marked: PageImage) -> None:
    """The highlight changes the boxes and nothing else; the boxes sit on text (ink in the
    plain render), and their paper turned yellow."""
    a, b = decode_png(plain.png).astype(int), decode_png(marked.png).astype(int)
    assert a.shape == b.shape
    inside = np.zeros(a.shape[:2], bool)
    for left, top, right, bottom in marked.boxes:
        inside[top:bottom, left:right] = True
        assert a[top:bottom, left:right].min() < 100, "a box without ink under it"
    changed = (a != b).any(axis=2)
    assert changed[inside].mean() > 0.5 and not changed[~inside].any()
    paper = inside & (a.min(axis=2) > 240)
    assert paper.any()
    r, g, blue = b[paper].mean(axis=0)
    assert r > 240 and g > 200 and blue < 80  # yellow


def test_a_cited_line_is_highlighted(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "report.pdf", LINES)
    plain = render_page(pdf, 1)
    marked = render_page(pdf, 1, LINES[1])
    assert (marked.width, marked.page, marked.pages) == (WIDTH, 1, 1)
    assert marked.highlighted and not plain.highlighted
    assert len(marked.boxes) == 1
    _assert_highlight(plain, marked)
    # Only the cited line: it is the second of three, so its box is below the first line's.
    first = render_page(pdf, 1, LINES[0])
    assert first.boxes[0][1] < marked.boxes[0][1]
    # The sentence's closing `.` is part of the highlight when the passage ends with it.
    bare = render_page(pdf, 1, LINES[1].rstrip("."))
    assert bare.boxes[0][2] < marked.boxes[0][2]


def test_the_cited_text_as_sync_cleaned_it_still_matches(tmp_path: Path) -> None:
    # Chunk text differs from the page's characters: joined lines, case, spacing, ligatures.
    pdf = make_pdf(tmp_path / "report.pdf", LINES)
    marked = render_page(pdf, 1, "the launch  moves to\nMARCH after the security review")
    assert len(marked.boxes) == 1
    both = render_page(pdf, 1, LINES[0] + "\n" + LINES[1])
    assert len(both.boxes) == 2
    letters = "quarterlyreportrevenuegrewineveryregion"
    assert find_cited(letters, "Quarterly re-\nport: revenue") == (0, len("quarterlyreportrevenue"))
    assert find_cited("thefindingsofthereview", "ﬁndings of the review") == (3, 22)  # ligature
    assert find_cited("xxfindxx", "ﬁnd") is None  # under MIN_MATCH letters: could be anywhere
    # The passage runs on past what this page holds: its first PREFIX letters are found.
    long_text = "Quarterly report: revenue grew in every region, then fell in the spring quarter."
    assert find_cited(letters + "thenfellinthespringquxyz", long_text) == (0, PREFIX)


def test_a_rotated_page_is_highlighted_in_place(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "rotated.pdf", LINES, rotation=90)
    plain, marked = render_page(pdf, 1), render_page(pdf, 1, LINES[2])
    assert marked.width == WIDTH and marked.height < marked.width  # landscape now
    left, top, right, bottom = marked.boxes[0]
    assert bottom - top > right - left  # the line runs down the page
    _assert_highlight(plain, marked)


def test_corpus_pdfs_korean_and_ocr(tmp_path: Path) -> None:
    need_corpus()
    cases = [
        ("korean-meeting-notes-embedded-font.pdf", 1, "오늘 회의에서는 다음 분기 마케팅 예산을 논의했다."),
        ("korean-meeting-notes-cid-font.pdf", 2, None),
        ("Seige_of_Vicksburg_Sample_OCR.pdf", 1, "however, did not last long; it became too"),
        ("crazyones.pdf", 1, "The round pegs in the square holes."),
        ("english-50-pages.pdf", 50, None),
    ]
    for name, page, cited in cases:
        plain = render_page(PDFS / name, page)
        assert plain.width == WIDTH and plain.pages >= page
        if cited:
            marked = render_page(PDFS / name, page, cited)
            assert marked.highlighted, name
            _assert_highlight(plain, marked)


def test_an_image_only_page_renders_without_a_highlight(tmp_path: Path) -> None:
    need_corpus()
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    # jpeg.pdf is a photo with a one-line caption; without the caption it is image-only.
    pdf = pdfium.PdfDocument(str(PDFS / "jpeg.pdf"))
    page = pdf[0]
    for obj in list(page.get_objects(filter=[raw.FPDF_PAGEOBJ_TEXT])):
        page.remove_obj(obj)
    page.gen_content()
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(buf.getvalue())
    image = render_page(scan, 1, "A PDF with a JPEG image.")
    assert not image.highlighted and image.width == WIDTH
    pixels = decode_png(image.png)
    assert pixels.std() > 10  # the photo is there
    # With its caption the same passage is found.
    assert render_page(PDFS / "jpeg.pdf", 1, "A PDF with a JPEG image.").highlighted


def test_encrypted_missing_pages_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    need_corpus()
    with pytest.raises(EncryptedPdf, match="encrypted PDF"):
        render_page(PDFS / "encrypted-file.pdf", 1)
    pdf = make_pdf(tmp_path / "report.pdf", LINES)
    for page in (0, 2, -1):
        with pytest.raises(PageOutOfRange, match="it has 1"):
            render_page(pdf, page)
    tall = make_pdf(tmp_path / "tall.pdf", LINES, size=(100, 5000))
    with pytest.raises(PageTooLarge):
        render_page(tall, 1)
    assert 5000 * WIDTH / 100 > MAX_HEIGHT
    with pytest.raises(PdfPageError, match="width"):
        render_page(pdf, 1, width=100_000)
    junk = tmp_path / "junk.pdf"
    junk.write_bytes(b"%PDF-1.4 not really" + os.urandom(200))
    with pytest.raises(PdfPageError, match="unreadable PDF"):
        render_page(junk, 1)
    with pytest.raises(PdfPageError, match="unreadable PDF"):
        render_page(tmp_path / "missing.pdf", 1)
    with pytest.raises(PdfPageError, match="unreadable PDF"):
        PageCache().get(tmp_path / "missing.pdf", 1)


def test_cache_is_an_lru_bounded_by_bytes(tmp_path: Path) -> None:
    pdfs = [make_pdf(tmp_path / f"{n}.pdf", [f"Page {n}: " + LINES[n % 3]]) for n in range(4)]
    one = len(render_page(pdfs[0], 1).png)
    cache = PageCache(max_bytes=int(one * 2.5))
    first = cache.get(pdfs[0], 1)
    assert cache.get(pdfs[0], 1) is first and (cache.hits, cache.misses) == (1, 1)
    cache.get(pdfs[1], 1)
    cache.get(pdfs[0], 1)  # pdfs[0] is now the most recent
    cache.get(pdfs[2], 1)  # evicts pdfs[1], the least recent
    assert cache.bytes <= cache.max_bytes and len(cache) == 2
    misses = cache.misses
    cache.get(pdfs[0], 1)
    assert cache.misses == misses
    cache.get(pdfs[1], 1)
    assert cache.misses == misses + 1
    # A highlight is another entry; an edited file is rendered afresh.
    assert cache.get(pdfs[0], 1, LINES[0]).highlighted
    roomy = PageCache()
    before = roomy.get(pdfs[0], 1)
    shutil.copy(pdfs[3], pdfs[0])
    after = roomy.get(pdfs[0], 1)
    assert after.png != before.png and after.png == render_page(pdfs[3], 1).png
    # A page bigger than the whole cache is returned, not kept.
    tiny = PageCache(max_bytes=10)
    assert tiny.get(pdfs[0], 1).png and len(tiny) == 0 and tiny.bytes == 0


def test_renders_alongside_sync_extraction_from_threads(tmp_path: Path) -> None:
    from sync.pdf import extract_pdf

    pdf = make_pdf(tmp_path / "report.pdf", LINES)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for _ in range(5):
                if n % 2:
                    assert extract_pdf(pdf)[0][0] == 1
                else:
                    assert render_page(pdf, 1, LINES[n % 3]).highlighted
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
