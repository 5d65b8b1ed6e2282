"""An accessibility check in the page: axe-core (from npm, tests/browser/node_modules) run in
Chromium, at a phone's width and a desktop's.

axe is evaluated through the DevTools protocol, not added as a ``<script>``: the pages' strict
Content-Security-Policy refuses inline scripts, and the check must not loosen it.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from playwright.async_api import Page

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@cache
def _source() -> str:
    assert AXE.exists(), f"{AXE} is missing: run tests/browser/install.sh"
    return AXE.read_text(encoding="utf-8")


async def serious_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe finds in the page as it is now."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(_source() + "\n;undefined")
    result = await page.evaluate("async () => (await axe.run(document)).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result if v["impact"] in ("serious", "critical")
    ]


async def assert_accessible(page: Page) -> None:
    """No serious or critical axe violation, at a phone's width and at a desktop's."""
    found = {}
    for name, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        if violations := await serious_violations(page):
            found[name] = violations
    assert found == {}, f"accessibility problems in {page.url}"
