"""The web ask page's assets: the HTML documents (the page and its login form), its one script
and its stylesheet, all served by vaultbot/web/routes_ask.py.

No build step and nothing from outside: the script is plain JavaScript served from a route
named for its hash (`SCRIPT_PATH`), the style is inline and allowed by its hash, the page has no
inline script or handler. Everything an answer holds is put in the page as text
(`textContent`), never as HTML, and a source's link is used only when it is http(s) or
obsidian://."""

from __future__ import annotations

import base64
import hashlib
import html

from vaultbot.web.style import CSS

__all__ = ["ASK_CSP", "SCRIPT", "SCRIPT_PATH", "ask_document", "login_document"]

ASK_CSS = """\
.ask textarea,.ask input,#search input{width:100%;font:inherit;color:inherit;background:var(--soft);\
border:1px solid var(--line);border-radius:6px;padding:.6rem}
.row{display:flex;gap:.5rem;margin:.5rem 0 1rem;flex-wrap:wrap}
button{font:inherit;border:1px solid var(--line);border-radius:6px;padding:.4rem 1rem;\
background:var(--link);color:#fff;cursor:pointer}
button.plain{background:var(--soft);color:var(--fg)}
header.page{display:flex;justify-content:space-between;align-items:baseline;gap:1rem}
header.page form{margin:0}
.turn{border-top:1px solid var(--line);padding:.75rem 0}
.turn .q{font-weight:600;margin:0 0 .5rem}
.answer{white-space:pre-wrap;margin:0 0 .75rem}
.status{color:var(--muted);font-size:.875rem;margin:0 0 .5rem}
.sources{font-size:.9rem;padding-left:1.5em}
.sources .open{color:var(--muted);margin-left:.5em;font-size:.85em}
#results{font-size:.9rem;padding-left:1.5em}
#results p{margin:.2em 0 .6em;color:var(--muted)}
.error{color:var(--danger)}
.search{margin-top:1.5rem}
label{display:block;font-size:.875rem;color:var(--muted);margin-bottom:.25rem}
"""

SCRIPT = """\
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const thread = $("thread"), question = $("q"), results = $("results");
  let history = [];

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function safe(href) {
    return typeof href === "string" && /^(https?:|obsidian:)/i.test(href) ? href : null;
  }
  function label(c) {
    const last = c.heading ? c.heading.split(" > ").pop() : "";
    return c.title + (last && last !== c.title ? " \\u203a " + last : "") +
      (c.page ? " (p. " + c.page + ")" : "");
  }
  function sources(list, into) {
    into.replaceChildren();
    for (const c of list) {
      const li = el("li");
      const href = safe(c.page_url) || safe(c.url) || safe(c.uri);
      const a = el("a", "src", label(c));
      if (href) a.href = href;
      li.append(a);
      const uri = safe(c.uri);
      if (uri && href !== uri) {
        const o = el("a", "open", "Open in Obsidian");
        o.href = uri;
        li.append(o);
      }
      into.append(li);
    }
  }

  async function failed(res) {  // the API's refusal text (a 403 says why), else the status
    try { const d = (await res.json()).detail; if (typeof d === "string") return d; } catch (e) {}
    return "Error " + res.status;
  }

  async function ask(text) {
    const turn = el("section", "turn");
    const status = el("p", "status", "Searching\\u2026");
    const answer = el("div", "answer");
    const list = el("ol", "sources");
    turn.append(el("p", "q", text), status, answer, list);
    thread.append(turn);
    let shown = "";
    const res = await fetch("ask", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "text/event-stream"},
      body: JSON.stringify({question: text, history: history.slice(-10), stream: true}),
    });
    if (res.status === 401) { location.reload(); return; }
    if (!res.ok || !res.body) { status.textContent = await failed(res); status.className = "status error"; return; }
    function handle(block) {
      let name = "message", data = "";
      for (const line of block.split("\\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (!data) return;
      const d = JSON.parse(data);
      if (name === "sources") { sources(d, list); status.textContent = "Answering\\u2026"; }
      else if (name === "queued") status.textContent = "Waiting for the model (" + d.position + " ahead)\\u2026";
      else if (name === "token") { shown += d.text; answer.textContent = shown; }
      else if (name === "error") { status.textContent = d.message; status.className = "status error"; }
      else if (name === "done") {
        answer.textContent = d.answer;
        sources(d.citations, list);
        status.textContent = d.cached === "answer" ? "From the answer cache" : (d.unsupported ? "No source supports this answer" : "");
        history.push({question: text, answer: d.answer});
        turn.dataset.done = "1";
      }
    }
    const reader = res.body.getReader(), decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      buf += decoder.decode(value, {stream: true});
      let i;
      while ((i = buf.indexOf("\\n\\n")) >= 0) { handle(buf.slice(0, i)); buf = buf.slice(i + 2); }
    }
  }

  $("ask").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = question.value.trim();
    if (!text) return;
    question.value = "";
    ask(text).catch((e) => { const p = el("p", "status error", String(e)); thread.append(p); });
  });
  question.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); $("ask").requestSubmit(); }
  });
  $("new").addEventListener("click", () => { history = []; thread.replaceChildren(); question.focus(); });
  $("search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = $("sq").value.trim();
    if (!q) return;
    const res = await fetch("search?" + new URLSearchParams({q: q, k: "8"}), {credentials: "same-origin"});
    results.replaceChildren();
    if (!res.ok) { results.append(el("li", "error", await failed(res))); return; }
    for (const r of (await res.json()).results) {
      const li = el("li");
      li.append(el("strong", null, r.title + (r.heading ? " \\u203a " + r.heading.split(" > ").pop() : "")));
      li.append(el("p", null, r.text.length > 240 ? r.text.slice(0, 239) + "\\u2026" : r.text));
      results.append(li);
    }
  });
})();
"""


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


