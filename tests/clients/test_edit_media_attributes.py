"""``PUT /api/v1/statuses/:id`` with ``media_attributes[]`` (Mastodon 4.1: how apps change a
picture's alt text or focal point while editing a status), with ``quoted_status_id`` (refused)
and ``quote_approval_policy`` (taken, as with a new status), driven by Mastodon.py and by plain
form and JSON bodies against a real gateway and the Mastodon stand-in, both databases. Before,
media_attributes and a quoted status got 200 and were ignored: the app showed its person new
alt text that never changed."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from mastodon import MastodonAPIError

from gateway.services.posts import PostService
from tests.audit.logtools import Attacker
from tests.clients.test_media_update import (
    PNG,
    _another_on_mastodon,
    _approved_with_an_image,
    _cosigned_on_mastodon,
    _log,
    _media_row,
    _out_once_dave_approves,
    _published_alt_texts,
    _verify,
)
from tests.clients.world import World
from tests.pages.conftest import pages_on

TOO_LONG = "Validation failed: Description is too long (maximum is 1500 characters)"
FOCUS_REFUSED = "Validation failed: Focus must be two numbers from -1.0 to 1.0, written x,y"


async def _put(world: World, status_id: str, body: Any, *, form: bool) -> tuple[int, dict[str, Any]]:
    """A PUT of a status as an app sends it: form-encoded (``media_attributes[][id]=…``) or JSON."""
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        sent = {"data": body} if form else {"json": body}
        async with session.put(f"{world.base}/api/v1/statuses/{status_id}", **sent) as response:
            return response.status, await response.json()


async def _scheduled_with_pictures(world: World, *descriptions: str) -> tuple[str, list[str]]:
    """alice's post on ``masto`` scheduled an hour off, with a picture for each description."""
    api = await world.client("alice", "masto")
    media = [await world.run(api.media_post, PNG, mime_type="image/png", description=d) for d in descriptions]
    when = world.gateway.clock.now() + timedelta(hours=1)
    status = await world.run(api.status_post, "Pictures", media_ids=media, scheduled_at=when)
    return str(status.id), [str(m.id) for m in media]


async def _version(world: World, post_id: str) -> tuple[str, int]:
    post = await world.gateway.get("alice", post_id)
    return post["state"], post["version"]


