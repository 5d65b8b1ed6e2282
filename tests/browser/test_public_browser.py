"""The transparency page in a real headless Chromium, on both databases: the page checks what it
shows against the signed log in the visitor's browser, and flags the post a lying server altered.

Chromium comes from Debian (``tests/browser/install.sh``); a missing browser fails these tests.
Set ``BYLINE_SCREENSHOTS=1`` to save the page to docs/screenshots/transparency.png.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, expect

from gateway.appkeys import DB
from tests.audit.logtools import Attacker
from tests.browser.axe import assert_accessible
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import Gateway
from tests.pages.public_story import Story, tell

ROOT = Path(__file__).resolve().parents[2]
CHECKED = 'html[data-checked="done"]'


def _shared_dir() -> Path:
    override = os.environ.get("BYLINE_SHARED_DIR")
    return Path(override) if override else ROOT.parent / "shared"


VECTORS = _shared_dir() / "testdata"


@pytest.fixture
async def story(gateway: Gateway) -> Story:
    """Posts on every tier, a deletion, words that never went out, and a change of tier."""
    return await tell(gateway)


def _base(gateway: Gateway) -> str:
    return str(gateway.client.make_url("")).rstrip("/")


async def _open(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A page opened and checked by its script; the Content-Security-Policy complaints it logged."""
    page = await browser.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(url)
    await page.wait_for_selector(CHECKED, state="attached", timeout=30_000)
    return page, problems


async def _statuses(page: Page) -> dict[str, str]:
    """Each checked item's status, by its id."""
    found: dict[str, str] = await page.evaluate(
        """() => Object.fromEntries(Array.from(document.querySelectorAll('.checked'),
             (item) => [item.id, item.querySelector('.status').textContent]))"""
    )
    return found


async def _size(gateway: Gateway) -> int:
    async with gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT MAX(size) AS size FROM log_checkpoints")
    assert row is not None
    return int(row["size"])


async def test_visitor_sees_every_post_verified(gateway: Gateway, story: Story, browser: Browser) -> None:
    """A visitor reads the page of an account whose tier changed: every post and voice change verified."""
    page, problems = await _open(browser, _base(gateway) + "/@direct")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Transparency: @direct")
    size = await _size(gateway)
    statuses = await _statuses(page)
    assert statuses == {
        **{f"voice-{i}": f"Verified against checkpoint {size}." for i in await _voice_ids(page)},
        **{f"post-{p}": f"Verified against checkpoint {size}."
           for p in (story.team_post, story.deleted, story.hostile, story.first)},
    }
    await expect(page.locator("#check-summary")).to_have_text(
        f"All 6 items on this page verified against checkpoint {size}.")
    await expect(page.locator("#check-summary")).to_have_attribute("role", "status")
    assert await page.locator(".status.verified").count() == 6
    assert problems == []
    if SCREENSHOTS:
        await page.set_viewport_size({"width": 1100, "height": 900})
        target = ROOT / "docs" / "screenshots" / "transparency.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(target), full_page=True)


async def _voice_ids(page: Page) -> list[str]:
    ids: list[str] = await page.evaluate(
        "() => Array.from(document.querySelectorAll('.voice > li'), (li) => li.id.replace('voice-', ''))"
    )
    assert len(ids) == 2
    return ids


async def test_adopted_and_cosigned_posts_verify(gateway: Gateway, story: Story, browser: Browser) -> None:
    """Suggested-by, adopted-by and approved-by are each checked against their entries."""
    for account, post in (("managed", story.adopted), ("cosigned", story.cosigned)):
        page, problems = await _open(browser, f"{_base(gateway)}/@{account}")
        statuses = await _statuses(page)
        assert statuses[f"post-{post}"].startswith("Verified against checkpoint"), statuses
        assert all(s.startswith("Verified") for s in statuses.values()), statuses
        assert problems == []


async def test_altered_words_are_flagged_for_that_post_only(
    gateway: Gateway, story: Story, browser: Browser
) -> None:
    """The server changes a post's words after it went out: that post fails, the others verify."""
    async with gateway.app[DB].write() as txn:
        await txn.execute("UPDATE posts SET published_text = ? WHERE id = ?", "Words it never posted", story.first)
    page, _ = await _open(browser, _base(gateway) + "/@direct")
    card = page.locator(f"#post-{story.first}")
    await expect(card.locator(".text")).to_have_text("Words it never posted")
    await expect(card.get_by_role("status")).to_have_text(
        "Does not match the signed log: the words shown are not the words the log committed to.")
    await expect(card.get_by_role("status")).to_have_class("status unverified")
    statuses = await _statuses(page)
    failing = {k for k, v in statuses.items() if not v.startswith("Verified")}
    assert failing == {f"post-{story.first}"}
    await expect(page.locator("#check-summary")).to_have_text("1 of 6 items on this page do not match the signed log.")


async def test_forged_log_entry_is_flagged_for_that_post_only(
    gateway: Gateway, db_url: str, story: Story, browser: Browser
) -> None:
    """A forged entry (another author put in the log's stored bytes) is not in the signed tree: flagged."""
    async with gateway.app[DB].read() as txn:
        row = await txn.fetchone(
            "SELECT idx, entry FROM log_entries WHERE post_id = ? AND type = 'post.submitted'", story.hostile
        )
    assert row is not None
    forged = bytes(row["entry"]).replace(b'"actor":"alice"', b'"actor":"mallory"')
    assert forged != bytes(row["entry"])
    await Attacker(db_url).run(("UPDATE log_entries SET entry = ? WHERE idx = ?", (forged, int(row["idx"]))))
    page, _ = await _open(browser, _base(gateway) + "/@direct")
    card = page.locator(f"#post-{story.hostile}")
    await expect(card.locator(".byline bdi").first).to_have_text("mallory")
    await expect(card.get_by_role("status")).to_have_text(
        f"Does not match the signed log: entry {row['idx']} is not in the signed tree.")
    statuses = await _statuses(page)
    assert {k for k, v in statuses.items() if not v.startswith("Verified")} == {f"post-{story.hostile}"}


