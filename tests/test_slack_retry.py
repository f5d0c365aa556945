"""Slack's rate limits and flaky connections: the real Bolt app against the fake Slack, which
answers 429 with Retry-After or drops connections for the first calls of a method. The answer
still arrives, once; a final chat.update that fails leaves one message, not two."""

from __future__ import annotations

import pytest
from fakes.slack_api import FakeSlack
from test_slack import LAUNCH, Bot, sections


def _statuses(slack: FakeSlack, method: str) -> list[str]:
    return [str(c.response.get("error") or ("dropped" if c.response.get("dropped") else "ok"))
            for c in slack.calls_to(method)]


@pytest.mark.parametrize("streaming", [True, False])
def test_rate_limited_calls_are_retried(index, fake_slack: FakeSlack, fake_ollama,
                                        streaming: bool) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.token_delay = 0.05  # long enough for progress before the final message
    first = "chat.startStream" if streaming else "chat.postMessage"
    fake_slack.rate_limits = {first: 2, "chat.update": 2}
    with Bot(index, fake_slack, fake_ollama, streaming=streaming) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1, timeout=30)
        [answer] = b.answers("C1", ts)
        assert "December 4" in sections(answer, "vb_answer")[0]
        assert len(fake_slack.bot_messages("C1", ts)) == 1  # retried, not posted twice
        assert _statuses(fake_slack, first)[:3] == ["ratelimited", "ratelimited", "ok"]
        assert _statuses(fake_slack, "chat.update")[-1] == "ok"


def test_dropped_connections_are_retried(index, fake_slack: FakeSlack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.token_delay = 0.05
    fake_slack.drops = {"chat.startStream": 1, "chat.update": 1}
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1, timeout=30)
        [answer] = b.answers("C1", ts)
        assert "December 4" in sections(answer, "vb_answer")[0]
        assert len(fake_slack.bot_messages("C1", ts)) == 1
        assert _statuses(fake_slack, "chat.update") == ["dropped", "ok"]


@pytest.mark.parametrize("failure", ["fatal_error", "rate limited for good"])
@pytest.mark.parametrize("streaming", [True, False])
def test_failed_final_update_posts_no_second_message(index, fake_slack: FakeSlack, fake_ollama,
                                                     failure: str, streaming: bool) -> None:
    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.token_delay = 0.05  # progress is shown (streamed or a placeholder) first
    if failure == "fatal_error":
        fake_slack.errors["chat.update"] = "fatal_error"
    else:
        fake_slack.rate_limits["chat.update"] = 100  # more than the bot's retries
    with Bot(index, fake_slack, fake_ollama, streaming=streaming) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1, timeout=60)
        assert fake_slack.calls_to("chat.update")  # the final replace was tried, and failed
        assert not any(c.ok for c in fake_slack.calls_to("chat.update"))
        # The progress message stays the answer; nothing posted beside it.
        [reply] = fake_slack.bot_messages("C1", ts)
        if streaming:  # the stream carried the whole text, to its last token
            assert "December 4" in reply["text"] and reply["text"].endswith("November 27 [2].")


def test_final_update_on_a_vanished_message_posts_the_answer(index, fake_slack: FakeSlack,
                                                             fake_ollama) -> None:
    """The one case where a new message is right: Slack says the message is gone."""
    fake_ollama.responder = lambda *a: LAUNCH
    fake_ollama.token_delay = 0.05
    fake_slack.errors["chat.update"] = "message_not_found"
    with Bot(index, fake_slack, fake_ollama) as b:
        ts = b.mention("When is the vaultbot launch?")
        b.settle(1, timeout=30)
        [answer] = b.answers("C1", ts)
        assert "December 4" in sections(answer, "vb_answer")[0]