SCRIPT_PATH = f"assets/ask-{_digest(SCRIPT).hex()[:16]}.js"  # relative: a proxy's prefix is kept
_STYLE = CSS + ASK_CSS
_STYLE_HASH = "'sha256-" + base64.b64encode(_digest(_STYLE)).decode() + "'"

# Its own style by hash, its own script from this origin, fetches to this origin only.
ASK_CSP = (
    "default-src 'none'; "
    f"style-src {_STYLE_HASH}; "
    "script-src 'self'; "
    "connect-src 'self'; "
    "img-src 'self' data:; "
    "base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)


def _document(title: str, body: str, script: bool) -> str:
    tail = f'<script src="{SCRIPT_PATH}"></script>' if script else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><main>{body}</main>{tail}</body></html>\n"
    )


def ask_document(vault_name: str, logout: bool) -> str:
    """The ask page: a question box, the thread of answers, search."""
    out = (
        '<form method="post" action="logout"><button class="plain" type="submit">Log out'
        "</button></form>" if logout else ""
    )
    body = (
        f'<header class="page"><h1>Ask {html.escape(vault_name)}</h1>{out}</header>'
        '<form id="ask" class="ask"><label for="q">Question</label>'
        '<textarea id="q" name="q" rows="3" required autofocus '
        'placeholder="Ask about your notes · 노트에 대해 물어보세요"></textarea>'
        '<div class="row"><button type="submit">Ask</button>'
        '<button class="plain" type="button" id="new">New thread</button></div></form>'
        '<div id="thread" aria-live="polite"></div>'
        '<details class="search"><summary>Search the notes</summary>'
        '<form id="search" class="row"><input id="sq" type="search" aria-label="Search">'
        '<button type="submit">Search</button></form><ol id="results"></ol></details>'
    )
    return _document(f"Ask {vault_name}", body, script=True)


def login_document(error: str = "") -> str:
    """The login form: the API token, posted to `login` (never put in a URL)."""
    note = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        '<header class="page"><h1>vaultbot</h1></header>'
        f'{note}<form method="post" action="login" class="ask">'
        '<label for="token">API token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required>'
        '<div class="row"><button type="submit">Log in</button></div></form>'
    )
    return _document("vaultbot: log in", body, script=False)