async def test_new_alt_text_in_an_edit_of_an_approved_post_goes_back_to_its_approvers(
    world: World, policy_dir: Path,
) -> None:
    """Mastodon.py's ``status_update(media_attributes=…)`` on a co-signed post already approved:
    words, alt text and focal point change in one new version, logged as one edit naming the
    upload; the post is held again, the approval given no longer sends it out, and once approved
    again the new alt text and crop reach the platform. The log verifies."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    api = await world.client("alice", "mastoco")
    change = api.generate_media_edit_attributes(media_id, description="Our mascot, a ginger cat", focus=(0.5, -0.5))
    edited = await world.run(api.status_update, post_id, "Our mascot, asleep", media_attributes=[change])
    assert [(m.description, m.meta.focus) for m in edited.media_attachments] == [
        ("Our mascot, a ginger cat", {"x": 0.5, "y": -0.5})]
    post = await world.gateway.get("alice", post_id)
    assert (post["state"], post["version"], post["text"]) == ("held", 2, "Our mascot, asleep")
    assert await _media_row(world, media_id) == {
        "description": "Our mascot, a ginger cat", "focus": "0.5,-0.5", "post_id": post_id}
    edited_entries = [d for kind, d in await _log(world, post_id) if kind == "post.edited"]
    assert [(d["version"], d.get("described"), d.get("refocused"), d["state"]) for d in edited_entries] == [
        (2, [media_id], [media_id], "held")]
    assert (await _verify(world)).code == 0
    await _out_once_dave_approves(world, post_id)
    assert _published_alt_texts(world, "brandco") == [["Our mascot, a ginger cat"]]
    [account] = [a for a in world.upstream.accounts.values() if a.username == "brandco"]
    [sent] = world.upstream.statuses(account)
    assert (sent.text, [world.upstream.media[m].focus for m in sent.media_ids]) == (
        "Our mascot, asleep", [(0.5, -0.5)])
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_new_alt_text_racing_the_publishers_claim_never_goes_out_unapproved(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mastodon.py's ``status_update(media_attributes=…)`` on an approved co-signed post at its
    time, checked (the post still scheduled) just before the publisher claims and publishes it:
    the edit's transaction finds the post gone out and is refused (409), nothing of it is kept
    (the upload's alt text, the record, the log), and the platform has what bob approved. The
    log verifies. Held by the edit's transaction judging the post as it finds it (authorized and
    its transition checked again): without that, the upload would say what no one approved and
    the log would hold an edit of a published post."""
    status_id, media_id = await _approved_with_an_image(world, policy_dir)
    api = await world.client("alice", "mastoco")
    world.gateway.clock.advance(timedelta(minutes=2))
    words_seen, armed = PostService._words_seen, [True]

    async def claimed_meanwhile(self: PostService, *args: Any, **kwargs: Any) -> Any:
        # The edit has found the post scheduled and is reading its uploads for the rules.
        if kwargs.get("described") and armed:
            armed.clear()
            assert await world.gateway.tick() == 1
        return await words_seen(self, *args, **kwargs)

    monkeypatch.setattr(PostService, "_words_seen", claimed_meanwhile)
    change = api.generate_media_edit_attributes(media_id, description="Not what bob approved")
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_update, status_id, "Our mascot", media_attributes=[change])
    assert caught.value.args[1] == 409, caught.value.args
    post = await world.gateway.get("alice", status_id)
    assert (post["state"], post["version"]) == ("published", 1)
    assert (await _media_row(world, media_id))["description"] == "A cat"
    assert [kind for kind, _ in await _log(world, status_id) if kind == "post.edited"] == []
    assert _published_alt_texts(world, "brandco") == [["A cat"]]
    result = await _verify(world)
    assert result.code == 0, result.text


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_media_attributes_as_a_form_or_json_change_each_upload_named(world: World, form: bool) -> None:
    """Two pictures, each given new alt text (one also a focal point) by an edit sent as a form
    (``media_attributes[][id]=…``, Rails' list of hashes) or as JSON, without ``media_ids``: one
    new version, each upload its own change, and that is what goes out."""
    post_id, (first, second) = await _scheduled_with_pictures(world, "One", "Two")
    if form:
        body: Any = [("status", "Pictures"),
                     ("media_attributes[][id]", first), ("media_attributes[][description]", "The first"),
                     ("media_attributes[][id]", second), ("media_attributes[][description]", "The second"),
                     ("media_attributes[][focus]", "-0.25,1")]
    else:
        body = {"status": "Pictures", "media_attributes": [
            {"id": first, "description": "The first"},
            {"id": second, "description": "The second", "focus": "-0.25,1"}]}
    code, answer = await _put(world, post_id, body, form=form)
    assert code == 200, answer
    assert [(m["id"], m["description"], m["meta"].get("focus")) for m in answer["media_attachments"]] == [
        (first, "The first", None), (second, "The second", {"x": -0.25, "y": 1.0})]
    assert await _version(world, post_id) == ("scheduled", 2)
    world.gateway.clock.advance(timedelta(hours=2))
    await world.gateway.tick()
    assert _published_alt_texts(world) == [["The first", "The second"]]
    result = await _verify(world)
    assert result.code == 0, result.text


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_a_media_id_of_another_status_is_refused_and_changes_nothing(world: World, form: bool) -> None:
    """An edit whose ``media_attributes[]`` names the upload of another of alice's statuses: 422
    naming it; neither status gets a new version, and that upload keeps its alt text."""
    post_id, [mine] = await _scheduled_with_pictures(world, "Mine")
    other_id, [theirs] = await _scheduled_with_pictures(world, "Theirs")
    if form:
        body: Any = [("status", "Pictures"), ("media_attributes[][id]", theirs),
                     ("media_attributes[][description]", "Changed from elsewhere")]
    else:
        body = {"status": "Pictures", "media_attributes": [{"id": theirs, "description": "Changed from elsewhere"}]}
    code, answer = await _put(world, post_id, body, form=form)
    assert (code, answer["error"]) == (422, f"Validation failed: Media {theirs} is not attached to this status")
    assert await _version(world, post_id) == ("scheduled", 1)
    assert await _version(world, other_id) == ("scheduled", 1)
    assert (await _media_row(world, theirs))["description"] == "Theirs"
    assert (await _media_row(world, mine))["description"] == "Mine"
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_mastodon_py_naming_another_statuses_upload_is_refused(world: World) -> None:
    """The same through Mastodon.py, which also sends the named ids as ``media_ids``: 422, and
    nothing changes."""
    api = await world.client("alice", "masto")
    post_id, _ = await _scheduled_with_pictures(world, "Mine")
    _, [theirs] = await _scheduled_with_pictures(world, "Theirs")
    change = api.generate_media_edit_attributes(theirs, description="Changed from elsewhere")
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_update, post_id, "Pictures", media_attributes=[change])
    assert caught.value.args[1] == 422
    assert await _version(world, post_id) == ("scheduled", 1)
    assert (await _media_row(world, theirs))["description"] == "Theirs"
    result = await _verify(world)
    assert result.code == 0, result.text


