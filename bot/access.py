"""Who may ask, and what they may see: a YAML file maps Slack channels, Discord guilds and
channels, and users, to scopes. Private notes never reach a bot whatever the file says.

Example (docs/configuration.md describes every key):

    private:                 # never shown to any bot, on top of `private: true` frontmatter
      folders: [Private, HR]
      tags: [secret]
    default:                 # where no rule below matches
      folders: []            # empty: the whole vault
    slack:
      channels:
        C0123456:            # this channel sees Work/ only
          folders: [Work]
          users: [U111, U222]   # and only these people may ask there
      users:
        U999: {allow: false}
        U111: {folders: [Work/Team]}   # narrows whatever the channel shows U111
    discord:
      guilds:
        "112233": {folders: [Work]}
      channels:
        "445566": {folders: [Work/Team], tags: [public]}
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from engine.models import Scope


class AccessDenied(Exception):
    """This person may not ask here; the message is safe to show them."""


@dataclass(frozen=True)
class Rule:
    folders: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    users: tuple[str, ...] = ()  # empty: anyone
    allow: bool = True

    @classmethod
    def parse(cls, data: Any, where: str) -> Rule:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"access file: {where} must be a mapping")
        unknown = set(data) - {"folders", "tags", "users", "allow"}
        if unknown:
            raise ValueError(f"access file: {where} has unknown keys {sorted(unknown)}")
        return cls(
            folders=_strs(data.get("folders"), f"{where}.folders"),
            tags=_strs(data.get("tags"), f"{where}.tags"),
            users=_strs(data.get("users"), f"{where}.users"),
            allow=bool(data.get("allow", True)),
        )


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str | int):
        return (str(value),)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    raise ValueError(f"access file: {where} must be a list")


@dataclass(frozen=True)
class Access:
    private_folders: tuple[str, ...] = ()
    private_tags: tuple[str, ...] = ()
    default: Rule = field(default_factory=Rule)
    rules: dict[str, Rule] = field(default_factory=dict)  # "slack:channel:C1", "discord:guild:1"

    @classmethod
    def load(cls, path: Path | None) -> Access:
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read access file {path}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Access:
        if not isinstance(data, dict):
            raise ValueError("access file: the top level must be a mapping")
        private = data.get("private") or {}
        rules: dict[str, Rule] = {}
        for platform, kinds in (("slack", ("channels", "users")),
                                ("discord", ("guilds", "channels", "users"))):
            section = data.get(platform) or {}
            for kind in kinds:
                for key, rule in (section.get(kind) or {}).items():
                    name = f"{platform}:{kind[:-1]}:{key}"
                    rules[name] = Rule.parse(rule, name)
        return cls(
            private_folders=_strs(private.get("folders"), "private.folders"),
            private_tags=_strs(private.get("tags"), "private.tags"),
            default=Rule.parse(data.get("default"), "default"),
            rules=rules,
        )

    def scope_for(self, platform: str, *, user: str, channel: str | None = None,
                  guild: str | None = None) -> Scope:
        """The scope for a question, or AccessDenied. The most specific place rule wins
        (channel, then guild, then default); a user rule denies, or narrows the place's folders
        and tags to what both allow (a user never sees more than the place shows)."""
        user_rule = self.rules.get(f"{platform}:user:{user}")
        if user_rule is not None and not user_rule.allow:
            raise AccessDenied("You are not allowed to ask vaultbot questions.")
        rule = self.default
        for key in (f"{platform}:guild:{guild}" if guild else None,
                    f"{platform}:channel:{channel}" if channel else None):
            if key and key in self.rules:
                rule = self.rules[key]
        if not rule.allow:
            raise AccessDenied("vaultbot does not answer here.")
        if rule.users and user not in rule.users:
            raise AccessDenied("You are not allowed to ask vaultbot questions here.")
        scope = replace(self.base_scope(), folders=rule.folders, tags=rule.tags)
        if user_rule is not None:
            narrowed = scope.narrowed(user_rule.folders, user_rule.tags)
            if narrowed is None:
                raise AccessDenied("None of the notes you may see are shown here.")
            scope = narrowed
        return scope

    def base_scope(self) -> Scope:
        """What anything outside the bots (the HTTP API) may see at most: no private notes."""
        return Scope(exclude_folders=self.private_folders, exclude_tags=self.private_tags,
                     include_private=False)

