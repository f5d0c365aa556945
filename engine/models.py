"""Plain data shared by sync (which writes the index) and the engine (which reads it)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.names import name_key, nfc


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Link:
    """An Obsidian link found in a note: `[[target#heading|alias]]` or `![[target#^block]]`."""

    target: str
    heading: str | None = None
    block: str | None = None
    alias: str | None = None
    embed: bool = False


@dataclass
class ParsedNote:
    """What the parser learns from one file. `body` is the text to chunk (frontmatter removed,
    note embeds resolved). For PDFs `pages` holds (page number, text) and `body` is empty."""

    path: str  # vault-relative, POSIX separators
    kind: str  # "md" or "pdf"
    title: str
    body: str = ""
    pages: list[tuple[int, str]] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # without '#', nested kept as "a/b"
    links: list[Link] = field(default_factory=list)
    frontmatter: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    missing_embeds: list[str] = field(default_factory=list)
    embedded: list[str] = field(default_factory=list)  # vault paths whose text was pulled in
    # (start, end, paths) in `body`: text that came from other notes through ![[embeds]], with
    # every note it came from (nested embeds included). What makes a chunk's provenance.
    embed_regions: list[tuple[int, int, tuple[str, ...]]] = field(default_factory=list)
    # Private notes whose embeds were left out of this (non-private) note's text.
    private_embeds: list[str] = field(default_factory=list)
    # The raw frontmatter text when it is not valid YAML: visibility is then judged on it
    # (fail closed), since the keys that would have said "private" were lost.
    frontmatter_error: str | None = None

    @property
    def private(self) -> bool:
        if self.frontmatter_error is not None and mentions_private(self.frontmatter_error):
            return True
        return is_private_value(self.frontmatter.get("private"))

    @property
    def suspect_tags(self) -> tuple[str, ...]:
        """Words of an unparseable frontmatter: any private tag among them hides the note."""
        return suspect_words(self.frontmatter_error) if self.frontmatter_error else ()


def is_private_value(value: Any) -> bool:
    """`private: true` in frontmatter (YAML booleans, or the words people type)."""
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() in {"true", "yes", "on", "1"}


_PRIVATE_WORD_RE = re.compile(r"(?i)\bprivate\b")
_WORD_RE = re.compile(r"[^\s!-,.:-@\[-^`{-~]+(?:/[^\s!-,.:-@\[-^`{-~]+)*")


def filter_tags(note: Any) -> tuple[str, ...]:
    """The tags a store filters a note's chunks by: its own, plus the words of unparseable
    frontmatter, so that an excluded (private) tag among them hides the chunks already in the
    store (engine/provenance.py still makes the decision). `note`: anything with `tags` and
    `suspect` (a NoteInfo)."""
    return (*note.tags, *note.suspect)


def mentions_private(raw: str) -> bool:
    """Does unparseable frontmatter name the private key at all? (Then the note is private.)"""
    return bool(_PRIVATE_WORD_RE.search(raw))


def suspect_words(raw: str) -> tuple[str, ...]:
    """Every tag-like word of unparseable frontmatter, in canonical form."""
    return tuple(dict.fromkeys(name_key(w.strip("/")) for w in _WORD_RE.findall(raw)))


@dataclass(frozen=True)
class ChunkDraft:
    """A piece of a note as the chunker cuts it, before it has an id."""

    ordinal: int
    text: str
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    span: tuple[int, int] = (0, 0)  # character offsets in the note body (or page text)
    tokens: int = 0
    # A continued table's header rows, repeated in front of `text` from elsewhere in the body.
    prefix_span: tuple[int, int] | None = None

    @property
    def embed_text(self) -> str:
        """What the embedder sees: the heading path, then the text. The file name is left out on
        purpose so that a rename or move never changes what must be embedded."""
        if not self.heading_path:
            return self.text
        return " > ".join(self.heading_path) + "\n\n" + self.text

    @property
    def text_hash(self) -> str:
        return sha256_hex(self.embed_text)

    @property
    def vector_text(self) -> str:
        """What the dense embedder is given: `embed_text` less the markup noise that no reader
        sees (see `without_markup_noise`). The keyword index and the chunk's id keep the full
        `embed_text`."""
        body = without_markup_noise(self.text)
        if not body.strip():  # nothing but noise: better its own text than an empty vector
            return self.embed_text
        return " > ".join(self.heading_path) + "\n\n" + body if self.heading_path else body


# Why (issue #15): on the obsidian-hub vault, link targets and HTML comments were 56 % of the
# tokens sync embedded (URLs cost ~1 token per 2-3 characters), and each note's footer differed
# from the next only in its URLs. Obsidian shows neither; the link text stays. Only complete
# comments go (a chunk cut inside one keeps the part it holds), and bare URLs (`<https://..>`,
# autolinks) are content and stay too. `%% comments %%` stay: people write searchable notes there.
_HTML_COMMENT_RE = re.compile(r"<!--.*?-->", re.S)
# [text](target "title") and ![alt](target): the target (any <bracketed> one too) and title go.
_MD_LINK_RE = re.compile(r'(!?)\[([^\]\n]*)\]\((?:<[^>\n]*>|[^)\s]*)(?:\s+"[^"\n]*")?\)')


def without_markup_noise(text: str) -> str:
    """`text` without HTML comments and Markdown link targets: what the dense embedder sees."""
    if "<!--" in text:
        text = _HTML_COMMENT_RE.sub("", text)
    if "](" in text:
        for _ in range(2):  # twice: a linked image badge, [![alt](img)](url), is two links
            text = _MD_LINK_RE.sub(lambda m: m.group(2), text)
    return text


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk as the registry stores it."""

    id: str
    note_path: str
    ordinal: int
    text: str
    text_hash: str
    heading_path: tuple[str, ...]
    page: int | None
    span: tuple[int, int]
    tokens: int
    # Other notes whose text is in this chunk (through embeds, at any depth). None: unknown
    # (a row written before provenance was recorded), which readers treat as every note the
    # chunk's note embeds.
    sources: tuple[str, ...] | None = ()

    @property
    def embed_text(self) -> str:
        return ChunkDraft(self.ordinal, self.text, self.heading_path).embed_text

    @property
    def vector_text(self) -> str:
        return ChunkDraft(self.ordinal, self.text, self.heading_path).vector_text