@pytest.mark.parametrize(("attributes", "error"), [
    ({"description": "x" * 1501}, TOO_LONG),
    ({"focus": "1.5,0"}, FOCUS_REFUSED),
    ({"focus": "nan,0"}, FOCUS_REFUSED),
    ({"thumbnail": "data:image/png;base64,AAAA"}, "Validation failed: Byline does not carry custom thumbnails"),
])
async def test_bad_media_attributes_are_refused_as_the_media_put_refuses_them(
    world: World, attributes: dict[str, str], error: str,
) -> None:
    """Alt text too long, a focal point out of range, a custom thumbnail: Mastodon's 422 in the
    words ``PUT /api/v1/media/:id`` uses, and neither the words nor the upload change."""
    post_id, [media] = await _scheduled_with_pictures(world, "A cat")
    code, answer = await _put(world, post_id, {"status": "Changed words",
                                               "media_attributes": [{"id": media, **attributes}]}, form=False)
    assert (code, answer["error"]) == (422, error)
    assert await _version(world, post_id) == ("scheduled", 1)
    assert (await world.gateway.get("alice", post_id))["text"] == "Pictures"
    assert await _media_row(world, media) == {"description": "A cat", "focus": None, "post_id": post_id}


async def _published_with_a_picture(world: World, account: str = "masto") -> tuple[Any, Any, Any]:
    """alice's status with one picture ("A cat") on ``account``, published: the app's client,
    the status and the upload."""
    api = await world.client("alice", account)
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "A picture", media_ids=[media])
    if account == "mastoco":
        code, body = await world.gateway.act("bob", status.id, "approve")
        assert (code, body["state"]) == (200, "scheduled"), body
        world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert (await _version(world, str(status.id)))[0] == "published"
    return api, status, media


def _sent(world: World, username: str = "brand") -> Any:
    """The one status on the stand-in account ``username``."""
    [account] = [a for a in world.upstream.accounts.values() if a.username == username]
    [sent] = world.upstream.statuses(account)
    return sent


async def _ginger_cat_out(world: World, sent: Any, text: str, media_id: str, status_id: str) -> None:
    """``sent`` shows ``text`` on the platform, edited once to give its picture the alt text "A
    ginger cat" and the focal point (0.5, -0.5), which the upload of the status keeps too."""
    [upstream_media] = [world.upstream.media[m] for m in sent.media_ids]
    assert (sent.text, upstream_media.description, upstream_media.focus) == (text, "A ginger cat", (0.5, -0.5))
    assert sent.media_edits == [{upstream_media.id: {"description": "A ginger cat", "focus": (0.5, -0.5)}}]
    assert await _media_row(world, media_id) == {
        "description": "A ginger cat", "focus": "0.5,-0.5", "post_id": str(status_id)}