async def test_a_forged_checkpoint_fails_every_item(gateway: Gateway, story: Story, browser: Browser) -> None:
    """A page whose key is not the key the log serves verifies nothing."""
    page = await browser.new_page()

    async def other_key(route: Any) -> None:
        await route.fulfill(status=200, content_type="text/plain",
                            body="PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")

    await page.route("**/log/key", other_key)
    await page.goto(_base(gateway) + "/@direct")
    await page.wait_for_selector(CHECKED, state="attached", timeout=30_000)
    await expect(page.locator("#check-summary")).to_have_text(
        "Nothing on this page could be verified: the key served at /log/key is not the key shown on this page.")
    assert await page.locator(".status.verified").count() == 0


def _vectors(pattern: str) -> list[dict[str, Any]]:
    files = sorted((VECTORS / "rfc6962").glob(pattern))
    assert files, f"no test vectors under {VECTORS}; set BYLINE_SHARED_DIR to the shared dir"
    return [{"name": f.relative_to(VECTORS).as_posix(), **json.loads(f.read_text())} for f in files]


async def test_verifier_primitives_pass_the_shared_vectors(gateway: Gateway, browser: Browser) -> None:
    """verify.js's signed-note and Merkle checks agree with the shared C2SP and RFC 6962 vectors."""
    note = json.loads((VECTORS / "signed-note" / "vector.json").read_text())
    inclusion = _vectors("inclusion/**/*.json")
    page = await browser.new_page()
    await page.goto(_base(gateway) + "/audit")
    await page.wait_for_function("() => typeof window.BylineVerify === 'object'")
    result = await page.evaluate(
        """async ([note, vectors]) => {
          const V = window.BylineVerify;
          const out = {note: {}, inclusion: {}, leaf: null};
          const key = await V.parseVerifierKey(note.verifier_key);
          out.note.text = await V.openNote(note.signed_note, key);
          out.note.badKeys = [];
          for (const bad of note.bad_verifier_keys) {
            try { await V.parseVerifierKey(bad); out.note.badKeys.push('accepted'); }
            catch (e) { out.note.badKeys.push('refused'); }
          }
          const tampered = note.signed_note.replace('cryptography', 'cryptographY');
          try { await V.openNote(tampered, key); out.note.tampered = 'accepted'; }
          catch (e) { out.note.tampered = e.message; }
          const unsigned = note.signed_note.replace('PeterNeumann x08', 'SomeoneElse x08');
          try { await V.openNote(unsigned, key); out.note.unsigned = 'accepted'; }
          catch (e) { out.note.unsigned = e.message; }
          out.leaf = btoa(String.fromCharCode(...await V.leafHash(new Uint8Array(0))));
          for (const v of vectors) {
            let ok;
            try {
              const root = await V.rootFromInclusion(V.fromBase64(v.leafHash), v.leafIdx, v.treeSize,
                                                     (v.proof || []).map(V.fromBase64));
              ok = V.toHex(root) === V.toHex(V.fromBase64(v.root || ''));
            } catch (e) { ok = false; }
            out.inclusion[v.name] = ok;
          }
          return out;
        }""",
        [note, inclusion],
    )
    assert result["note"]["text"] == note["text"]
    assert result["note"]["badKeys"] == ["refused"] * len(note["bad_verifier_keys"])
    assert result["note"]["tampered"] == "the checkpoint's signature does not verify"
    assert result["note"]["unsigned"] == "the checkpoint is not signed by the log's key"
    assert result["leaf"] == "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="
    expected = {v["name"]: not v["wantErr"] for v in inclusion}
    assert result["inclusion"] == expected
    assert sum(expected.values()) >= 5 and len(expected) - sum(expected.values()) >= 20


async def test_public_and_audit_pages_are_accessible(gateway: Gateway, story: Story, browser: Browser) -> None:
    """/@account once checked, and /audit with results and with an error, pass axe at two widths."""
    page, _ = await _open(browser, _base(gateway) + "/@direct")
    await assert_accessible(page)
    page, _ = await _open(browser, f"{_base(gateway)}/audit?kind=person&q=bob")
    assert await page.locator("article.post").count() == 3
    await assert_accessible(page)
    page = await browser.new_page()
    await page.goto(_base(gateway) + "/audit?kind=post&q=not-an-id")
    await expect(page.get_by_role("alert")).to_have_text("A post id is made of digits only.")
    await assert_accessible(page)


async def test_the_page_reads_without_scripts(gateway: Gateway, story: Story, browser: Browser) -> None:
    """With scripts off everything is shown, with a note that checking needs scripts or the CLI."""
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await page.goto(_base(gateway) + "/@direct")
    await expect(page.locator("#check-summary")).to_contain_text("byline audit verify")
    await expect(page.locator(f"#post-{story.first} .text")).to_have_text("Our first post")
    await expect(page.locator("#verifier-key")).to_have_text(await _key(gateway))
    await context.close()


async def _key(gateway: Gateway) -> str:
    status, body = await gateway.call(None, "GET", "/log/key")
    assert status == 200
    return str(body).strip()
