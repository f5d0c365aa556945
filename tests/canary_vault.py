"""A generated vault full of privacy canaries, for tests/test_privacy_canary.py.

Every private text carries a unique canary token (`kanaria-<case>-<hex>`) at the start of a
plain sentence that holds a distinctive fact, e.g. "kanaria-embedwhole-3f9a1b2c The salary
review meeting is on December 10 in the Orchid room." If either the token or the sentence
shows up anywhere a front end writes, private text leaked.

Questions never contain the token or the sentence (front ends echo questions: Discord titles
its answer and names its thread after the question, Slack and the query log store it). Instead
each private sentence sits next to an *ask key*, a made-up word (`ask<hex>`) that is in the
note and in the question, so keyword retrieval pulls the chunk whenever it is visible; the
natural question in front of it gives dense retrieval its chance.

`build_canary_vault(root)` writes the vault and the access file and returns a `CanaryVault`
that knows every canary, the public control marks, and `apply_changes()`: the second phase
(a note moved into the private folder, one moved out, a public note made private).
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

PRIVATE_FOLDER = "인사"  # "HR"; the access file names it in NFC
TWIN_FOLDER = "회의록"  # "minutes"; created in NFD on disk, searched for in NFC


def nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def nfd(s: str) -> str:
    return unicodedata.normalize("NFD", s)


def hex8() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class Mark:
    """A text planted in a note with the question that finds it. As a `Mark` it is public and
    every front end must show it when asked (the positive control)."""

    name: str
    token: str
    sentence: str  # the fact, without the token; checked too (a snippet may cut the token off)
    key: str  # the ask key: in the note and in the question, never secret
    natural: str  # the natural-language question

    @property
    def question(self) -> str:
        return f"{self.natural} {self.key}"

    @property
    def text(self) -> str:
        """The line as written in the note."""
        return f"{self.token} {self.sentence}. Reference {self.key}."


@dataclass(frozen=True)
class Canary(Mark):
    """One private text. `after_change`: private only once `apply_changes()` ran (its text may
    legitimately appear before)."""

    after_change: bool = False

    @property
    def case(self) -> str:
        return self.name


def make_canary(case: str, sentence: str, natural: str, after_change: bool = False) -> Canary:
    slug = case.replace("_", "")
    return Canary(case, f"kanaria-{slug}-{hex8()}", sentence, f"ask{hex8()}", natural,
                  after_change)


@dataclass
class CanaryVault:
    root: Path
    access_file: Path
    canaries: dict[str, Canary]
    public: Mark  # an ordinary public note
    twin: Mark  # a public note in the NFD folder TWIN_FOLDER, found with an NFC folder filter
    moved_out: Mark  # starts in the private folder, moved out by apply_changes (not asserted)
    changed: bool = False
    _moves: list[tuple[str, str]] = field(default_factory=list)

    def questions(self) -> list[str]:
        """Every question the suite asks: one per canary, then the public control."""
        return [c.question for c in self.canaries.values()] + [self.public.question]

    def before_questions(self) -> list[str]:
        """Asked before `apply_changes()`, while these notes are still public, so that caches
        hold their text when they turn private."""
        return [c.question for c in self.canaries.values() if c.after_change]

    def apply_changes(self) -> None:
        """Phase two: `Offsite plan` moves into the private folder, `Parking rules` out of it,
        and `Quarterly forecast` gets `private: true`."""
        for src, dst in self._moves:
            os.rename(self.root / src, self.root / dst)
        forecast = self.root / "Quarterly forecast.md"
        forecast.write_text("---\nprivate: true\n---\n" + forecast.read_text(encoding="utf-8"),
                            encoding="utf-8")
        self.changed = True


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def build_canary_vault(root: Path) -> CanaryVault:
    """Write the canary vault under `root` (created) and its access file beside it."""
    root.mkdir(parents=True, exist_ok=True)
    c = {
        cn.case: cn
        for cn in (
            make_canary("private_frontmatter",
                        "The board agreed to sell the Lisbon warehouse for four million euros",
                        "What did the board agree about the Lisbon warehouse?"),
            make_canary("badyaml_private",
                        "The payroll budget for next year rises by nine percent for the new hires",
                        "How much does the payroll budget rise next year?"),
            make_canary("badyaml_tag",
                        "The penetration test found an open admin port on the billing gateway",
                        "What did the penetration test find on the billing gateway?"),
            make_canary("folder_nfd",
                        "Performance evaluations start on March 3 with the platform team",
                        "When do the performance evaluations start?"),
            make_canary("tag_body",
                        "The outage was caused by an expired certificate on the Tokyo relay",
                        "What caused the outage on the Tokyo relay?"),
            make_canary("tag_frontmatter",
                        "The Falcon vendor contract renews at a discount of twelve percent",
                        "At what discount does the Falcon vendor contract renew?"),
            make_canary("embed_whole",
                        "The salary review meeting is on December 10 in the Orchid room",
                        "When is the salary review meeting?"),
            make_canary("embed_heading",
                        "The marketing budget for next year is three hundred thousand dollars",
                        "What is the marketing budget for next year?"),
            make_canary("embed_block",
                        "We hire two motion designers before the spring launch",
                        "Whom do we hire before the spring launch?"),
            make_canary("embed_nested",
                        "The Atlas acquisition closes on the last Friday of June",
                        "When does the Atlas acquisition close?"),
            make_canary("embed_private_folder",
                        "Mina and Joon are on the promotion list for the autumn cycle",
                        "Who is on the promotion list for the autumn cycle?"),
            make_canary("moved_into_private_folder",
                        "The leadership offsite is at the Gangneung beach hotel in May",
                        "Where is the leadership offsite in May?", after_change=True),
            make_canary("made_private_after_caching",
                        "Revenue for the third quarter is forecast at eighteen million dollars",
                        "What is the revenue forecast for the third quarter?", after_change=True),
        )
    }
    public = Mark("public", f"publicmark-{hex8()}",
                  "The tomato seedlings moved to the greenhouse on April 2", f"ask{hex8()}",
                  "When did the tomato seedlings move to the greenhouse?")
    twin = Mark("twin", f"twinmark-{hex8()}",
                "The weekly sync moved to Thursday mornings", f"ask{hex8()}",
                "When is the weekly sync?")
    moved_out = Mark("moved_out", f"movedout-{hex8()}",
                     "Visitors park on the second basement level", f"ask{hex8()}",
                     "Where do visitors park?")

    hr_nfd = nfd(PRIVATE_FOLDER)  # the case-3 folder, as macOS writes it
    hr_nfc = nfc(PRIVATE_FOLDER)  # its NFC twin on disk (Linux keeps both), for cases 5 and 6
    notes: dict[str, str] = {
        # 1. private: true
        "Board minutes.md": (
            "---\nprivate: true\n---\n# Board minutes\n\n"
            f"{c['private_frontmatter'].text}\n"),
        # 2. frontmatter YAML cannot parse (the colon in the title): still private
        "Payroll 2026.md": (
            "---\ntitle: Payroll: 2026\nprivate: true\n---\n# Payroll\n\n"
            f"{c['badyaml_private'].text}\n"),
        "Security audit.md": (
            "---\ntitle: Audit: billing\ntags: [secret]\n---\n# Security audit\n\n"
            f"{c['badyaml_tag'].text}\n"),
        # 3. the access file's private folder, its name in NFD on disk (file name too)
        f"{hr_nfd}/{nfd('평가 일정')}.md": (
            "# 평가 일정\n\n"
            f"{c['folder_nfd'].text}\n\n인사 평가는 3월 3일에 시작합니다.\n"),
        # 4. the access file's private tag, in the body and in frontmatter
        "Incident notes.md": (
            "# Incident notes\n\n#secret\n\n"
            f"{c['tag_body'].text}\n"),
        "Vendor contract.md": (
            "---\ntags: [secret]\n---\n# Vendor contract\n\n"
            f"{c['tag_frontmatter'].text}\n"),
        # 5. private notes embedded into public ones
        "Salary review.md": (
            "---\nprivate: true\n---\n"
            f"{c['embed_whole'].text}\n"),
        "Team handbook.md": (
            "# Team handbook\n\nWelcome to the team handbook: lunch is at noon and the kitchen "
            "closes at six.\n\n![[Salary review]]\n"),
        "Private plans.md": (
            "---\nprivate: true\n---\n# Private plans\n\n## Budget\n\n"
            f"{c['embed_heading'].text}\n\n## Hiring\n\n"
            f"{c['embed_block'].text} ^blk1\n\n## Travel\n\nNothing planned yet.\n"),
        "Roadmap.md": (
            "# Roadmap\n\nThe public roadmap ships the mobile app in autumn.\n\n"
            "![[Private plans#Budget]]\n"),
        "Hiring overview.md": (
            "# Hiring overview\n\nThe careers page lists every open role.\n\n"
            "![[Private plans#^blk1]]\n"),
        "Project A.md": "# Project A\n\nProject A is the umbrella project.\n\n![[Project B]]\n",
        "Project B.md": "Project B tracks the integration work.\n\n![[Project C]]\n",
        "Project C.md": f"---\nprivate: true\n---\n{c['embed_nested'].text}\n",
        f"{hr_nfc}/Promotion list.md": f"# Promotion list\n\n{c['embed_private_folder'].text}\n",
        "Welcome.md": (
            "# Welcome\n\nThe welcome page for new staff: badges come from the front desk.\n\n"
            "![[Promotion list]]\n"),
        # 6. moved into the private folder (and one moved out) by apply_changes()
        "Offsite plan.md": f"# Offsite plan\n\n{c['moved_into_private_folder'].text}\n",
        f"{hr_nfc}/Parking rules.md": f"# Parking rules\n\n{moved_out.text}\n",
        # 7. public now, private after apply_changes()
        "Quarterly forecast.md": (
            f"# Quarterly forecast\n\n{c['made_private_after_caching'].text}\n"),
        # public controls and filler
        "Garden log.md": f"# Garden log\n\n{public.text}\n\nThe basil needs more sun.\n",
        f"{nfd(TWIN_FOLDER)}/{nfd('주간 회의')}.md": f"# 주간 회의\n\n{twin.text}\n",
        "Recipes/Pancakes.md": "# Pancakes\n\nMix flour, milk and two eggs; rest the batter.\n",
        "Travel/Busan.md": "# Busan\n\nThe KTX from Seoul takes about two and a half hours.\n",
    }
    for rel, text in notes.items():
        _write(root, rel, text)

    access = root.parent / f"{root.name}-access.yml"
    access.write_text(
        f"private:\n  folders: [{nfc(PRIVATE_FOLDER)}]\n  tags: [secret]\n"
        "default:\n  folders: []\n  tags: []\n",
        encoding="utf-8",
    )
    return CanaryVault(
        root=root, access_file=access, canaries=c, public=public, twin=twin, moved_out=moved_out,
        _moves=[("Offsite plan.md", f"{hr_nfc}/Offsite plan.md"),
                (f"{hr_nfc}/Parking rules.md", "Parking rules.md")],
    )