async def test_new_alt_text_of_a_published_post_reaches_the_platform_with_its_words(world: World) -> None:
    """Mastodon.py's ``status_update(media_attributes=…)`` on a published post of a direct
    account: the platform's edit carries the words, the alt text and the focal point (its
    ``media_ids`` and ``media_attributes[]``); the record keeps them in the new version, the log's
    ``post.revising`` and ``post.revised`` hash what went out, and the log verifies. The same alt
    text again (as an app sends what it read) sends no media change. Before: 422."""
    api, status, media = await _published_with_a_picture(world)
    change = api.generate_media_edit_attributes(media, description="A ginger cat", focus=(0.5, -0.5))
    edited = await world.run(api.status_update, status, "A picture, edited", media_attributes=[change])
    assert [(m.description, m.meta.focus) for m in edited.media_attachments] == [
        ("A ginger cat", {"x": 0.5, "y": -0.5})]
    await _ginger_cat_out(world, _sent(world), "A picture, edited", media.id, status.id)
    history = await world.run(api.status_history, status)
    assert [[m.description for m in h.media_attachments] for h in history] == [["A cat"], ["A ginger cat"]]
    entries = {kind: d for kind, d in await _log(world, str(status.id))}
    assert entries["post.revising"]["content_sha256"] == entries["post.revised"]["content_sha256"]
    assert entries["post.revised"]["content_sha256"] != entries["post.publishing"]["content_sha256"]
    same = api.generate_media_edit_attributes(media, description="A ginger cat")
    again = await world.run(api.status_update, status, "A picture, edited twice", media_attributes=[same])
    assert [m.description for m in again.media_attachments] == ["A ginger cat"]
    assert (_sent(world).text, len(_sent(world).media_edits)) == ("A picture, edited twice", 1)
    result = await _verify(world)
    assert result.code == 0, result.text


async def _held_alt_text(world: World, policy_dir: Path) -> tuple[Any, Any, Any, Any]:
    """alice's published picture on co-signed ``mastoco``, and her Mastodon.py edit of its words,
    alt text and focal point, held as its pending revision: the app's client, the status, the
    upload and the status the edit answered."""
    await _cosigned_on_mastodon(world, policy_dir)
    api, status, media = await _published_with_a_picture(world, "mastoco")
    change = api.generate_media_edit_attributes(media, description="A ginger cat", focus=(0.5, -0.5))
    answered = await world.run(api.status_update, status, "A picture, edited", media_attributes=[change])
    return api, status, media, answered


