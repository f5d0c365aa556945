"""deploy/ files parse and agree with what the code needs."""

from __future__ import annotations

import plistlib

import yaml
from corpus import ROOT

DEPLOY = ROOT / "deploy"


def test_slack_manifest_has_what_the_bot_listens_to() -> None:
    manifest = yaml.safe_load((DEPLOY / "slack-manifest.yaml").read_text())
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.channels", "message.im"} <= events
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"app_mentions:read", "chat:write", "reactions:write", "channels:history", "im:history"} <= scopes
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_compose_has_the_scale_out_services() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(compose["services"]) == {"vaultbot", "postgres", "chroma", "ollama"}
    env = compose["services"]["vaultbot"]["environment"]
    assert env["VAULTBOT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["VAULTBOT_CHROMA_URL"] == "http://chroma:8000"


def test_launchd_plist_runs_serve() -> None:
    plist = plistlib.loads((DEPLOY / "com.vaultbot.serve.plist").read_bytes())
    assert plist["ProgramArguments"][-1] == "serve" and plist["RunAtLoad"] is True


def test_systemd_unit_runs_serve() -> None:
    unit = (DEPLOY / "vaultbot.service").read_text()
    assert "ExecStart=/opt/vaultbot/.venv/bin/vaultbot serve" in unit and "KillSignal=SIGTERM" in unit


def test_discord_checklist_matches_the_bot() -> None:
    import discord

    from bot.discord_bot import COMMANDS, INVITE_PERMISSIONS, invite_url

    app = yaml.safe_load((DEPLOY / "discord-app.yaml").read_text())
    assert app["permissions"]["integer"] == INVITE_PERMISSIONS.value
    named = discord.Permissions(**dict.fromkeys(app["permissions"]["names"], True))
    assert named.value == INVITE_PERMISSIONS.value
    assert app["invite_url"].replace("<APPLICATION_ID>", "42") == invite_url(42)
    assert set(app["scopes"]) == {"bot", "applications.commands"}
    assert [c["name"] for c in app["commands"]] == list(COMMANDS)
