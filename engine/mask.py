"""Masking what leaves through a front end (`VAULTBOT_MASK`): secrets, e-mail addresses, phone
numbers, Korean resident registration numbers and card numbers become "(masked)".

A few regex passes find candidates (secrets, `password:`-style values, "@" for e-mail and
URL credentials, one combined pass for every kind of number). A candidate that only looks like
its kind (a resident number with a bad checksum or an impossible date, a card number failing
Luhn or no issuer's prefix, a `password:` followed by a plain word) is checked in Python and,
if rejected, the other number kinds get a try at the same place. Boundaries are ASCII-only:
Python's `\\b` treats Hangul as a word character, so "전화010-1234-5678로" would hide the
number from `\\b`-bounded patterns.

The secret patterns follow detect-secrets' plugins (AWS, GitHub, GitLab, Slack, Discord,
OpenAI, Stripe, SendGrid, npm, PyPI, Telegram, JWT, private keys, keyword assignments, basic
auth in URLs) without its line-oriented scanner: here every chunk and snippet is masked, so
offsets and speed matter, and detect-secrets' entropy plugins flag every commit hash."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import NamedTuple

from engine.models import Hit

MASK = "(masked)"


class Finding(NamedTuple):
    kind: str  # "secret", "email", "phone", "rrn", "card"
    start: int
    end: int


# ASCII-only boundaries (see the module docstring). A number must not continue a longer one:
# "978-89-01012345678" or "1.010-1234-5678" hold no phone number.
_NL = r"(?<![A-Za-z0-9_])(?<![0-9][.,/:-])"
_NR = r"(?![A-Za-z0-9_])(?![.,/:-][0-9])"
_TL = r"(?<![A-Za-z0-9_-])"  # tokens: "-" continues a token, too
_TR = r"(?![A-Za-z0-9_-])"

_KEY_END = r"[\ A-Z0-9]*PRIVATE\ KEY(?:\ BLOCK)?-----"  # escaped spaces: VERBOSE
_PEM = rf"(?s:-----BEGIN{_KEY_END}(?:.*?-----END{_KEY_END}|.*\Z))"
# A chunk boundary can cut a key: its middle (PEM lines are 64 base64 characters) or its end.
_PEM_PART = (
    rf"(?m:(?:^[A-Za-z0-9+/=]{{40,76}}\r?\n)+(?:[A-Za-z0-9+/=]*\r?\n)?-----END{_KEY_END}"
    r"|(?:^[A-Za-z0-9+/]{60,76}\r?(?:\n|\Z)){2,})"
)
_TOKEN = _TL + r"""(?:
    (?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}
  | gh[pousr]_[A-Za-z0-9]{36,251}
  | github_pat_[A-Za-z0-9_]{60,255}
  | gl(?:pat|dt|ft|soat|rt|ptt|oas|cbt|imt|agent)-[A-Za-z0-9_-]{20,}
  | xox[abposre]-[A-Za-z0-9-]{10,}
  | xapp-\d-[A-Za-z0-9-]{10,}
  | [sr]k_(?:live|test)_[A-Za-z0-9]{16,}
  | sk-[A-Za-z0-9_-]{20,}
  | AIza[A-Za-z0-9_-]{35}
  | SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}
  | npm_[A-Za-z0-9]{36}
  | pypi-AgE[A-Za-z0-9_-]{50,}
  | hf_[A-Za-z0-9]{30,}
  | eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{10,}
  | [MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}
  | \d{8,10}:AA[A-Za-z0-9_-]{33}
  | https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+
  | https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]{30,}
)""" + _TR
# `password: ...`, `API_KEY = "..."`, `"client_secret": "..."`, `비밀번호: ...`: the value only.
_KEYWORD = (
    r"password|passwd|passphrase|passcode|pwd|pin|secret|token|bearer|api[_.-]?key|apikey"
    r"|access[_.-]?key|private[_.-]?key|credential|비밀번호|패스워드|암호"
)
_ASSIGN = r"""(?i:(?P<key>password|passwd|passphrase|passcode|pwd|pin|secret|token|bearer
    |api[_.-]?key|apikey|access[_.-]?key|private[_.-]?key|credentials?)|(?P<kkey>비밀번호|패스워드|암호))
  [A-Za-z0-9_.-]{0,24}["']?
  (?:[\ \t]{0,3}(?::=|=>|[:=：])[\ \t]{0,3}|(?<=(?i:bearer))[\ \t]+|(?<=[가-힣])(?:은|는)[\ \t]+
    |[\ \t]+is[\ \t]+)
  ["'`]?(?P<value>[!-~]{4,200}?)["'`]?(?=[\s,;]|[.)\]}>]?(?:\s|\Z)|\Z)"""
_URL_CRED = r"://[^\s:/@]{1,64}:(?P<urlpass>[^\s:/@]{1,128})@"  # matched from "://"
# Matched from the first character of the local part, found by walking back from the "@".
_EMAIL = (
    r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?P<tld>[A-Za-z]{2,24})"
    r"(?![A-Za-z0-9-])"
)
# YYMMDD-GNNNNNN, gender/century digit 1-8; the date and checksum are checked in Python.
_RRN = r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-?[1-8]\d{6}"
_CARD = r"""(?:\d{4}(?P<cs>[ -])\d{4}(?P=cs)\d{4}(?P=cs)\d{4}(?:(?P=cs)\d{3})?
  | \d{4}(?P<cs2>[ -])\d{4}(?P=cs2)\d{4}(?P=cs2)\d{1,3}
  | \d{4}(?P<cs3>[ -])\d{6}(?P=cs3)\d{4,5}
  | \d{13,19})"""
_PHONE = r"""(?:
    01[016789](?P<ps>[ .-]?)\d{3,4}(?P=ps)\d{4}
  | 0(?:2|[3-6][1-5]|70|50\d)(?P<ps2>[.-]|\)\ ?)\d{3,4}(?P=ps2)?[ .-]?\d{4}
  | \(0(?:2|[3-6][1-5]|70)\)\ ?\d{3,4}[ .-]\d{4}
  | (?<![)])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){2,6}
  | [2-9]\d{2}(?P<ns>[.-])[2-9]\d{2}(?P=ns)\d{4}
  | \([2-9]\d{2}\)\ ?[2-9]\d{2}-\d{4}
)"""

_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:[<{\[($%*#.]|x{3,}|\.{3}|(?:your|my|the|some|example|sample|dummy|fake)[\w-]*$
    |(?:none|null|nil|true|false|yes|no|empty|required|optional|string|secret|password|passwd
    |token|hidden|redacted|masked|changeme|n/a|tbd|todo|e\.g|i\.e|etc)\W*$)"""
)
_NOT_TLD = frozenset(
    "png jpg jpeg gif svg webp bmp ico tif tiff pdf txt css js mjs ts json html htm xml yml yaml "
    "toml csv mp3 mp4 mov wav zip gz tar py rb go rs java".split()
)
_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
_CENTURY = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}


def rrn_valid(number: str) -> bool:
    """A resident registration number (hyphen optional) with a real birth date and a valid
    check digit. Numbers issued since October 2020 carry no check digit and are not found."""
    d = number.replace("-", "")
    if len(d) != 13 or not d.isdecimal() or d[6] not in _CENTURY:
        return False
    try:
        born = dt.date(_CENTURY[d[6]] + int(d[:2]), int(d[2:4]), int(d[4:6]))
    except ValueError:  # 30 February
        return False
    if born > dt.date.today():
        return False
    total = sum(int(c) * w for c, w in zip(d, _RRN_WEIGHTS, strict=False))
    return (11 - total % 11) % 10 == int(d[12])


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        n = int(c) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _token_ok(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.group()
    if text.startswith("sk-"):  # a bare "sk-" prefix is also a CSS class or a slug
        body = text[3:]
        if not (any(c.isdigit() for c in body) and any(c.isupper() for c in body)
                and any(c.islower() for c in body)):
            return None
    return m.span()


def _assign_ok(m: re.Match[str]) -> tuple[int, int] | None:
    value = m.group("value")
    if _PLACEHOLDER.match(value):
        return None
    digit = any(c.isdigit() for c in value)
    letter = any(c.isalpha() for c in value)
    symbol = any(not c.isalnum() for c in value)
    key = (m.group("key") or "").lower()
    if m.group("kkey") or key in {"password", "passwd", "passphrase", "passcode", "pwd", "pin"}:
        # Passwords are short and may be all digits (a PIN); a plain word is prose ("The vault
        # password is separate"), so a password made of letters alone is missed.
        ok = digit or (letter and symbol)
        if key == "pin":
            ok = value.isdigit() and 4 <= len(value) <= 8
    else:  # tokens and keys are long and random
        ok = len(value) >= 12 and digit and letter and _entropy(value) >= 3.0
    return m.span("value") if ok else None


def _urlpass_ok(m: re.Match[str]) -> tuple[int, int] | None:
    value = m.group("urlpass")
    return None if _PLACEHOLDER.match(value) else m.span("urlpass")


def _email_ok(m: re.Match[str]) -> tuple[int, int] | None:
    return None if m.group("tld").lower() in _NOT_TLD else m.span()  # icon@2x.png


def _rrn_ok(m: re.Match[str]) -> tuple[int, int] | None:
    return m.span() if rrn_valid(m.group()) else None


def card_brand_ok(digits: str) -> bool:
    """Issuer prefix and length of a real card scheme. Random digit strings pass Luhn one time
    in ten; this keeps IDs, millisecond timestamps (first digit 1), ISBNs and yyyymmdd... stamps
    (20xx, below Mastercard's 2221) from being taken for cards."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    return (
        (digits[0] == "4" and n in (13, 16, 19))  # Visa
        or ((51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16)  # Mastercard
        or (p2 in (34, 37) and n == 15)  # American Express
        or ((300 <= p4 // 10 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19)  # Diners
        or ((p4 == 6011 or 644 <= p4 // 10 <= 649 or p2 == 65) and 16 <= n <= 19)  # Discover
        or (3528 <= p4 <= 3589 and 16 <= n <= 19)  # JCB
        or (p2 == 62 and 16 <= n <= 19)  # UnionPay
        or (digits[0] == "9" and n == 16)  # Korean domestic (BC and others)
    )


def _card_ok(m: re.Match[str]) -> tuple[int, int] | None:
    digits = re.sub(r"\D", "", m.group())
    if len(set(digits)) == 1 or not card_brand_ok(digits) or not luhn_valid(digits):
        return None
    return m.span()


def _phone_ok(m: re.Match[str]) -> tuple[int, int] | None:
    text = m.group()
    if text.startswith("+"):  # E.164: at most 15 digits; fewer than 8 is no phone number
        n = sum(c.isdigit() for c in text)
        if not 8 <= n <= 15:
            return None
    return m.span()


_Check = Callable[[re.Match[str]], "tuple[int, int] | None"]
_X = re.VERBOSE
# Each pass starts with a lookahead of the characters its findings can start with: CPython's
# `re` then skips every other character in C. One alternation of all the patterns was ~10x
# slower (its first characters are nearly every character), so the passes are separate.
_PEM_RE = re.compile(_PEM, _X)
_PEM_PART_RE = re.compile(r"(?m:^)" + _PEM_PART, _X)
_TOKEN_RE = re.compile(r"(?=[AgxsrSnpheMNO0-9])" + _TOKEN, _X)
_KEYWORD_RE = re.compile(_KEYWORD)  # run on the lower-cased text
_KEYWORD_CI_RE = re.compile(r"(?i:" + _KEYWORD + ")")
_ASSIGN_RE = re.compile(_ASSIGN, _X)
_EMAIL_RE = re.compile(_EMAIL, _X)
_URL_CRED_RE = re.compile(_URL_CRED, _X)
_NUMBER_RULES: tuple[tuple[str, str, _Check], ...] = (
    # Order decides ties at one place: a 13-digit number is tried as an RRN, then as a card.
    ("rrn", _RRN, _rrn_ok),
    ("card", _CARD, _card_ok),
    ("phone", _PHONE, _phone_ok),
)
_NUMBERS_RE = re.compile(
    r"(?=[0-9+(])" + _NL + "(?:" + "|".join(f"(?P<{n}>{p}{_NR})" for n, p, _ in _NUMBER_RULES) + ")",
    _X,
)
_NUMBER_INDEX = {n: i for i, (n, _, _) in enumerate(_NUMBER_RULES)}
_NUMBER_ALONE = [(n, re.compile(_NL + p + _NR, _X), check) for n, p, check in _NUMBER_RULES]
_LOCAL = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")


class Masker:
    """`mask(text)` replaces every finding with "(masked)"; `findings(text)` lists them."""

    def __init__(self, replacement: str = MASK) -> None:
        self.replacement = replacement

    def findings(self, text: str, pos: int = 0) -> list[Finding]:
        """Findings in `text[pos:]`, in order, overlapping ones merged (`pos` keeps the context
        before it, so boundaries are judged as in the whole text)."""
        found: list[Finding] = []
        if "PRIVATE KEY" in text:
            found += [Finding("secret", *m.span()) for m in _PEM_RE.finditer(text, pos)]
        found += [Finding("secret", *m.span()) for m in _PEM_PART_RE.finditer(text, pos)]
        for m in _TOKEN_RE.finditer(text, pos):
            if (span := _token_ok(m)) is not None:
                found.append(Finding("secret", *span))
        self._assignments(text, pos, found)
        if "@" in text:
            self._at_signs(text, pos, found)
        self._numbers(text, pos, found)
        return _merge(found)

    def mask(self, text: str) -> str:
        return self._render(text, 0, len(text), self.findings(text))

    def mask_hits(self, hits: Iterable[Hit]) -> list[Hit]:
        return [replace(h, text=self.mask(h.text)) for h in hits]

    def stream(self) -> StreamMasker:
        return StreamMasker(self)

    @staticmethod
    def _assignments(text: str, pos: int, found: list[Finding]) -> None:
        # Keywords are found in the lower-cased text (a case-insensitive pattern is ~3x slower);
        # lower() keeps every offset unless some character lower-cases to two.
        low = text[pos:].lower()
        if len(low) == len(text) - pos:
            starts = (pos + k.start() for k in _KEYWORD_RE.finditer(low))
        else:
            starts = (k.start() for k in _KEYWORD_CI_RE.finditer(text, pos))
        last = -1
        for start in starts:
            if start < last:
                continue
            m = _ASSIGN_RE.match(text, start)
            if m is not None and (span := _assign_ok(m)) is not None:
                found.append(Finding("secret", *span))
                last = m.end()

    @staticmethod
    def _at_signs(text: str, pos: int, found: list[Finding]) -> None:
        """E-mail addresses and `scheme://user:password@host`, both found from their "@"."""
        at = text.find("@", pos)
        while at >= 0:
            start = at
            while start > max(0, at - 64) and text[start - 1] in _LOCAL:
                start -= 1
            while start < at and not text[start].isalnum():
                start += 1
            m = _EMAIL_RE.match(text, start) if start >= pos else None
            if m is not None and (span := _email_ok(m)) is not None:
                found.append(Finding("email", *span))
            scheme = text.rfind("://", max(0, at - 200), at)
            if scheme >= 0:
                u = _URL_CRED_RE.match(text, scheme)
                if u is not None and u.end() == at + 1 and (span := _urlpass_ok(u)) is not None:
                    found.append(Finding("secret", *span))
            at = text.find("@", at + 1)

    @staticmethod
    def _numbers(text: str, pos: int, found: list[Finding]) -> None:
        while (m := _NUMBERS_RE.search(text, pos)) is not None:
            i = _NUMBER_INDEX[m.lastgroup]  # type: ignore[index]
            kind, span, end = m.lastgroup, _NUMBER_RULES[i][2](m), m.end()
            if span is None:  # a 13-digit number that is no RRN may still be a card
                for other_kind, pattern, check in _NUMBER_ALONE[i + 1 :]:
                    other = pattern.match(text, m.start())
                    if other is not None and (span := check(other)) is not None:
                        kind, end = other_kind, other.end()
                        break
            if span is None:
                pos = m.start() + 1
                continue
            found.append(Finding(kind, *span))  # type: ignore[arg-type]
            pos = end

    def _render(self, text: str, start: int, end: int, found: Iterable[Finding]) -> str:
        parts, at = [], start
        for f in found:
            if f.start >= at and f.end <= end:
                parts += [text[at : f.start], self.replacement]
                at = f.end
        parts.append(text[at:end])
        return "".join(parts)


def _merge(found: list[Finding]) -> list[Finding]:
    """Sorted, with overlapping findings (a key that is also a token, a password that is also
    a phone number) joined into one: masking the union hides both."""
    out: list[Finding] = []
    for f in sorted(found, key=lambda f: (f.start, -f.end)):
        if out and f.start < out[-1].end:
            if f.end > out[-1].end:
                out[-1] = out[-1]._replace(end=f.end)
        else:
            out.append(f)
    return out


class StreamMasker:
    """Masks a text arriving in pieces. The end of what has arrived is held back until no
    finding can still grow over it, so the concatenated output equals `mask(whole text)`."""

    HOLD = 32  # longer than any finding that holds whitespace (a spaced card or phone number)

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._raw = ""
        self._done = 0  # raw text before this is emitted

    def feed(self, piece: str) -> str:
        self._raw += piece
        return self._emit(final=False)

    def flush(self) -> str:
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        raw, done = self._raw, self._done
        # From a little before `done`: a `password:` already sent may precede its value.
        found = [f for f in self._masker.findings(raw, max(0, done - 64)) if f.start >= done]
        cut = len(raw)
        if not final:
            # A token, JWT or e-mail address is one run of non-space characters, possibly longer
            # than HOLD; a private key block runs until its END line.
            run = len(raw)
            while run > done and not raw[run - 1].isspace():
                run -= 1
            cut = min(len(raw) - self.HOLD, run)
            begin = raw.rfind("-----BEGIN", done)
            if begin >= 0 and "-----END" not in raw[begin:]:
                cut = min(cut, begin)
            for f in found:
                if f.start < cut < f.end:
                    cut = f.start
        if cut <= done:
            return ""
        self._done = cut
        return self._masker._render(raw, done, cut, found)


_default: Masker | None = None


def default_masker() -> Masker:
    """One shared Masker (compiling the patterns once)."""
    global _default
    if _default is None:
        _default = Masker()
    return _default
