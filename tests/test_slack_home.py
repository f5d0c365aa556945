"""Slack's App Home, per-channel `respond_to`, the access file reloaded, the attachment notice,
and 👎 with a reason (listed by `vaultbot stats`), with the real Bolt app on the fake Slack."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import pytest
from test_slack import LAUNCH, Bot
from test_slack_private import interaction

from bot.access import Access
from bot.access_file import AccessFile
from bot.render_slack import FEEDBACK_DOWN
from bot.render_slack_views import REASON_MODAL
from vaultbot.cli import cmd_stats


def home_event(b: Bot, user: str = "U1") -> None:
    r = b.event({"type": "app_home_opened", "user": user, "channel": "D1", "tab": "home",
                 "event_ts": str(time.time())})
    assert r.status_code == 200


def test_app_home_shows_status_recent_questions_and_places(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    access = Access.from_dict({"private": {"folders": ["Secret"]}, "slack": {"channels": {
        "C7": {"folders": ["Projects"], "respond_to": "mentions"}, "C8": {"allow": False}}}})
    status = {"notes": 6, "last_sync": time.time() - 120, "skipped": 1, "ollama": False}
    with Bot(index, fake_slack, fake_ollama, access=access, status=lambda: status) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        home_event(b)
        b.settle(2)
        view = fake_slack.views["U1"]
        [publish] = fake_slack.calls_to("views.publish")
        assert publish.ok and publish.args["user_id"] == "U1" and view["type"] == "home"
        text = json.dumps(view["blocks"], ensure_ascii=False)
        assert "*Notes indexed:* 6" in text and "*Skipped files:* 1" in text
        assert "2 min ago" in text and "not reachable" in text
        # The question asked, with a link to its answer in the thread.
        [answer] = b.answers("C1", ts)
        assert "When is the vaultbot launch?" in text
        assert f"p{answer['ts'].replace('.', '')}|answer>" in text
        # What the channels may see, and no private folder named.
        assert "<#C7>: sees Projects/ · answers @mentions only" in text
        assert "<#C8>: not answered" in text and "Secret" not in text
        # Someone else's App Home has no questions of U1's.
        home_event(b, user="U2")
        b.settle(3)
        assert "vaultbot launch" not in json.dumps(fake_slack.views["U2"]["blocks"])


@pytest.mark.parametrize("respond_to", ["thread", "mentions"])
def test_respond_to_per_channel(index, fake_slack, fake_ollama, respond_to) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    access = Access.from_dict({"slack": {"channels": {"C1": {"respond_to": respond_to}}}})
    with Bot(index, fake_slack, fake_ollama, access=access) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        b.message("And why did it move?", thread_ts=ts)  # in the thread, no mention
        b.settle(2)
        answered = len(b.answers("C1", ts))
        assert answered == (2 if respond_to == "thread" else 1)
        b.mention("Why did it move?", thread_ts=ts)  # a mention is always answered
        b.settle(3)
        assert len(b.answers("C1", ts)) == answered + 1


def test_respond_to_is_checked_in_the_access_file() -> None:
    with pytest.raises(ValueError, match="respond_to must be one of"):
        Access.from_dict({"slack": {"channels": {"C1": {"respond_to": "everything"}}}})
    access = Access.from_dict({"default": {"respond_to": "mentions"},
                               "slack": {"channels": {"C1": {"respond_to": "thread"}}}})
    assert access.respond_to("slack", "C1") == "thread"
    assert access.respond_to("slack", "C2") == "mentions"
    assert Access().respond_to("slack", "C2") == "thread"


def _write(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))  # a visible change


def test_access_file_is_reloaded_and_a_bad_one_refuses(index, fake_slack, fake_ollama,
                                                        tmp_path, caplog) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    path = tmp_path / "access.yaml"
    _write(path, "slack:\n  channels:\n    C1: {folders: []}\n")
    with Bot(index, fake_slack, fake_ollama, access=AccessFile(path)) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        assert len(b.answers("C1", ts)) == 1
        _write(path, "slack:\n  channels:\n    C1: {allow: false}\n")  # no restart
        b.mention("When is the vaultbot launch?")
        b.settle(2)
        [refusal] = fake_slack.calls_to("chat.postEphemeral")
        assert "does not answer here" in refusal.args["text"]
        # A broken file: everything is refused (the old rules do not stay), said to the
        # asker without the file's path or content, and once in the log with the error.
        # C2 had no rule (the default: answered) before the file broke.
        caplog.set_level(logging.WARNING, logger="bot.access_file")
        _write(path, "slack: [unclosed\n")
        b.mention("When is the vaultbot launch?")
        b.mention("When is the vaultbot launch?", channel="C2")
        b.settle(4)
        refusals = fake_slack.calls_to("chat.postEphemeral")
        assert len(refusals) == 3 and not fake_slack.bot_messages("C2")
        assert all("access rules are broken" in r.args["text"] and str(path) not in
                   r.args["text"] for r in refusals[1:])
        warnings = [r for r in caplog.records if r.name == "bot.access_file"]
        assert len(warnings) == 1 and "refused until it is fixed" in warnings[0].getMessage()
        assert "cannot read access file" in warnings[0].getMessage()
        _write(path, "slack:\n  channels:\n    C1: {folders: []}\n")  # fixed: answers again
        ts = b.mention("When is the vaultbot launch?")
        b.settle(5)
        assert len(b.answers("C1", ts)) == 1


def test_a_question_with_files_says_they_are_not_read(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    with Bot(index, fake_slack, fake_ollama) as b:
        files = [{"id": "F1", "name": "plan.pdf", "mimetype": "application/pdf",
                  "filetype": "pdf", "mode": "hosted"}]
        for n, text in enumerate(["<@UBOT> When is the vaultbot launch?", "<@UBOT>"], start=1):
            ts = fake_slack.add_message("C1", text, files=files)
            b.event({"type": "app_mention", "user": "U1", "text": text, "ts": ts,
                     "channel": "C1", "event_ts": ts, "team": "T1", "files": files})
            b.settle(n)
            notices = [m for m in b.answers("C1", ts) if "attachments are not read" in m["text"]]
            assert len(notices) == 1
        # The first was answered as well; the file-only one got the notice, not the help.
        assert any("December 4" in json.dumps(m["blocks"]) for m in fake_slack.bot_messages("C1"))
        assert not any("mention me with a question" in m["text"]
                       for m in fake_slack.bot_messages("C1"))


def test_thumbs_down_asks_for_a_reason_and_stats_lists_it(index, fake_slack, fake_ollama,
                                                          capsys) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1)
        [answer] = b.answers("C1", ts)
        down = next(e for e in answer["blocks"][-1]["elements"] if e["action_id"] == FEEDBACK_DOWN)
        query_id = int(down["value"])
        interaction(b, {
            "type": "block_actions", "api_app_id": "A1", "token": "legacy",
            "trigger_id": fake_slack.new_trigger(), "team": {"id": "T1"},
            "user": {"id": "U1", "username": "mina", "team_id": "T1"},
            "container": {"type": "message", "message_ts": answer["ts"], "channel_id": "C1",
                          "is_ephemeral": False, "thread_ts": ts},
            "channel": {"id": "C1", "name": "general"}, "message": answer,
            "response_url": fake_slack.new_response_url(),
            "actions": [{"type": "button", "action_id": FEEDBACK_DOWN, "block_id": "vb_feedback",
                         "value": down["value"], "action_ts": str(time.time())}],
        })
        b.settle(2)
        assert b.querylog.get(query_id)["feedback"] == -1  # the vote counts without a reason
        [modal] = fake_slack.opened
        assert modal["callback_id"] == REASON_MODAL
        interaction(b, {
            "type": "view_submission", "team": {"id": "T1"}, "api_app_id": "A1",
            "user": {"id": "U1", "username": "mina", "team_id": "T1"}, "token": "legacy",
            "trigger_id": fake_slack.new_trigger(),
            "view": {**modal, "state": {"values": {"vb_reason": {"reason": {
                "type": "plain_text_input", "value": "The date moved again: it is December 11"}}}}},
        })
        b.settle(3)
        row = b.querylog.get(query_id)
        assert row["feedback"] == -1 and row["feedback_note"] == "The date moved again: it is December 11"

        assert cmd_stats(SimpleNamespace(querylog=b.querylog),  # type: ignore[arg-type]
                         argparse.Namespace(days=0, json=False)) == 0
        out = capsys.readouterr().out
        assert "latest 👎" in out and "When is the vaultbot launch?" in out
        # The answer the person saw, citation markers included (what the 👎 was about).
        assert "answer: The launch is on **December 4** [1], moved from November 27 [2]." in out
        assert row["answer"].startswith(LAUNCH) and row["user"] == "U1"
        assert "reason: The date moved again: it is December 11" in out
        assert "source: " in out and row["sources"][0] in out


def test_app_home_reads_recent_questions_from_the_query_log_after_a_restart(
        index, fake_slack, fake_ollama) -> None:
    """The questions are the query log's, so a new bot process (nothing in memory) still shows
    a person their own questions with the answer's link, and nobody else's. (The index, and
    so its query log, is shared with other tests: the questions here are marked.)"""
    fake_ollama.responder = lambda *a: LAUNCH
    mine, theirs = f"When is the launch, {uuid4().hex[:8]}?", f"Who owns the budget, {uuid4().hex[:8]}?"
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention(mine, user="U7")
        b.mention(theirs, user="U8", channel="C2")
        b.settle(2)
        [answer] = b.answers("C1", ts)
        row = b.querylog.recent_for("U7", "slack")[0]
        assert row["question"] == mine and answer["ts"].replace(".", "") in row["link"]
    with Bot(index, fake_slack, fake_ollama) as again:  # a restart: a new app and query log
        assert not again.bot._asked
        home_event(again, user="U7")
        again.settle(1)
        text = json.dumps(fake_slack.views["U7"]["blocks"], ensure_ascii=False)
        assert mine in text and f"p{answer['ts'].replace('.', '')}|answer>" in text
        assert theirs not in text  # U8's question: only U8 sees it
        home_event(again, user="U8")
        again.settle(2)
        text = json.dumps(fake_slack.views["U8"]["blocks"], ensure_ascii=False)
        assert theirs in text and mine not in text
