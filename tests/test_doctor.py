"""`vaultbot doctor` against real parts: an unindexed and an indexed vault, a fake Ollama with
and without the configured models."""

from __future__ import annotations

from pathlib import Path

from corpus import copy_vault

from vaultbot.app import App
from vaultbot.doctor import run_doctor
from vaultbot.settings import Settings


def _by_name(app: App) -> dict:
    return {c.name: c for c in run_doctor(app)}


def test_doctor_names_each_fix(tmp_path: Path, fake_ollama) -> None:
    vault = copy_vault("example", tmp_path)
    settings = Settings(vault=vault, data_dir=tmp_path / "d", ollama_url=fake_ollama.url,
                        llm_deep="qwen2.5:72b-instruct", _env_file=None)
    app = App(settings)
    checks = _by_name(app)
    assert checks["vault"].ok and "6 notes" in checks["vault"].detail
    assert not checks["index"].ok and checks["index"].fix == "run `vaultbot sync`"
    assert checks["embedder"].ok
    assert not checks["ollama"].ok and checks["ollama"].fix == "ollama pull qwen2.5:72b-instruct"
    assert checks["slack"].optional and checks["discord"].optional

    app.indexer.sync()
    app.settings.llm_deep = "qwen2.5:32b-instruct"
    app.__dict__.pop("generator", None)
    checks = _by_name(app)
    assert checks["index"].ok and "6 notes" in checks["index"].detail
    assert checks["ollama"].ok
    app.close()


def test_doctor_without_vault_or_ollama(tmp_path: Path) -> None:
    from fakes.ollama_server import unused_url

    app = App(Settings(vault=None, data_dir=tmp_path / "d", ollama_url=unused_url(), _env_file=None))
    checks = _by_name(app)
    assert not checks["vault"].ok and "VAULTBOT_VAULT" in checks["vault"].fix
    assert not checks["ollama"].ok and "ollama serve" in checks["ollama"].fix
    app.close()


async def test_doctor_checks_slack_and_discord_tokens(tmp_path: Path) -> None:
    import asyncio

    from fakes.discord_api import FakeDiscord
    from fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack

    with FakeSlack() as slack:
        async with FakeDiscord() as discord:
            def settings(**kw) -> Settings:
                return Settings(vault=None, data_dir=tmp_path / "d", llm="none", _env_file=None,
                                slack_api_url=slack.api_url, discord_api_url=discord.api_url, **kw)

            good = App(settings(slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN,
                                discord_bot_token=discord.token))
            checks = await asyncio.to_thread(_by_name, good)
            assert checks["slack"].ok and "socket mode" in checks["slack"].detail
            assert checks["discord"].ok and "oauth2/authorize?client_id=" in checks["discord"].detail
            assert checks["ollama"].optional

            bad = App(settings(slack_bot_token="xoxb-wrong", discord_bot_token="wrong"))
            checks = await asyncio.to_thread(_by_name, bad)
            assert not checks["slack"].ok and "SLACK_BOT_TOKEN" in checks["slack"].fix
            assert not checks["discord"].ok and "DISCORD_BOT_TOKEN" in checks["discord"].fix
            no_app_token = App(settings(slack_bot_token=BOT_TOKEN))
            checks = await asyncio.to_thread(_by_name, no_app_token)
            assert not checks["slack"].ok and "SLACK_APP_TOKEN" in checks["slack"].fix