async def test_new_alt_text_of_a_published_co_signed_post_waits_with_its_words(
    world: World, policy_dir: Path,
) -> None:
    """On a co-signed account, Mastodon.py's ``status_update(media_attributes=…)`` of a published
    post is held as its pending revision, alt text and focal point with the words (before: 422,
    "edit the words alone"): the platform and the upload keep the published ones; the approver's
    card shows the new ones; a second edit of the words alone keeps them; once approved they reach
    the platform in its edit (``media_ids`` and ``media_attributes[]``), the record keeps them,
    never as options of the published post, the log hashes what went out as approved, and verifies."""
    gw = world.gateway
    api, status, media, answered = await _held_alt_text(world, policy_dir)
    assert (answered.id, answered.byline.state) == (status.id, "published")
    assert [m.description for m in answered.media_attachments] == ["A cat"]
    held = answered.byline.pending_revision
    assert (held.state, held.approvals_needed) == ("held", 1)
    assert held.media_attributes == [{"id": str(media.id), "description": "A ginger cat", "focus": "0.5,-0.5"}]
    sent = _sent(world, "brandco")
    assert (sent.text, sent.media_edits, _published_alt_texts(world, "brandco")) == ("A picture", [], [["A cat"]])
    assert await _media_row(world, media.id) == {"description": "A cat", "focus": None, "post_id": str(status.id)}
    again = await world.run(api.status_update, status, "A picture, edited again")
    assert again.byline.pending_revision.id == held.id
    async with pages_on(gw) as pages:
        bob = await pages.person("bob")
        _, queue = await bob.get("/queue")
        [card] = re.findall(rf'<article class="card post"[^>]*data-post="{held.id}".*?</article>', queue, re.DOTALL)
        assert "alt text: <bdi>A ginger cat</bdi>; previews crop it around: bottom right (x 0.5, y -0.5)" in card
    code, body = await gw.act("bob", held.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    gw.clock.advance(timedelta(minutes=2))
    await gw.tick()
    await gw.tick()
    await _ginger_cat_out(world, sent, "A picture, edited again", media.id, status.id)
    shown = await world.run(api.status, status)
    assert ([m.description for m in shown.media_attachments], shown.byline.version) == (["A ginger cat"], 2)
    assert "media_attributes" not in (await gw.get("alice", str(status.id)))["options"]
    approved = [d["content_sha256"] for kind, d in await _log(world, held.id) if kind == "post.edited"]
    entries = {kind: d for kind, d in await _log(world, str(status.id))}
    assert entries["post.revising"]["revision_content_sha256"] == approved[-1]
    assert entries["post.revised"]["revision_content_sha256"] == approved[-1]
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_a_later_held_edit_sets_the_alt_text_back_to_the_published_one(
    world: World, policy_dir: Path,
) -> None:
    """Mastodon.py's second edit of a co-signed published post, whose pending revision holds new
    alt text, gives the picture its published alt text again: the pending revision holds that,
    with the focal point the first edit gave, and that is what goes out once approved. Before,
    the second edit answered 200 and the revision kept the alt text the person took back."""
    gw = world.gateway
    api, status, media, answered = await _held_alt_text(world, policy_dir)
    held = answered.byline.pending_revision
    back = api.generate_media_edit_attributes(media, description="A cat")
    again = await world.run(api.status_update, status, "A picture, edited", media_attributes=[back])
    assert again.byline.pending_revision.id == held.id
    assert again.byline.pending_revision.media_attributes == [
        {"id": str(media.id), "description": "A cat", "focus": "0.5,-0.5"}]
    assert await _media_row(world, media.id) == {"description": "A cat", "focus": None, "post_id": str(status.id)}
    code, body = await gw.act("bob", held.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    gw.clock.advance(timedelta(minutes=2))
    await gw.tick()
    await gw.tick()
    sent = _sent(world, "brandco")
    [upstream_media] = [world.upstream.media[m] for m in sent.media_ids]
    assert (sent.text, upstream_media.description, upstream_media.focus) == ("A picture, edited", "A cat", (0.5, -0.5))
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_held_alt_text_changed_in_the_database_is_named_by_the_verifier(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """Someone with the database changes the alt text an approved pending revision holds before
    it goes out: the gateway cannot tell, and it goes out so; but its entries hash what it sent
    as its approved version was hashed, and ``byline audit verify`` names it as sent other than
    approved (the held alt text is bound as the words are)."""
    gw = world.gateway
    _, status, media, answered = await _held_alt_text(world, policy_dir)
    held = answered.byline.pending_revision
    code, body = await gw.act("bob", held.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    options = (await gw.get("alice", held.id))["options"]
    assert options["media_attributes"] == {str(media.id): ["A ginger cat", "0.5,-0.5"]}
    forged = {**options, "media_attributes": {str(media.id): ["Not what bob approved", "0.5,-0.5"]}}
    await Attacker(db_url).run(("UPDATE posts SET options = ? WHERE id = ?", (json.dumps(forged), held.id)))
    gw.clock.advance(timedelta(minutes=2))
    await gw.tick()
    await gw.tick()
    assert _published_alt_texts(world, "brandco") == [["Not what bob approved"]]
    result = await _verify(world)
    assert result.code != 0, result.text
    assert (f"post.revising of post {status.id} sends other media or options than its revision {held.id} "
            "was approved with at version 1") in result.text, result.text


async def test_new_alt_text_of_a_published_post_is_judged_by_the_rules_as_its_words_are(
    world: World, policy_dir: Path,
) -> None:
    """On a direct account whose rule holds "fired": new alt text of a published post saying so
    is held as new words saying so are, as its pending revision naming the rule (before: 422),
    and nothing changes on the platform or the upload: the rules read the new alt text, and an
    edit sent at once would skip the hold."""
    await _another_on_mastodon(world, policy_dir, "mastorules", "brandrules", """
        tier: direct
        owner: alice
        rules:
          - name: breaking-news
            action: hold
            any_words: [fired, scandal]
            reason: Check the full story first
    """)
    api, status, media = await _published_with_a_picture(world, "mastorules")
    change = api.generate_media_edit_attributes(media, description="The CEO, fired")
    answered = await world.run(api.status_update, status, "A picture", media_attributes=[change])
    held = answered.byline.pending_revision
    assert (held.state, [r.reason for r in held.reasons]) == ("held", ["Check the full story first"])
    await world.gateway.tick()
    sent = _sent(world, "brandrules")
    assert (sent.media_edits, _published_alt_texts(world, "brandrules")) == ([], [["A cat"]])
    assert (await _media_row(world, media.id))["description"] == "A cat"


@pytest.mark.parametrize("who", ["co-writer", "managed-owner"])
async def test_new_alt_text_of_a_published_post_by_anyone_but_its_author_is_refused(
    world: World, policy_dir: Path, who: str,
) -> None:
    """Mastodon.py's ``status_update(media_attributes=…)`` on alice's published post, sent by
    carol, who also writes for the direct account (or, on a managed account, by its owner, who
    only suggests): 403, and nothing changes, here or on the platform. An edit sent at once is its
    author's alone: anyone else's words (alt text is read as words) would go out unasked."""
    account, username, editor = "masto", "brand", "carol"
    if who == "managed-owner":
        account, username, editor = "mastoman", "brandman", "dave"
        await _another_on_mastodon(world, policy_dir, account, username, """
            tier: managed
            owner: dave
            writers: [alice]
            suggesters: [dave]
        """)
    _, status, media = await _published_with_a_picture(world, account)
    before = await world.gateway.snapshot()
    theirs = await world.client(editor, account)
    change = theirs.generate_media_edit_attributes(media, description="Not what alice wrote")
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(theirs.status_update, status, "A picture", media_attributes=[change])
    assert caught.value.args[1] == 403, caught.value.args
    assert await world.gateway.snapshot() == before
    sent = _sent(world, username)
    assert (sent.text, sent.media_edits, _published_alt_texts(world, username)) == ("A picture", [], [["A cat"]])
    assert (await _media_row(world, media.id))["description"] == "A cat"
    result = await _verify(world)
    assert result.code == 0, result.text


@pytest.mark.parametrize("form", [True, False], ids=["form", "json"])
async def test_a_published_posts_edit_naming_another_upload_is_refused(world: World, form: bool) -> None:
    """An edit of a published post whose ``media_attributes[]`` names an upload of another
    status: 422 naming it, and nothing changes, here or on the platform."""
    _, status, media = await _published_with_a_picture(world)
    _, [theirs] = await _scheduled_with_pictures(world, "Theirs")
    before = await world.gateway.snapshot()
    if form:
        body: Any = [("status", "A picture, edited"), ("media_attributes[][id]", theirs),
                     ("media_attributes[][description]", "Changed from elsewhere")]
    else:
        body = {"status": "A picture, edited",
                "media_attributes": [{"id": theirs, "description": "Changed from elsewhere"}]}
    code, answer = await _put(world, str(status.id), body, form=form)
    assert (code, answer["error"]) == (422, f"Validation failed: Media {theirs} is not attached to this status")
    assert await world.gateway.snapshot() == before
    sent = _sent(world)
    assert (sent.text, sent.media_edits, _published_alt_texts(world)) == ("A picture", [], [["A cat"]])
    assert (await _media_row(world, theirs))["description"] == "Theirs"
    assert (await _media_row(world, media.id))["description"] == "A cat"
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_a_new_quote_on_an_edit_is_refused(world: World) -> None:
    """A quoted status on an edit (the status quotes none, and Byline carries no quote posts):
    422 saying so, and the words stay as they were; none (empty) is taken."""
    post_id, _ = await _scheduled_with_pictures(world, "A cat")
    code, answer = await _put(world, post_id, {"status": "Changed words", "quoted_status_id": "109876543210"},
                              form=False)
    assert (code, answer["error"]) == (422, "Validation failed: this status quotes no status, and an edit "
                                            "cannot make it quote one (Byline does not carry quote posts)")
    assert await _version(world, post_id) == ("scheduled", 1)
    code, answer = await _put(world, post_id, [("status", "Changed words"), ("quoted_status_id", "")], form=True)
    assert code == 200, answer
    assert await _version(world, post_id) == ("scheduled", 2)


async def test_mastodon_py_quote_policy_on_an_edit_is_taken_as_on_a_new_status(world: World) -> None:
    """Mastodon.py's ``status_update(quote_approval_policy=…)``, as apps send their default with
    every edit: the edit of the words is made, as a new status with a quote policy is taken
    (Byline applies none: the platform account's default holds)."""
    api = await world.client("alice", "masto")
    post_id, _ = await _scheduled_with_pictures(world, "A cat")
    edited = await world.run(api.status_update, post_id, "Changed words", quote_approval_policy="public")
    assert "Changed words" in edited.content
    assert (await world.gateway.get("alice", post_id))["text"] == "Changed words"
    assert await _version(world, post_id) == ("scheduled", 2)
