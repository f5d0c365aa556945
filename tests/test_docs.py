"""The docs stay true: every setting is documented, and the README opens with the two
set-up commands that CI runs."""

from __future__ import annotations

import re

from corpus import ROOT

from vaultbot.settings import Settings


def _env_names() -> list[str]:
    names = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        names.append(alias.choices[0] if alias is not None else f"VAULTBOT_{name.upper()}")
    return names


def test_every_setting_is_documented() -> None:
    config = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for env in _env_names():
        assert f"`{env}`" in config, f"{env} missing from docs/configuration.md"
        assert re.search(rf"^{env}=", example, re.M), f"{env} missing from .env.example"


def test_readme_opens_with_the_two_commands_ci_uses() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    commands = [line.split("#")[0].strip() for line in block]
    assert commands == ["scripts/demo", "scripts/test"]
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()
