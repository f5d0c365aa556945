"""Private answers in Slack, with the real Bolt app on the fake Slack: `/vault` (HTTP and Socket
Mode), its "Share to channel" button, and the message shortcut's modal."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack
from test_slack import LAUNCH, Bot, sections

from bot.access import Access
from bot.render_slack_views import ASK_MODAL, SHARE_ACTION, SHORTCUT
from bot.slack import SocketModeThread, build_slack_app
from engine.answer import Asker
from engine.llm.ollama import OllamaGenerator
from engine.querylog import QueryLog
from engine.retrieve import Retriever


def command_fields(slack: FakeSlack, text: str, *, channel: str = "C1",
                   user: str = "U1") -> dict[str, str]:
    """A slash command's fields, as Slack sends them (form-encoded over HTTP)."""
    return {"token": "legacy", "team_id": "T1", "team_domain": "fake", "channel_id": channel,
            "channel_name": "general", "user_id": user, "user_name": "mina",
            "command": "/vault", "text": text, "api_app_id": "A1",
            "is_enterprise_install": "false", "response_url": slack.new_response_url(),
            "trigger_id": slack.new_trigger()}


def interaction(b: Bot, payload: dict[str, Any]) -> None:
    r = b.post(urlencode({"payload": json.dumps(payload)}).encode(),
               "application/x-www-form-urlencoded")
    assert r.status_code == 200, r.text


def answered_privately(slack: FakeSlack) -> list[dict[str, Any]]:
    return slack.wait_for(lambda: [r["body"] for r in slack.responses if r["body"].get("blocks")
                                   and any(b.get("block_id") == "vb_share"
                                           for b in r["body"]["blocks"])])


