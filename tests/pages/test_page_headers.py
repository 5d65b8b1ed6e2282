"""The headers of every HTML page the gateway serves on its own origin, for a visitor and for a
person signed in: no inline script runs on any (a strict Content-Security-Policy), none can be
framed under a visitor's click (``frame-ancestors``, ``X-Frame-Options``), none is sniffed as
something else, and none is kept by a cache."""

from __future__ import annotations

import markupsafe

from tests.pages.conftest import Pages

MARKUP = "Out now <script>alert(1)</script><img src=x onerror=alert(2)>"


def _problems(path: str, headers: dict[str, str]) -> list[str]:
    """What a page's headers lack, said per header."""
    csp = headers.get("Content-Security-Policy", "")
    out = []
    if "script-src 'self'" not in csp and "default-src 'none'" not in csp:
        out.append(f"{path}: scripts not limited to the gateway's own files ({csp!r})")
    if "unsafe-inline" in csp:
        out.append(f"{path}: inline script or style allowed ({csp!r})")
    if "frame-ancestors 'none'" not in csp or headers.get("X-Frame-Options") != "DENY":
        out.append(f"{path}: may be framed")
    if headers.get("X-Content-Type-Options") != "nosniff":
        out.append(f"{path}: may be sniffed")
    if headers.get("Cache-Control") != "no-store":
        out.append(f"{path}: may be cached ({headers.get('Cache-Control')!r})")
    return out


async def test_every_html_page_has_the_pages_headers(pages: Pages) -> None:
    """The start page, sign-in, queue, a post's and an account's pages, the public and audit
    pages, the app sign-in and the sandbox platform's timeline: each HTML answer carries the
    pages' headers. (Before, the sandbox's timeline, on the gateway's own origin beside the
    people's pages, had none: no Content-Security-Policy behind its escaping, and it could be
    framed.) The timeline shows a post's markup as text."""
    gw = pages.gateway
    held = await gw.submit("carol", "cosigned", "Launch")
    await gw.submit("alice", "direct", MARKUP)
    await gw.tick()
    bob = await pages.person("bob")
    visitor = await pages.visitor()
    problems: list[str] = []
    seen = 0
    for browser, paths in (
        (visitor, ("/", "/signin", "/@direct", "/audit", "/oauth/authorize", "/sandbox/direct")),
        (bob, ("/queue", f"/posts/{held['id']}", "/accounts/cosigned", "/@direct", "/sandbox/direct")),
    ):
        for path in paths:
            async with browser.session.get(pages.base + path, allow_redirects=False) as answer:
                assert answer.content_type == "text/html", (path, answer.status)
                problems += _problems(path, dict(answer.headers))
                seen += 1
                if path == "/sandbox/direct":
                    text = await answer.text()
                    assert answer.status == 200 and str(markupsafe.escape(MARKUP)) in text
                    assert "<script>alert" not in text and "<img" not in text
    assert (seen, problems) == (11, [])
