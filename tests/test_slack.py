"""The Slack bot end to end: the real Bolt app behind a real uvicorn, driven by signed HTTP
requests as Slack sends them; its Web API calls go to a fake Slack that records them (and
enforces Block Kit limits), its answers come from the real engine on the sample vault with a
fake Ollama over HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from itertools import pairwise
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack, check_blocks
from fastapi import FastAPI
from helpers import Server
from slack_sdk.signature import SignatureVerifier

from bot.access import Access
from bot.render_slack import FEEDBACK_DOWN, answer_text_of
from bot.slack import SlackConfigError, SocketModeThread, build_slack_app, mount_http
from engine.answer import Asker, AskOptions, Event, Token
from engine.answer_cache import AnswerCache
from engine.llm.ollama import OllamaGenerator
from engine.querylog import QueryLog
from engine.retrieve import Retriever

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
LAUNCH = "The launch is on **December 4** [1], moved from November 27 [2]."
SOURCE_LINE = re.compile(r"^(\[\d+\])+ <[^|<>\s]+\|[^<>|]+>$")


# --------------------------------------------------------------------------- plumbing


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    """Slack's v0 request signature: HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def test_signature_matches_slack_sdk() -> None:
    body, ts = b'{"type":"event_callback"}', int(time.time())
    assert SignatureVerifier(SECRET).is_valid(body, str(ts), sign(body, ts))


