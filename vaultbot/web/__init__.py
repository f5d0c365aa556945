"""Note pages: a note rendered as Obsidian shows it, sanitised, in a self-contained document.

Pure functions of what the caller passes; which note may be shown, and where links lead, is the
caller's decision (`link_for`, `embed_for`), under the provenance rule."""

from vaultbot.web.markdown import Rendered, render_inline, render_markdown
from vaultbot.web.page import UNAVAILABLE_PAGE, note_page, properties_html, unavailable_page
from vaultbot.web.style import CSP, CSS, SECURITY_HEADERS, csp

__all__ = [
    "CSP",
    "CSS",
    "SECURITY_HEADERS",
    "UNAVAILABLE_PAGE",
    "Rendered",
    "csp",
    "note_page",
    "properties_html",
    "render_inline",
    "render_markdown",
    "unavailable_page",
]