def test_vault_command_answers_privately_and_shares(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.token_delay = 0.05
    with Bot(index, fake_slack, fake_ollama) as b:
        fields = command_fields(fake_slack, "When is the vaultbot launch?")
        t0 = time.monotonic()
        r = b.post(urlencode(fields).encode(), "application/x-www-form-urlencoded")
        acked = time.monotonic() - t0
        # Acknowledged at once (Slack gives 3 s), with a private "looking" line.
        assert r.status_code == 200 and acked < 3.0 and "Looking in the notes" in r.text
        [private] = answered_privately(fake_slack)
        b.settle(1)
        assert private["response_type"] == "ephemeral"
        assert "December 4" in sections(private, "vb_answer")[0]
        assert sections(private, "vb_sources")  # with its sources
        # Never in the channel: no message posted, nothing streamed, nothing public at all.
        assert fake_slack.bot_messages("C1") == []
        assert not set(fake_slack.methods()) & {"chat.postMessage", "chat.startStream", "chat.update"}

        # "Share to channel" posts it to the channel as the bot, and the private copy goes.
        share = next(e for blk in private["blocks"] if blk.get("block_id") == "vb_share"
                     for e in blk["elements"])
        assert share["action_id"] == SHARE_ACTION
        payload = {
            "type": "block_actions", "api_app_id": "A1", "token": "legacy",
            "trigger_id": fake_slack.new_trigger(), "team": {"id": "T1"},
            "user": {"id": "U1", "username": "mina", "team_id": "T1"},
            "container": {"type": "message", "message_ts": "1700000000.000001",
                          "channel_id": "C1", "is_ephemeral": True},
            "channel": {"id": "C1", "name": "general"}, "response_url": fields["response_url"],
            "actions": [{"type": "button", "action_id": SHARE_ACTION, "block_id": "vb_share",
                         "value": share["value"], "action_ts": str(time.time())}],
        }
        # Someone else's click on a copy of the button shares nothing.
        interaction(b, {**payload, "user": {"id": "U2", "username": "eve", "team_id": "T1"}})
        b.settle(2)
        assert fake_slack.bot_messages("C1") == []
        interaction(b, payload)
        b.settle(3)
        [shared] = fake_slack.bot_messages("C1")
        assert "thread_ts" not in shared and "December 4" in sections(shared, "vb_answer")[0]
        assert "Shared by <@U1>" in json.dumps(shared["blocks"])
        assert not any(blk.get("block_id") == "vb_share" for blk in shared["blocks"])
        assert fake_slack.responses[-1]["body"] == {"delete_original": True}


def test_vault_command_refused_and_help_in_the_ack(index, fake_slack, fake_ollama) -> None:
    access = Access.from_dict({"slack": {"channels": {"C9": {"allow": False}}}})
    with Bot(index, fake_slack, fake_ollama, access=access) as b:
        r = b.post(urlencode(command_fields(fake_slack, "launch?", channel="C9")).encode(),
                   "application/x-www-form-urlencoded")
        assert r.status_code == 200 and "does not answer here" in r.text
        r = b.post(urlencode(command_fields(fake_slack, "  ")).encode(),
                   "application/x-www-form-urlencoded")
        assert "/vault when is the launch?" in r.text
        b.settle(2)
        assert fake_slack.responses == [] and fake_ollama.requests_to("/api/chat") == []


def test_vault_command_over_socket_mode(index, fake_slack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    querylog = QueryLog(index.registry)
    asker = Asker(Retriever(index), OllamaGenerator(fake_ollama.url), querylog=querylog,
                  vault_name="vault")
    app = build_slack_app(asker, querylog, Access(), bot_token=BOT_TOKEN, api_url=fake_slack.api_url)
    handle = SocketModeThread(app, APP_TOKEN).start()
    try:
        fake_slack.wait_for(lambda: fake_slack.connected_sockets == 1)
        t0 = time.monotonic()
        envelope = fake_slack.push_envelope("slash_commands", command_fields(
            fake_slack, "When is the vaultbot launch?"))
        ack = fake_slack.ack_for(envelope)
        assert time.monotonic() - t0 < 3.0
        assert "Looking in the notes" in ack["payload"]["text"]
        [private] = answered_privately(fake_slack)
        assert "December 4" in sections(private, "vb_answer")[0]
        assert fake_slack.bot_messages("C1") == []
    finally:
        handle.stop()


@pytest.mark.parametrize("where", ["thread", "private"])
def test_message_shortcut_opens_a_modal_and_answers(index, fake_slack, fake_ollama,
                                                    where) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    with Bot(index, fake_slack, fake_ollama) as b:
        root = fake_slack.add_message("C1", "Does anyone know when the vaultbot launch is?",
                                      user="U2")
        message = fake_slack.find("C1", root)
        interaction(b, {
            "type": "message_action", "callback_id": SHORTCUT, "token": "legacy",
            "action_ts": str(time.time()), "trigger_id": fake_slack.new_trigger(),
            "team": {"id": "T1", "domain": "fake"}, "is_enterprise_install": False,
            "user": {"id": "U1", "username": "mina", "team_id": "T1", "name": "mina"},
            "channel": {"id": "C1", "name": "general"}, "message_ts": root,
            "response_url": fake_slack.new_response_url(), "message": message,
        })
        [modal] = fake_slack.wait_for(lambda: fake_slack.opened)
        assert modal["callback_id"] == ASK_MODAL
        question = modal["blocks"][0]["element"]
        assert question["initial_value"] == "Does anyone know when the vaultbot launch is?"
        # The person submits it (edited), choosing where the answer goes.
        where_block = modal["blocks"][1]["element"]
        option = next(o for o in where_block["options"] if o["value"] == where)
        interaction(b, {
            "type": "view_submission", "team": {"id": "T1", "domain": "fake"},
            "user": {"id": "U1", "username": "mina", "team_id": "T1"}, "api_app_id": "A1",
            "token": "legacy", "trigger_id": fake_slack.new_trigger(),
            "view": {**modal, "hash": "1.abc", "state": {"values": {
                "vb_question": {"question": {"type": "plain_text_input",
                                             "value": "When is the vaultbot launch?"}},
                "vb_where": {"where": {"type": "radio_buttons", "selected_option": option}},
            }}},
            "response_urls": [],
        })
        b.settle(2)
        if where == "thread":
            [answer] = b.answers("C1", root)
            assert "December 4" in sections(answer, "vb_answer")[0]
            assert fake_slack.ephemeral == []
        else:
            [private] = fake_slack.wait_for(lambda: fake_slack.ephemeral)
            assert private["user"] == "U1" and private["channel"] == "C1"
            assert "December 4" in json.dumps(private["blocks"])
            assert fake_slack.bot_messages("C1") == []


def test_fake_refuses_views_as_slack_does(fake_slack) -> None:
    """The fake's view checks: a stale or reused trigger, a too-long title, no submit."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from bot.render_slack_views import ask_modal

    client = WebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    view = ask_modal("q", {"channel": "C1"})
    trigger = fake_slack.new_trigger()
    assert client.views_open(trigger_id=trigger, view=view)["ok"]
    for bad_trigger, error in [(trigger, "exchanged_trigger_id"), ("1.2.3", "invalid_trigger_id")]:
        with pytest.raises(SlackApiError, match=error):
            client.views_open(trigger_id=bad_trigger, view=view)
    for broken in [{**view, "title": {"type": "plain_text", "text": "x" * 25}},
                   {k: v for k, v in view.items() if k != "submit"},
                   {**view, "type": "home"}]:
        with pytest.raises(SlackApiError, match="invalid_arguments"):
            client.views_open(trigger_id=fake_slack.new_trigger(), view=broken)


def test_manifest_declares_the_command_shortcut_and_home() -> None:
    import yaml

    manifest = yaml.safe_load((Path(__file__).parent.parent / "deploy" / "slack-manifest.yaml")
                              .read_text())
    features = manifest["features"]
    assert [c["command"] for c in features["slash_commands"]] == ["/vault"]
    [shortcut] = features["shortcuts"]
    assert shortcut["type"] == "message" and shortcut["callback_id"] == SHORTCUT
    assert len(shortcut["name"]) <= 24 and features["app_home"]["home_tab_enabled"] is True
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
