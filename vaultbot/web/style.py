"""The note page's stylesheet and the HTTP headers that go with it.

Inline, allowed by its hash in the Content-Security-Policy: the page loads nothing else (no CDN,
no web fonts: the Mac serving it may be offline) and runs no script. The cited passage scrolls
into view through the `#cited` fragment and `scroll-margin-top`, which needs none.
"""

from __future__ import annotations

import base64
import hashlib

__all__ = ["CSP", "CSS", "SECURITY_HEADERS", "csp"]

CSS = """\
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#656d76;--line:#d8dee4;\
--soft:#f6f8fa;--link:#0969da;--mark:#fff3b0;--cited:#fff8c5;--cited-edge:#d4a72c;\
--note:#0969da;--tip:#1a7f37;--warn:#9a6700;--danger:#cf222e;--quote:#8250df}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;\
--line:#30363d;--soft:#161b22;--link:#4493f8;--mark:#5c4a00;--cited:#2e2a12;\
--cited-edge:#bb8009;--note:#4493f8;--tip:#3fb950;--warn:#d29922;--danger:#f85149;\
--quote:#ab7df8}}
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:16px/1.65 system-ui,-apple-system,\
"Segoe UI",Roboto,"Helvetica Neue","Apple SD Gothic Neo","Noto Sans KR","Malgun Gothic",\
"Noto Sans CJK KR","Noto Sans",sans-serif;word-break:keep-all;overflow-wrap:anywhere}
main{max-width:46rem;margin:0 auto;padding:1rem}
header.page{border-bottom:1px solid var(--line);margin-bottom:1rem;padding-bottom:.5rem}
h1,h2,h3,h4,h5,h6{line-height:1.3;margin:1.4em 0 .5em;scroll-margin-top:1rem}
header.page h1{margin:.3em 0}
.meta{color:var(--muted);font-size:.875rem;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
.trail{color:var(--muted);font-size:.875rem}
a{color:var(--link)}
a.open{display:inline-block;margin-top:.5rem;font-size:.875rem}
p,ul,ol,dl,table,pre,blockquote,details,.callout{margin:0 0 1em}
ul,ol{padding-left:1.5em}
li>ul,li>ol{margin:0}
.task-list-item{list-style:none}
.task-list-item input{margin:0 .4em 0 -1.3em;vertical-align:middle}
code,kbd,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"D2Coding",\
"Noto Sans Mono CJK KR",monospace;font-size:.9em}
code{background:var(--soft);border-radius:4px;padding:.1em .3em}
pre{background:var(--soft);border-radius:6px;padding:.75rem;overflow-x:auto;\
word-break:normal;overflow-wrap:normal}
pre code{background:none;padding:0}
blockquote{margin-left:0;padding:0 1em;border-left:3px solid var(--line);color:var(--muted)}
table{display:block;overflow-x:auto;border-collapse:collapse;max-width:100%}
th,td{border:1px solid var(--line);padding:.35em .6em;vertical-align:top}
th{background:var(--soft)}
.align-center{text-align:center}.align-right{text-align:right}
hr{border:0;border-top:1px solid var(--line);margin:1.5em 0}
mark{background:var(--mark);color:inherit;padding:0 .1em}
.tag{background:var(--soft);border-radius:1em;padding:0 .45em;font-size:.875em;\
text-decoration:none;color:var(--link);white-space:nowrap}
.unlinked{color:var(--muted);text-decoration:underline dotted}
.embed{display:block;border-left:3px solid var(--line);padding:.25em 0 .25em 1em;margin:0 0 1em}
.embed-file{display:inline-block;border:1px dashed var(--line);border-radius:4px;\
padding:0 .4em;color:var(--muted);font-size:.875em}
.embed-file::before{content:"\\1F4CE\\00A0"}
.embed-image::before{content:"\\1F5BC\\FE0F\\00A0"}
.callout{--c:var(--note);border-left:4px solid var(--c);background:var(--soft);\
border-radius:4px;padding:.6em 1em}
.callout-title{font-weight:600;color:var(--c)}
summary.callout-title{cursor:pointer}
.callout-content>:last-child{margin-bottom:0}
.callout-content{margin-top:.4em}
.callout[data-callout=tip],.callout[data-callout=success],.callout[data-callout=check],\
.callout[data-callout=done]{--c:var(--tip)}
.callout[data-callout=warning],.callout[data-callout=caution],.callout[data-callout=attention],\
.callout[data-callout=question],.callout[data-callout=faq],.callout[data-callout=help]\
{--c:var(--warn)}
.callout[data-callout=danger],.callout[data-callout=error],.callout[data-callout=bug],\
.callout[data-callout=failure],.callout[data-callout=fail]{--c:var(--danger)}
.callout[data-callout=quote],.callout[data-callout=cite],.callout[data-callout=example]\
{--c:var(--quote)}
.cited{background:var(--cited);box-shadow:-.6rem 0 0 var(--cited),-.75rem 0 0 var(--cited-edge);\
scroll-margin-top:30vh}
.cited:has(+.cited){margin-bottom:0;padding-bottom:1em}
.cited-anchor{display:block;scroll-margin-top:30vh}
.props{font-size:.875rem;margin:0 0 1.25rem;width:100%}
.props th{text-align:left;font-weight:500;color:var(--muted);white-space:nowrap}
.notice{border:1px solid var(--cited-edge);background:var(--cited);border-radius:6px;\
padding:.75rem 1rem;margin:0 0 1.25rem}
.notice pre{white-space:pre-wrap;word-break:keep-all;overflow-wrap:anywhere;margin:.5em 0 0}
.footnotes{font-size:.875rem;color:var(--muted)}
.unavailable{text-align:center;padding-top:20vh;color:var(--muted)}
@media (min-width:48rem){main{padding:2rem}body{font-size:17px}}
"""


def _source_hash(text: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"
    )


def csp(style: str = CSS) -> str:
    """The page's Content-Security-Policy: nothing loads or runs but its own inline style (by
    hash); images only from this server or data: URLs; never framed; forms post only here."""
    return (
        "default-src 'none'; "
        f"style-src {_source_hash(style)}; "
        "img-src 'self' data:; "
        "script-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


CSP = csp()

# What the note-page routes should send with every page (refusals included). A page's URL is a
# capability: `no-referrer` keeps it from leaking to the sites the note links to.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "private, no-store",
}