def chunk_id(note_path: str, text_hash: str, occurrence: int) -> str:
    """Stable id: the same text in the same note keeps its id whatever moves around it."""
    return sha256_hex(f"{note_path}\x00{text_hash}\x00{occurrence}")[:32]


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with its score and where it came from."""

    chunk_id: str
    note_path: str
    title: str
    heading_path: tuple[str, ...]
    page: int | None
    text: str
    score: float
    ordinal: int = 0
    sources: tuple[str, ...] = ()  # "dense", "lexical"
    provenance: tuple[str, ...] = ()  # other notes whose text is in it (through embeds)


@dataclass(frozen=True)
class Turn:
    """One earlier exchange of a conversation (a Slack or Discord thread)."""

    question: str
    answer: str
    # The notes the answer cited, when known: a turn whose notes this place may no longer see
    # is left out of the history (engine/answer.py). None: unknown (kept as it was shown).
    sources: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Scope:
    """What a question may see. Empty tuples mean no restriction on that axis."""

    folders: tuple[str, ...] = ()  # allowed folder prefixes, e.g. ("Work",)
    tags: tuple[str, ...] = ()  # a note must carry at least one of these (nested tags match)
    notes: tuple[str, ...] = ()  # exact vault paths
    exclude_folders: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    include_private: bool = False
    # (key, value) pairs a note's frontmatter must match, e.g. (("status", "active"),); the
    # retriever resolves them to `notes` through the registry.
    frontmatter: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # Names enter in whatever form they were typed or read: compare them in NFC only.
        for name in ("folders", "tags", "notes", "exclude_folders", "exclude_tags"):
            value = getattr(self, name)
            canon = tuple(nfc(v) for v in value)
            if canon != value:
                object.__setattr__(self, name, canon)

    def key(self) -> str:
        """A stable string for cache keys."""
        return repr(
            (
                sorted(self.folders),
                sorted(self.tags),
                sorted(self.notes),
                sorted(self.exclude_folders),
                sorted(self.exclude_tags),
                self.include_private,
                sorted(self.frontmatter),
            )
        )

    def narrowed(self, folders: tuple[str, ...] = (), tags: tuple[str, ...] = ()) -> Scope | None:
        """This scope limited further to `folders` and `tags` (empty: no further limit), or
        None when nothing is left. Never wider than self, whatever is asked."""
        f = _intersect(self.folders, tuple(folders), _folder_within)
        t = _intersect(self.tags, tuple(tags), _tag_within)
        if f is None or t is None:
            return None
        return replace(self, folders=f, tags=t)

    def allows(self, path: str, tags: list[str] | tuple[str, ...], private: bool,
               suspect: tuple[str, ...] = ()) -> bool:
        """May this scope show the note at `path`? `suspect`: the words of its frontmatter
        when that could not be parsed; a private (excluded) tag among them hides it."""
        if private and not self.include_private:
            return False
        path = nfc(path)
        if self.notes and path not in self.notes:
            return False
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        if self.folders and not any(_under(folder, f) for f in self.folders):
            return False
        if any(_under(folder, f) for f in self.exclude_folders):
            return False
        if self.tags and not any(_tag_matches(t, want) for t in tags for want in self.tags):
            return False
        hidden = (*tags, *suspect)
        return not any(_tag_matches(t, no) for t in hidden for no in self.exclude_tags)


def _under(folder: str, prefix: str) -> bool:
    prefix, folder = name_key(prefix.strip("/")), name_key(folder)
    return prefix == "" or folder == prefix or folder.startswith(prefix + "/")


def _folder_within(a: str, b: str) -> bool:
    return _under(a.strip("/"), b)


def _tag_within(a: str, b: str) -> bool:
    return _tag_matches(a, b)


def _intersect(
    mine: tuple[str, ...], more: tuple[str, ...], within: Callable[[str, str], bool],
) -> tuple[str, ...] | None:
    """What both lists allow (empty = everything), or None when that is nothing. Folders and
    nested tags intersect where one lies under the other; two unrelated tags would need a note
    to carry both, which a Scope cannot say, so that pair is left out (stricter, never wider)."""
    if not more:
        return mine
    if not mine:
        return more
    both = [m for m in more if any(within(m, x) for x in mine)]
    both += [x for x in mine if any(within(x, m) for m in more)]
    return tuple(dict.fromkeys(both)) or None


def _tag_matches(tag: str, wanted: str) -> bool:
    """`#project` matches `#project` and `#project/alpha` (Obsidian's nested tags)."""
    tag, wanted = name_key(tag.lstrip("#")), name_key(wanted.lstrip("#"))
    return tag == wanted or tag.startswith(wanted + "/")


def folder_ancestors(path: str) -> list[str]:
    """`a/b/c.md` -> ["a", "a/b"]: every folder a note sits under, for prefix filters."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