class Bot:
    """One Slack app served over HTTP, with helpers to play Slack's side."""

    def __init__(self, index, slack: FakeSlack, ollama, *, access: Access | None = None,
                 asker: Asker | None = None, idle_timeout: float = 30.0,
                 update_interval: float = 0.2, streaming: bool = True,
                 process_before_response: bool = False, **options: Any) -> None:
        self.slack = slack
        self.querylog = QueryLog(index.registry)
        gen = OllamaGenerator(ollama.url, idle_timeout=idle_timeout, first_token_timeout=10)
        self.asker = asker or Asker(Retriever(index), gen, querylog=self.querylog,
                                    vault_name="vault")
        self.app = build_slack_app(self.asker, self.querylog, access or Access(),
                                   bot_token=BOT_TOKEN, signing_secret=SECRET,
                                   api_url=slack.api_url, update_interval=update_interval,
                                   streaming=streaming,
                                   process_before_response=process_before_response, **options)
        api = FastAPI()
        mount_http(api, self.app)
        self.server = Server(api)
        self._ids = iter(range(1, 10_000))

    def __enter__(self) -> Bot:
        self.server.__enter__()
        self.http = httpx.Client(base_url=self.server.url, timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()
        self.server.__exit__(*exc)

    @property
    def bot(self):
        return self.app.bot

    # ---- requests as Slack sends them

    def post(self, body: bytes, content_type: str, *, timestamp: int | None = None,
             secret: str = SECRET, headers: dict[str, str] | None = None) -> httpx.Response:
        ts = int(time.time()) if timestamp is None else timestamp
        h = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(ts),
             "X-Slack-Signature": sign(body, ts, secret), **(headers or {})}
        return self.http.post("/slack/events", content=body, headers=h)

    def event(self, event: dict[str, Any], *, event_id: str | None = None,
              **kw: Any) -> httpx.Response:
        envelope = {
            "token": "legacy-verification-token", "team_id": "T1", "api_app_id": "A1",
            "event": event, "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):06d}", "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": "T1", "user_id": "UBOT",
                                "is_bot": True, "is_enterprise_install": False}],
        }
        return self.post(json.dumps(envelope).encode(), "application/json", **kw)

    def mention(self, question: str, *, channel: str = "C1", user: str = "U1",
                thread_ts: str | None = None, event_id: str | None = None) -> str:
        """A person @mentions the bot: the message is in the channel, then the event comes."""
        text = f"<@UBOT> {question}"
        ts = self.slack.add_message(channel, text, user=user, thread_ts=thread_ts)
        event = {"type": "app_mention", "user": user, "text": text, "ts": ts, "channel": channel,
                 "event_ts": ts, "team": "T1"}
        if thread_ts:
            event["thread_ts"] = thread_ts
        r = self.event(event, event_id=event_id)
        assert r.status_code == 200, r.text
        return ts

    def message(self, text: str, *, channel: str = "C1", user: str = "U1",
                thread_ts: str | None = None, channel_type: str = "channel") -> str:
        ts = self.slack.add_message(channel, text, user=user, thread_ts=thread_ts)
        event = {"type": "message", "user": user, "text": text, "ts": ts, "channel": channel,
                 "event_ts": ts, "channel_type": channel_type, "team": "T1"}
        if thread_ts:
            event["thread_ts"] = thread_ts
        r = self.event(event)
        assert r.status_code == 200, r.text
        return ts

    def settle(self, received: int, timeout: float = 15.0) -> None:
        """Wait until `received` events reached the listeners and no answer is in progress."""
        deadline = time.monotonic() + timeout
        while self.bot.received < received or self.bot.active:
            assert time.monotonic() < deadline, (self.bot.received, self.slack.methods())
            time.sleep(0.02)

    # ---- reading what the bot did

    def answers(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The bot's final (Block Kit) messages in a thread, in order."""
        return [m for m in self.slack.bot_messages(channel, thread_ts) if m.get("blocks")]


def sections(message: dict[str, Any], prefix: str) -> list[str]:
    return [b["text"]["text"] for b in message.get("blocks", [])
            if b.get("block_id", "").startswith(prefix)]


def source_lines(message: dict[str, Any]) -> list[str]:
    lines = "\n".join(sections(message, "vb_sources")).split("\n")
    return [line for line in lines if line and line != "*Sources*"]


@pytest.fixture
def quiet_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Afterwards: nothing at INFO or above carried a token or note text."""
    caplog.set_level(logging.INFO)
    yield caplog
    for record in caplog.records:
        if record.levelno >= logging.INFO:
            text = record.getMessage() + (record.exc_text or "")
            assert BOT_TOKEN not in text and APP_TOKEN not in text and SECRET not in text
            assert "December 4" not in text and "November 27" not in text, text


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("process_before_response", [False, True])
def test_mention_answered_in_thread_with_sources(index, fake_slack, fake_ollama, quiet_logs,
                                                 process_before_response) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.token_delay = 0.04  # ~0.6 s of generation
    # Either way the answer runs after the 200: in a task of the bot, not in Bolt's listener.
    with Bot(index, fake_slack, fake_ollama, process_before_response=process_before_response) as b:
        # Top level: the reply goes in a thread under the mention.
        t0 = time.monotonic()
        ts = b.mention("When is the vaultbot launch?")
        acked = time.monotonic() - t0
        answered_before_ack = [c for c in fake_slack.calls if "blocks" in c.args]
        b.settle(1)
        # The 200 went out before the answer was generated (which takes ~0.6 s).
        assert answered_before_ack == [] and acked < 2.0
        assert fake_slack.calls_to("chat.update")[-1].at - t0 > acked
        [answer] = b.answers("C1", ts)
        body = sections(answer, "vb_answer")
        assert body == ["The launch is on *December 4* [1], moved from November 27 [2]."]
        lines = source_lines(answer)
        # One line per cited note (two citations of one note share a line).
        assert 1 <= len(lines) <= 2 and all(SOURCE_LINE.match(line) for line in lines), lines
        assert any("file=Projects%2FVaultbot%20launch|Vaultbot launch" in line for line in lines), lines
        context = next(bl for bl in answer["blocks"] if bl["type"] == "context")
        assert context["elements"][0]["text"] == "model: qwen2.5:7b-instruct"
        buttons = answer["blocks"][-1]["elements"]
        row = b.querylog.get(int(buttons[0]["value"]))
        assert row is not None and row["channel"] == "slack:C1" and row["feedback"] is None
        # Working indicators: a reaction on the question, removed at the end; a thread status.
        [add] = fake_slack.calls_to("reactions.add")
        [remove] = fake_slack.calls_to("reactions.remove")
        assert {"channel": "C1", "timestamp": ts, "name": "eyes"}.items() <= add.args.items()
        assert remove.ok and remove.args["timestamp"] == ts
        assert add.at < fake_slack.calls_to("chat.startStream")[0].at < remove.at
        status = fake_slack.calls_to("assistant.threads.setStatus")[0]
        assert status.args["thread_ts"] == ts and status.args["status"] == "is thinking…"

        # Inside a thread: the reply goes to the thread's root, not under the mention.
        root = fake_slack.add_message("C1", "Does anyone know the launch date?", user="U2")
        inner = b.mention("when is the vaultbot launch?", thread_ts=root)
        b.settle(2)
        assert b.answers("C1", inner) == []
        [in_thread] = b.answers("C1", root)
        assert "December 4" in sections(in_thread, "vb_answer")[0]


def test_follow_up_in_thread_uses_history(index, fake_slack, fake_ollama) -> None:
    seen: list[list[dict[str, Any]]] = []

    def respond(model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
        seen.append(messages)
        return LAUNCH if len(seen) == 1 else "Before that it was November 27 [2]."

    fake_ollama.responder = respond
    with Bot(index, fake_slack, fake_ollama) as b:
        root = b.mention("When is the vaultbot launch?")
        b.settle(1)
        # No mention: answered because the bot answered in this thread.
        b.message("and what was the date before?", thread_ts=root)
        b.settle(2)
        answers = b.answers("C1", root)
        assert len(answers) == 2 and "November 27" in sections(answers[1], "vb_answer")[0]
        history = seen[1]
        assert {"role": "user", "content": "When is the vaultbot launch?"} in history
        earlier = [m for m in history if m["role"] == "assistant"]
        assert len(earlier) == 1 and "December 4" in earlier[0]["content"]
        assert history[-1]["role"] == "user" and "what was the date before?" in history[-1]["content"]

        # A mention inside the followed thread arrives twice (app_mention and message): one answer.
        text = "<@UBOT> and the beta?"
        ts = fake_slack.add_message("C1", text, user="U1", thread_ts=root)
        ev = {"user": "U1", "text": text, "ts": ts, "channel": "C1", "event_ts": ts,
              "thread_ts": root, "team": "T1"}
        assert b.event({**ev, "type": "message", "channel_type": "channel"}).status_code == 200
        assert b.event({**ev, "type": "app_mention"}).status_code == 200
        b.settle(4)
        assert len(b.answers("C1", root)) == 3 and len(seen) == 3

        # Chatter in a thread the bot never spoke in, and at the top level: ignored.
        other = fake_slack.add_message("C1", "lunch?", user="U2")
        b.message("pizza", user="U3", thread_ts=other)
        b.message("anyone around?", user="U3")
        b.settle(6)
        assert len(seen) == 3 and fake_slack.bot_messages("C1", other) == []
        # Once mentioned there, that thread is followed too.
        b.mention("When is the vaultbot launch?", thread_ts=other)
        b.message("and the beta?", user="U3", thread_ts=other)
        b.settle(8)
        assert len(seen) == 5 and len(b.answers("C1", other)) == 2

    # After a restart the thread is recognised from conversations.replies (the bot's messages).
    replies_before = len(fake_slack.calls_to("conversations.replies"))
    with Bot(index, fake_slack, fake_ollama) as b2:
        b2.message("thanks, and who owns it?", thread_ts=root)
        b2.settle(1)
        assert len(fake_slack.calls_to("conversations.replies")) > replies_before
        assert len(b2.answers("C1", root)) == 4 and len(seen) == 6
        assert sum(m["role"] == "assistant" for m in seen[5]) == 3  # all three earlier turns


def test_bad_signature_or_stale_request_is_rejected(index, fake_slack, fake_ollama) -> None:
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = fake_slack.add_message("C1", "<@UBOT> When is the launch?")
        event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> When is the launch?",
                 "ts": ts, "channel": "C1", "event_ts": ts}
        assert b.event(event, secret="not-the-secret").status_code == 401
        stale = int(time.time()) - 6 * 60  # correctly signed, but more than 5 minutes old
        assert b.event(event, timestamp=stale).status_code == 401
        unsigned = b.http.post("/slack/events", json={"type": "event_callback", "event": event})
        assert unsigned.status_code == 401
        time.sleep(0.3)
        assert fake_slack.calls == [] and fake_ollama.requests_to("/api/chat") == []
        assert b.bot.received == 0
        # The same event, correctly signed and fresh, is answered.
        assert b.event(event).status_code == 200
        b.settle(1)
        assert len(b.answers("C1", ts)) == 1


def test_retried_event_is_answered_once(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.token_delay = 0.02
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention("When is the vaultbot launch?", event_id="EvRETRY1")
        event = {"type": "app_mention", "user": "U1", "text": "<@UBOT> When is the vaultbot launch?",
                 "ts": ts, "channel": "C1", "event_ts": ts, "team": "T1"}
        for n in (1, 2):
            r = b.event(event, event_id="EvRETRY1",
                        headers={"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": "http_timeout"})
            assert r.status_code == 200
        b.settle(3)
        assert len(b.answers("C1", ts)) == 1
        assert len(fake_ollama.requests_to("/api/chat")) == 1
        assert len(fake_slack.calls_to("reactions.add")) == 1


def test_middleware_drops_repeated_event_ids_and_messages(index, fake_slack, fake_ollama) -> None:
    """The two Bolt middleware checks, each on its own: a delivery whose event_id was seen is
    dropped (whatever it carries), and a message already claimed is not answered again under
    another event_id."""
    fake_ollama.responder = lambda *a: LAUNCH
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention("When is the vaultbot launch?", event_id="EvSAME")
        text = "<@UBOT> When is the vaultbot launch?"
        again = {"type": "app_mention", "user": "U1", "text": text, "ts": ts, "channel": "C1",
                 "event_ts": ts, "team": "T1"}
        assert b.event(again, event_id="EvOTHER").status_code == 200
        other = fake_slack.add_message("C1", "<@UBOT> When is the beta?", user="U1")
        reused = dict(again, text="<@UBOT> When is the beta?", ts=other, event_ts=other)
        assert b.event(reused, event_id="EvSAME").status_code == 200
        b.settle(3)
        time.sleep(0.3)
        assert b.bot.received == 3
        assert len(b.answers("C1", ts)) == 1 and fake_slack.bot_messages("C1", other) == []
        assert len(fake_ollama.requests_to("/api/chat")) == 1


def test_retry_after_a_restart_is_not_answered_twice(index, fake_slack, fake_ollama) -> None:
    """A retry the process has not seen (it restarted): the thread shows the bot's reply to the
    message, so no second answer; a retry of a message nobody answered is answered."""
    fake_ollama.responder = lambda *a: LAUNCH
    with Bot(index, fake_slack, fake_ollama) as b:
        root = b.mention("When is the vaultbot launch?", event_id="EvFIRST")
        b.settle(1)
        follow_up = b.message("and who writes the announcement?", thread_ts=root)
        b.settle(2)
        assert len(b.answers("C1", root)) == 2
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    mention = {"type": "app_mention", "user": "U1", "text": "<@UBOT> When is the vaultbot launch?",
               "ts": root, "channel": "C1", "event_ts": root, "team": "T1"}
    unanswered = fake_slack.add_message("C1", "<@UBOT> When is the beta?", user="U1")
    with Bot(index, fake_slack, fake_ollama) as b:  # a new process: nothing in memory
        assert b.event(mention, event_id="EvFIRST", headers=retry).status_code == 200
        b.settle(1)
        time.sleep(0.3)
        assert len(b.answers("C1", root)) == 2
        assert len(fake_ollama.requests_to("/api/chat")) == 2
        # The follow-up, retried: the thread is read once (to follow it and to check it).
        read = len(fake_slack.calls_to("conversations.replies"))
        retried_follow_up = {"type": "message", "user": "U1", "text": "and who writes the announcement?",
                 "ts": follow_up, "channel": "C1", "event_ts": follow_up, "thread_ts": root,
                 "channel_type": "channel", "team": "T1"}
        assert b.event(retried_follow_up, event_id="EvFOLLOW", headers=retry).status_code == 200
        b.settle(2)
        time.sleep(0.3)
        assert len(fake_ollama.requests_to("/api/chat")) == 2
        assert len(fake_slack.calls_to("conversations.replies")) == read + 1
        late = dict(mention, text="<@UBOT> When is the beta?", ts=unanswered, event_ts=unanswered)
        assert b.event(late, event_id="EvLOST", headers=retry).status_code == 200
        b.settle(3)
        assert len(b.answers("C1", unanswered)) == 1
        assert len(fake_ollama.requests_to("/api/chat")) == 3
        # Cut off mid-stream by a crash: the bot's text is there, its answer blocks are not.
        cut = fake_slack.add_message("C1", "<@UBOT> Who writes the announcement?", user="U1")
        fake_slack.add_message("C1", "Mina writes the", user=fake_slack.bot_user_id, thread_ts=cut)
        again = dict(mention, text="<@UBOT> Who writes the announcement?", ts=cut, event_ts=cut)
        assert b.event(again, event_id="EvCUT", headers=retry).status_code == 200
        b.settle(4)
        assert len(fake_ollama.requests_to("/api/chat")) == 4
        assert len(b.answers("C1", cut)) == 1  # the finished answer


def test_replied_to_reads_the_thread() -> None:
    from bot.slack import replied_to

    bot = {"user": "UBOT", "blocks": [{"type": "section", "block_id": "vb_answer0"}]}
    thread = [{"ts": "1.0", "user": "U1", "text": "q1"}, {"ts": "2.0", **bot, "text": "a1"},
              {"ts": "3.0", "user": "U2", "text": "q2"}, {"ts": "4.0", "bot_id": "BOTHER", "text": "x"}]
    assert replied_to(thread, "1.0", "UBOT", None)
    assert not replied_to(thread, "3.0", "UBOT", None)  # another bot is not this one
    assert not replied_to(thread + [{"ts": "5.0", "user": "U1", "text": "q3"},
                                    {"ts": "6.0", **bot, "text": "a3"}], "3.0", "UBOT", None)
    cut_off = [{"ts": "1.0", "user": "U1", "text": "q1"}, {"ts": "2.0", "user": "UBOT", "text": "Half an"}]
    assert not replied_to(cut_off, "1.0", "UBOT", None)  # streamed text only: not finished


def test_feedback_click_is_stored(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        [answer] = b.answers("C1", ts)
        down = next(e for e in answer["blocks"][-1]["elements"] if e["action_id"] == FEEDBACK_DOWN)
        query_id = int(down["value"])
        payload = {
            "type": "block_actions", "api_app_id": "A1", "token": "legacy", "trigger_id": "1.2.3",
            "user": {"id": "U1", "username": "mina", "team_id": "T1"}, "team": {"id": "T1"},
            "container": {"type": "message", "message_ts": answer["ts"], "channel_id": "C1",
                          "is_ephemeral": False, "thread_ts": ts},
            "channel": {"id": "C1", "name": "general"},
            "message": answer,
            "response_url": f"{fake_slack.url}/response/1",
            "actions": [{"type": "button", "action_id": FEEDBACK_DOWN, "block_id": "vb_feedback",
                         "value": down["value"], "text": down["text"], "action_ts": str(time.time())}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        r = b.post(body, "application/x-www-form-urlencoded")
        assert r.status_code == 200
        b.settle(2)
        assert b.querylog.get(query_id)["feedback"] == -1
        [thanks] = fake_slack.calls_to("chat.postEphemeral")
        assert thanks.args["user"] == "U1" and thanks.args["thread_ts"] == ts
        assert "Thanks" in thanks.args["text"]
        # A forged click (bad signature) changes nothing.
        payload["actions"][0]["action_id"] = "vaultbot_feedback_up"
        body = urlencode({"payload": json.dumps(payload)}).encode()
        assert b.post(body, "application/x-www-form-urlencoded", secret="x").status_code == 401
        assert b.querylog.get(query_id)["feedback"] == -1


def test_long_answer_stays_within_block_kit_limits(index, fake_slack, fake_ollama) -> None:
    para = ("The launch plan covers the beta, the budget and the risks in detail [1]. " * 12).strip()
    long_text = "\n\n".join([para] * 23)  # ~20,000 characters
    assert 19_000 < len(long_text) < 22_000
    fake_ollama.responder = lambda *a: [long_text[i:i + 900] for i in range(0, len(long_text), 900)]
    fake_ollama.token_delay = 0.03
    with Bot(index, fake_slack, fake_ollama, update_interval=0.1) as b:
        ts = b.mention("Describe the vaultbot launch plan in detail")
        b.settle(1)
        answers = b.answers("C1", ts)
        assert len(answers) >= 2
        for message in answers:
            blocks = message["blocks"]
            assert check_blocks(blocks) is None
            assert len(blocks) <= 50
            assert all(len(bl["text"]["text"]) <= 3000 for bl in blocks if bl["type"] == "section")
        # Every call that carried blocks was accepted; the text is complete and in order.
        carried = [c for c in fake_slack.calls if "blocks" in c.args]
        assert carried and all(c.ok for c in carried), [c.response for c in carried if not c.ok]
        text = " ".join(answer_text_of(m) for m in answers)
        assert " ".join(text.split()) == " ".join(long_text.split())
        assert answers[-1]["blocks"][-1]["type"] == "actions"
        # Streamed pieces respected appendStream's 12,000-character limit too.
        streamed = fake_slack.calls_to("chat.appendStream") + fake_slack.calls_to("chat.startStream")
        assert streamed and all(c.ok for c in streamed)


def test_ollama_stall_becomes_a_message(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1] and the rest never comes."
    fake_ollama.stall_after = 4
    with Bot(index, fake_slack, fake_ollama, idle_timeout=0.4) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        [answer] = b.answers("C1", ts)
        assert sections(answer, "vb_answer")[0].startswith("The launch is on")
        [error] = sections(answer, "vb_error")
        assert error.startswith(":warning: qwen2.5:7b-instruct stopped answering for 0.4 s")


def test_ollama_down_gives_extractive_answer_with_notice(index, fake_slack, fake_ollama) -> None:
    fake_ollama.http_error = (500, "llama runner process has terminated")
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention("When is the launch date?")
        b.settle(1)
        [answer] = b.answers("C1", ts)
        context = next(bl for bl in answer["blocks"] if bl["type"] == "context")["elements"][0]["text"]
        notice = context.split(" · :information_source: ", 1)
        assert notice[0] == "extractive answer (no LLM)" and len(notice) == 2 and notice[1]
        assert "December 4" in sections(answer, "vb_answer")[0] and source_lines(answer)


class ExplodingAsker(Asker):
    """A real Asker whose stream breaks after the first piece, as an unexpected bug would."""

    async def stream(self, question: str, options: AskOptions | None = None) -> AsyncIterator[Event]:
        yield Token("Partial answer")
        raise KeyError("boom")


def test_unexpected_error_reaches_the_thread_and_the_log(index, fake_slack, fake_ollama,
                                                         quiet_logs) -> None:
    asker = ExplodingAsker(Retriever(index), None)
    with Bot(index, fake_slack, fake_ollama, asker=asker) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        [message] = b.answers("C1", ts)
        assert sections(message, "vb_error") == [
            ":warning: Something went wrong: KeyError. The details are in the vaultbot log."]
        assert fake_slack.calls_to("reactions.remove")
    errors = [r for r in quiet_logs.records if r.levelno >= logging.ERROR and r.name == "bot.slack"]
    assert errors and errors[0].exc_info is not None and "KeyError" in (errors[0].exc_text or "")


def test_streaming_when_allowed(index, fake_slack, fake_ollama) -> None:
    words = " ".join(f"word{i}" for i in range(40))
    fake_ollama.responder = lambda *a: f"{words} [1]."
    fake_ollama.token_delay = 0.02  # ~0.8 s
    with Bot(index, fake_slack, fake_ollama, update_interval=0.2) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        [start] = fake_slack.calls_to("chat.startStream")
        assert start.ok and start.args["thread_ts"] == ts
        assert start.args["recipient_user_id"] == "U1" and start.args["recipient_team_id"] == "T1"
        appends = fake_slack.calls_to("chat.appendStream")
        [stop] = fake_slack.calls_to("chat.stopStream")
        assert len(appends) >= 2 and all(c.ok for c in appends) and stop.ok
        assert all(later.at - earlier.at >= 0.15 for earlier, later in pairwise(appends))
        streamed = "".join(ch["text"] for c in [start, *appends] for ch in c.args["chunks"])
        assert f"{words} [1].".startswith(streamed) and len(streamed) > 50
        # The streamed message is then replaced by the Block Kit answer; no placeholder posted.
        final = fake_slack.calls_to("chat.update")[-1]
        assert final.args["ts"] == start.response["ts"] and final.ok
        assert final.at > stop.at and "blocks" in final.args
        assert fake_slack.calls_to("chat.postMessage") == []
        [answer] = b.answers("C1", ts)
        assert answer["ts"] == start.response["ts"]


@pytest.mark.parametrize("refusal", ["not_allowed", "unknown_method"])
def test_update_fallback_when_streaming_refused(index, fake_slack, fake_ollama, refusal) -> None:
    fake_slack.errors["chat.startStream"] = refusal
    words = " ".join(f"word{i}" for i in range(30))
    fake_ollama.responder = lambda *a: f"{words} [1]."
    fake_ollama.token_delay = 0.03  # ~0.9 s
    with Bot(index, fake_slack, fake_ollama, update_interval=0.25) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        assert len(fake_slack.calls_to("chat.startStream")) == 1
        [placeholder] = fake_slack.calls_to("chat.postMessage")
        assert placeholder.args["thread_ts"] == ts and "blocks" not in placeholder.args
        assert placeholder.args["text"].endswith("▍")
        updates = fake_slack.calls_to("chat.update")
        progress, final = updates[:-1], updates[-1]
        assert progress and all("blocks" not in c.args for c in progress)
        times = [placeholder.at] + [c.at for c in progress]
        assert all(later - earlier >= 0.2 for earlier, later in pairwise(times))  # throttled
        assert final.args["ts"] == placeholder.response["ts"] and "blocks" in final.args
        [answer] = b.answers("C1", ts)
        assert sections(answer, "vb_answer") == [f"{words} [1]."]
        # Refusal is remembered: the next answer does not ask to stream again.
        fake_ollama.token_delay = 0.0
        ts2 = b.mention("When is the vaultbot launch?")
        b.settle(2)
        assert len(fake_slack.calls_to("chat.startStream")) == 1 and len(b.answers("C1", ts2)) == 1


def test_access_rules(index, fake_slack, fake_ollama) -> None:
    access = Access.from_dict({
        "slack": {"users": {"UBAD": {"allow": False}},
                  "channels": {"CMEET": {"folders": ["Meetings"]}}},
    })
    fake_ollama.responder = lambda *a: "It is in the notes [1][2][3]."
    with Bot(index, fake_slack, fake_ollama, access=access) as b:
        ts = b.mention("When is the vaultbot launch?", user="UBAD")
        b.settle(1)
        [denied] = fake_slack.calls_to("chat.postEphemeral")
        assert denied.args["user"] == "UBAD" and denied.args["thread_ts"] == ts
        assert denied.args["text"] == "You are not allowed to ask vaultbot questions."
        assert fake_slack.calls_to("chat.postMessage") == [] and not fake_slack.calls_to("reactions.add")
        assert fake_ollama.requests_to("/api/chat") == []

        ts = b.mention("When is the vaultbot launch?", channel="CMEET")
        b.settle(2)
        [answer] = b.answers("CMEET", ts)
        lines = source_lines(answer)
        assert lines and all("file=Meetings%2F" in line for line in lines), lines
        assert all(SOURCE_LINE.match(line) and "|2026-11-02 Weekly sync › " in line for line in lines)
        # The model saw excerpts of Meetings/ notes only.
        prompt = fake_ollama.last("/api/chat").json["messages"][-1]["content"]
        excerpts = re.findall(r"^\[\d+\] (.+)$", prompt, re.M)
        assert excerpts and all(e.startswith("2026-11-02 Weekly sync › ") for e in excerpts)


def test_folder_scoped_channel_never_gets_outside_citations_cached_or_not(
    index, fake_slack, fake_ollama,
) -> None:
    """The same question, first in an open channel (its answer cached with citations from any
    folder), then twice in a channel limited to Meetings/: the scoped channel's answers cite
    Meetings/ only, and its second answer comes from the cache, its own entry."""
    access = Access.from_dict({"slack": {"channels": {"CMEET": {"folders": ["Meetings"]}}}})
    fake_ollama.responder = lambda *a: "It is in the notes [1][2][3]."
    log = QueryLog(index.registry)
    asker = Asker(Retriever(index), OllamaGenerator(fake_ollama.url), cache=AnswerCache(index.registry),
                  querylog=log, vault_name="vault")
    question = "When is the vaultbot launch?"
    with Bot(index, fake_slack, fake_ollama, access=access, asker=asker) as b:
        ts = b.mention(question, channel="C1")
        b.settle(1)
        [open_answer] = b.answers("C1", ts)
        assert any("file=Meetings%2F" not in line for line in source_lines(open_answer))
        for events, chats in ((2, 2), (3, 2)):  # the second scoped ask is a cache hit
            ts = b.mention(question, channel="CMEET")
            b.settle(events)
            [answer] = b.answers("CMEET", ts)
            lines = source_lines(answer)
            assert lines and all("file=Meetings%2F" in line for line in lines), lines
            assert len(fake_ollama.requests_to("/api/chat")) == chats


def test_direct_message_and_empty_mention(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.message("When is the vaultbot launch?", channel="D1", channel_type="im")
        b.settle(1)
        [answer] = b.answers("D1", ts)  # in a thread under the DM
        assert "December 4" in sections(answer, "vb_answer")[0]
        # A follow-up in the DM thread has the history too.
        b.message("and before?", channel="D1", channel_type="im", thread_ts=ts)
        b.settle(2)
        assert any(m["role"] == "assistant" for m in fake_ollama.last("/api/chat").json["messages"])
        assert len(b.answers("D1", ts)) == 2

        ts = b.mention("")
        b.settle(3)
        [help_message] = b.answers("C1", ts)
        assert "mention me with a question" in help_message["text"]
        assert len(fake_ollama.requests_to("/api/chat")) == 2


def test_socket_mode(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    querylog = QueryLog(index.registry)
    asker = Asker(Retriever(index), OllamaGenerator(fake_ollama.url), querylog=querylog,
                  vault_name="vault")
    app = build_slack_app(asker, querylog, Access(), bot_token=BOT_TOKEN, api_url=fake_slack.api_url)
    with pytest.raises(ValueError, match="SLACK_SIGNING_SECRET"):
        mount_http(FastAPI(), app)  # unsigned HTTP would accept forged events
    with pytest.raises(SlackConfigError, match="SLACK_APP_TOKEN: invalid_auth"):
        SocketModeThread(app, "xapp-1-wrong").start(timeout=10)
    handle = SocketModeThread(app, APP_TOKEN).start()
    try:
        fake_slack.wait_for(lambda: fake_slack.connected_sockets == 1)
        opened = fake_slack.calls_to("apps.connections.open")
        assert [(c.token == APP_TOKEN, c.ok) for c in opened] == [(False, False), (True, True), (True, True)]
        text = "<@UBOT> When is the vaultbot launch?"
        ts = fake_slack.add_message("C1", text)
        envelope = fake_slack.push_event({
            "team_id": "T1", "api_app_id": "A1", "type": "event_callback", "event_id": "EvSOCK1",
            "event": {"type": "app_mention", "user": "U1", "text": text, "ts": ts,
                      "channel": "C1", "event_ts": ts, "team": "T1"},
        })
        fake_slack.wait_for(lambda: any(a.get("envelope_id") == envelope for a in fake_slack.socket_acks))
        fake_slack.wait_for(lambda: [m for m in fake_slack.bot_messages("C1", ts) if m.get("blocks")]
                            and fake_slack.calls_to("reactions.remove"))
        [answer] = [m for m in fake_slack.bot_messages("C1", ts) if m.get("blocks")]
        assert "December 4" in sections(answer, "vb_answer")[0]
    finally:
        handle.stop()
    fake_slack.wait_for(lambda: fake_slack.connected_sockets == 0)


def test_a_queued_question_shows_its_place_in_the_thread_status(index, fake_slack,
                                                                fake_ollama) -> None:
    import asyncio
    import threading

    from engine.llm.queue import GenerationQueue

    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.pause_after = 1  # a question asked elsewhere holds the only slot
    queue = GenerationQueue({"qwen2.5:7b-instruct": 1})
    asker = Asker(Retriever(index), OllamaGenerator(fake_ollama.url), vault_name="vault",
                  queue=queue)
    with Bot(index, fake_slack, fake_ollama, asker=asker) as b:
        busy = threading.Thread(
            target=lambda: asyncio.run(asker.ask("How long does the bread bake?")))
        busy.start()
        while not fake_ollama.requests_to("/api/chat"):
            time.sleep(0.01)
        ts = b.mention("when is the vaultbot launch?")
        deadline = time.monotonic() + 15
        while not any(c.args.get("status") == "waiting: 1 question ahead"
                      for c in fake_slack.calls_to("assistant.threads.setStatus")):
            assert time.monotonic() < deadline, fake_slack.methods()
            time.sleep(0.02)
        fake_ollama.resume()
        busy.join(15)
        b.settle(1)
        [answer] = b.answers("C1", ts)
    assert "December 4" in sections(answer, "vb_answer")[0]


def test_sources_link_the_note_page_when_serve_makes_one(index, fake_slack, fake_ollama) -> None:
    """With note pages (VAULTBOT_PUBLIC_URL or serve's address), the message Slack receives
    links each source to its page first and keeps "Open in Obsidian" beside it."""
    fake_ollama.responder = lambda *a: LAUNCH
    gen = OllamaGenerator(fake_ollama.url, first_token_timeout=10)
    asker = Asker(Retriever(index), gen, vault_name="vault",
                  page_link=lambda c, scope: f"https://vault.example.ts.net/n/t{c.n}#cited")
    with Bot(index, fake_slack, fake_ollama, asker=asker) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        [answer] = b.answers("C1", ts)
        lines = source_lines(answer)
        assert lines and all("<https://vault.example.ts.net/n/t" in line for line in lines), lines
        assert all("Open in Obsidian>" in line and "obsidian://open?" in line for line in lines)
        page = lines[0].index("https://vault.example.ts.net/n/")
        assert page < lines[0].index("obsidian://open?")
