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
          respond_to: mentions  # only @mentions; `thread` (default): every message in a
                                # thread the bot answered in
      users:
        U999: {allow: false}
        U111: {folders: [Work/Team]}   # narrows whatever the channel shows U111
    discord:
      guilds:
        "112233": {folders: [Work]}
      channels:
        "445566": {folders: [Work/Team], tags: [public]}
    mcp: {folders: [Work]}   # AI clients over MCP (`vaultbot mcp`, /mcp); absent: `default`
    openai: {allow: false}   # /v1 (OpenAI-compatible); private notes never, on either

Any other key is an error (a typo ignored could show what was meant to be hidden).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml

from engine.models import Scope

log = logging.getLogger(__name__)

PLACES = ("mcp", "openai")  # front ends that are one place each (docs/clients.md)
PLATFORMS = {"slack": ("channels", "users"), "discord": ("guilds", "channels", "users")}
# Every key the file may hold at the top and in its sections: anything else is a load error,
# since a typo (`privat:`) silently ignored could show notes meant to be hidden.
TOP_KEYS = ("private", "default", *PLATFORMS, *PLACES)
PRIVATE_KEYS = ("folders", "tags")


RESPOND_TO = ("mentions", "thread")  # a channel's `respond_to:` (docs/configuration.md)
RULE_KEYS = ("folders", "tags", "users", "allow", "respond_to")


class AccessDenied(Exception):
    """This person may not ask here; the message is safe to show them."""


@runtime_checkable
class AccessRules(Protocol):
    """What the front ends ask of the rules: an `Access`, or the `AccessFile` that follows its
    file (bot/access_file.py; it raises `AccessBroken` while the file does not load)."""

    def scope_for(self, platform: str, *, user: str, channel: str | None = None,
                  guild: str | None = None) -> Scope: ...

    def place_scope(self, place: str) -> Scope: ...

    def respond_to(self, platform: str, channel: str | None) -> str: ...

    def base_scope(self) -> Scope: ...


@dataclass(frozen=True)
class Rule:
    folders: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    users: tuple[str, ...] = ()  # empty: anyone
    allow: bool = True
    respond_to: str | None = None  # "mentions" | "thread"; None: the default rule's, else thread

    @classmethod
    def parse(cls, data: Any, where: str) -> Rule:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"access file: {where} must be a mapping")
        _known(data, where, RULE_KEYS)
        respond_to = data.get("respond_to")
        if respond_to not in (None, *RESPOND_TO):
            raise ValueError(f"access file: {where}.respond_to must be one of {list(RESPOND_TO)}")
        return cls(
            folders=_strs(data.get("folders"), f"{where}.folders"),
            tags=_strs(data.get("tags"), f"{where}.tags"),
            users=_strs(data.get("users"), f"{where}.users"),
            allow=bool(data.get("allow", True)),
            respond_to=respond_to,
        )


def _section(value: Any, where: str, keys: tuple[str, ...] | None = None) -> dict[Any, Any]:
    """`value` as a mapping (None: empty); ValueError naming `where` if it is not one, or if
    `keys` is given and it holds a key not in it (the error lists the valid ones)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"access file: {where} must be a mapping")
    if keys is not None:
        _known(value, where, keys)
    return value


def _known(data: dict[Any, Any], where: str, keys: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in data if k not in keys)
    if unknown:
        raise ValueError(f"access file: {where} has unknown keys {unknown}; "
                         f"valid: {', '.join(keys)}")


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
    def load(cls, path: Path | None, *, allow_empty: bool = True) -> Access:
        """The rules in `path` (None: no file, no rules); ValueError when they do not load.
        An empty file (nothing but whitespace) is no rules with a warning, or, with
        `allow_empty=False` (a re-read after a change: an editor may have truncated it and not
        yet written it), an error; `{}` says "no rules" on purpose."""
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read access file {path}: {exc}") from exc
        if not text.strip():
            if not allow_empty:
                raise ValueError(f"access file {path} is empty; write {{}} for no rules")
            log.warning("access file %s is empty: no rules, every place sees the whole vault "
                        "but private notes; write {} to say so on purpose", path)
            return cls()
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"cannot read access file {path}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Access:
        data = _section(data, "the top level", TOP_KEYS)
        private = _section(data.get("private"), "private", PRIVATE_KEYS)
        rules: dict[str, Rule] = {}
        for platform, kinds in PLATFORMS.items():
            section = _section(data.get(platform), platform, kinds)
            for kind in kinds:
                for key, rule in _section(section.get(kind), f"{platform}.{kind}").items():
                    name = f"{platform}:{kind[:-1]}:{key}"
                    rules[name] = Rule.parse(rule, name)
        for place in PLACES:  # no users there (a bearer token is no person), no private notes
            if data.get(place) is not None:
                rules[place] = Rule.parse(data[place], place)
                if rules[place].users:
                    raise ValueError(f"access file: {place} has no users to match; remove users")
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

    def place_scope(self, place: str) -> Scope:
        """The scope of a front end with no channels or users (`mcp`, `openai`): its rule, else
        `default`; never private notes. AccessDenied when the rule says `allow: false`."""
        rule = self.rules.get(place, self.default) if place in PLACES else Rule(allow=False)
        if not rule.allow:
            raise AccessDenied(f"the access file does not let {place} clients ask vaultbot.")
        return replace(self.base_scope(), folders=rule.folders, tags=rule.tags)

    def respond_to(self, platform: str, channel: str | None) -> str:
        """What the bot answers in `channel`'s threads: "mentions" (only @mentions) or
        "thread" (every message in a thread it answered in): the channel's rule, else
        `default`'s, else "thread"."""
        rule = self.rules.get(f"{platform}:channel:{channel}") if channel else None
        return (rule and rule.respond_to) or self.default.respond_to or "thread"

    def base_scope(self) -> Scope:
        """What anything outside the bots (the HTTP API) may see at most: no private notes."""
        return Scope(exclude_folders=self.private_folders, exclude_tags=self.private_tags,
                     include_private=False)

