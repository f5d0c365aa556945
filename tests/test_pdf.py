"""sync.pdf on every PDF of the corpus, plus broken files made on the spot."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from corpus import CORPUS

from sync.pdf import ENCRYPTED, NO_TEXT, SkipFile, clean_page_text, extract_pdf, parse_pdf

PDFS = CORPUS / "pdfs"

# Files that must be skipped, and why. Every other PDF in the directory must parse.
EXPECTED_SKIPS = {"encrypted-file.pdf": ENCRYPTED, "jpeg.pdf": NO_TEXT}


def pdf(name: str) -> Path:
    if not PDFS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return PDFS / name


def all_pdfs() -> list[Path]:
    return sorted(PDFS.glob("*.pdf")) if PDFS.is_dir() else []


def test_corpus_has_pdfs() -> None:
    pdf("x")
    assert len(all_pdfs()) >= 13


@pytest.mark.parametrize("path", all_pdfs(), ids=lambda p: p.name)
def test_every_corpus_pdf_parses_or_is_skipped_for_the_right_reason(path: Path) -> None:
    if path.name in EXPECTED_SKIPS:
        with pytest.raises(SkipFile) as info:
            parse_pdf(path.name, path)
        assert info.value.reason == EXPECTED_SKIPS[path.name]
        with pytest.raises(SkipFile):
            extract_pdf(path)
        return
    note = parse_pdf(f"docs/{path.name}", path)
    assert note.kind == "pdf" and note.path == f"docs/{path.name}" and note.body == ""
    assert note.pages, path.name
    numbers = [n for n, _ in note.pages]
    assert numbers == sorted(set(numbers)) and numbers[0] >= 1
    for _, text in note.pages:
        assert text.strip() and text == text.strip()
        assert "\r" not in text and "\x00" not in text and "\ufffe" not in text
        assert "\n\n\n" not in text and "  " not in text
    assert extract_pdf(path) == note.pages


def test_encrypted_and_image_only() -> None:
    with pytest.raises(SkipFile) as enc:
        extract_pdf(pdf("encrypted-file.pdf"))
    assert enc.value.reason == "encrypted PDF"
    # jpeg.pdf is one photo with a 24-character caption: nothing worth indexing, OCR it first.
    with pytest.raises(SkipFile) as img:
        extract_pdf(pdf("jpeg.pdf"))
    assert img.value.reason == "no text layer (image-only PDF; OCR it first)"
    assert isinstance(img.value, Exception) and str(img.value) == img.value.reason


@pytest.mark.parametrize(
    "name", ["korean-meeting-notes-embedded-font.pdf", "korean-meeting-notes-cid-font.pdf"]
)
def test_korean_page_numbers(name: str) -> None:
    pages = extract_pdf(pdf(name))
    assert [n for n, _ in pages] == [1, 2, 3]
    for n, text in pages:
        assert text.startswith(f"{n}쪽: 회의록 (Meeting notes)\n")  # each page prints its number
        assert "벡터 데이터베이스는 임베딩을 저장하고" in text


def test_both_korean_fonts_extract_the_same_text() -> None:
    a = extract_pdf(pdf("korean-meeting-notes-embedded-font.pdf"))
    b = extract_pdf(pdf("korean-meeting-notes-cid-font.pdf"))
    assert a == b


def test_fifty_page_english_pdf() -> None:
    pages = extract_pdf(pdf("english-50-pages.pdf"))
    assert [n for n, _ in pages] == list(range(1, 51))
    for n, text in pages:
        # the generator printed 0-based labels: page n reads "Page n-1"
        assert text.split("\n", 1)[0] == f"Page {n - 1}"


def test_titles() -> None:
    assert parse_pdf("m.pdf", pdf("metadata.pdf")).title == "The Title"
    assert parse_pdf("e.pdf", pdf("example.pdf")).title == "PDF Example Document"
    # placeholder titles ("Binder1.pdf", "untitled") fall back to the file name
    scan = "Seige_of_Vicksburg_Sample_OCR"
    assert parse_pdf(f"a/{scan}.pdf", pdf(f"{scan}.pdf")).title == scan
    assert (
        parse_pdf("x/english-50-pages.pdf", pdf("english-50-pages.pdf")).title == "english-50-pages"
    )


def test_ocr_scan_text_is_cleaned() -> None:
    pages = dict(extract_pdf(pdf("Seige_of_Vicksburg_Sample_OCR.pdf")))
    assert pages[1].startswith("THE SIEGE OF VICKSBURG. 49\n")
    assert "it became too conspicuous and dangerous for use." in pages[1]  # soft hyphen joined


def test_multilanguage_text() -> None:
    text = extract_pdf(pdf("multilang.pdf"))[0][1]
    for word in ["Hello World", "Привет, мир", "こんにちは世界", "مرحبا بالعالم"]:
        assert word in text


def test_broken_files_raise_skipfile(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pdf"
    garbage.write_bytes(b"this is not a pdf at all\x00\x01")
    with pytest.raises(SkipFile) as bad:
        extract_pdf(garbage)
    assert bad.value.reason.startswith("unreadable PDF")

    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(SkipFile):
        parse_pdf("empty.pdf", empty)

    with pytest.raises(SkipFile) as missing:
        extract_pdf(tmp_path / "nope.pdf")
    assert missing.value.reason.startswith("unreadable PDF")


def test_truncated_pdfs_never_crash(tmp_path: Path) -> None:
    data = pdf("example.pdf").read_bytes()
    for cut in (len(data) // 3, len(data) // 2, len(data) - 200):
        f = tmp_path / f"cut{cut}.pdf"
        f.write_bytes(data[:cut])
        try:
            pages = extract_pdf(f)
        except SkipFile as exc:
            assert exc.reason
        else:
            assert all(text for _, text in pages)


def test_parallel_extraction_matches_sequential() -> None:
    names = [
        "example.pdf",
        "english-50-pages.pdf",
        "korean-meeting-notes-cid-font.pdf",
        "crazyones.pdf",
    ]
    expected = {n: extract_pdf(pdf(n)) for n in names}
    got: dict[str, list] = {}
    errors: list[BaseException] = []

    def work(n: str) -> None:
        try:
            got[n] = extract_pdf(pdf(n))
        except BaseException as exc:  # surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in names * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == expected


def test_clean_page_text() -> None:
    raw = "Line one  with\tspaces \r\nexam-\r\nple and well-\r\nKnown\x00 ﬁle\ufffe\r\n\r\n\r\n\r\nEnd\x02"
    assert clean_page_text(raw) == "Line one with spaces\nexample and well-\nKnown file\n\nEnd"
