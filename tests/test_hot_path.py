"""The short cuts a direct post's path takes give what the long way gives, and are taken.

Each piece of work counted away from a post (``python -m bench.calls``) is checked here two
ways: on texts and records where the long way must still run, it does and agrees; on the
plain ones a post nearly always has, the long way is not run at all (it is made to fail).
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gateway.policy.text as text_module
from adapters.x import find_urls
from gateway.policy.loader import parse_policy, platform_accounts
from gateway.policy.text import MatchText, folded_form, mastodon_length, visible_form


def _fails(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the long way was taken")


def _counted_the_long_way(text: str) -> int:
    """Mastodon's count with every URL and mention looked for, as before the short cut."""
    pieces: list[str] = []
    position = 0
    for start, end in find_urls(text, text_module.MASTODON_URLS):
        pieces.append(text_module._MASTODON_MENTION.sub(r"@\1", text[position:start]))
        pieces.append("x" * text_module.MASTODON_URL_LENGTH)
        position = end
    pieces.append(text_module._MASTODON_MENTION.sub(r"@\1", text[position:]))
    return text_module.grapheme_length("".join(pieces))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["plain", " ", "@", "://", "https://", "example.org", "@bob", "/x", "é", "\r\n",
                                 "HTTPS://Example.org/a", "@bob@social.example", "gemini://x.example"]),
                max_size=12).map("".join))
def test_mastodon_counts_as_it_did(text: str) -> None:
    """With or without a scheme or an @ in it, a text counts as when every URL and mention was
    looked for."""
    assert mastodon_length(text) == _counted_the_long_way(text)


def test_a_plain_text_is_counted_without_looking_for_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """No scheme and no @: no URL or mention to look for, and none is looked for."""
    monkeypatch.setattr(text_module, "find_urls", _fails)
    assert mastodon_length("Benchmark post number 12 from the load generator\r\n") == 49
    with pytest.raises(AssertionError, match="long way"):
        mastodon_length("see https://example.org")


def test_an_ascii_text_has_its_forms_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """ASCII text is its own visible and folded form: they are not worked out for each text
    the rules read; a text outside ASCII still is."""
    assert (visible_form("fired"), folded_form("fired")) == ("fired", "fired")
    monkeypatch.setattr(text_module, "visible_form", _fails)
    monkeypatch.setattr(text_module, "folded_form", _fails)
    forms = MatchText("You're fired!")
    assert (forms.visible, forms.folded) == ("You're fired!", "You're fired!")
    with pytest.raises(AssertionError, match="long way"):
        _ = MatchText("fіred").visible  # a Cyrillic і


def test_a_platform_account_is_read_once_a_policy_however_often_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy reread each second asks for every account's platform account several times:
    its address and credential's path are worked out once, and give the same each time."""
    import gateway.policy.loader as loader

    policy = parse_policy(textwrap.dedent("""
        account: hot-path-brand
        tier: direct
        owner: alice
        platform: mastodon
        instance: https://Hot-Path.Example:443/
        credentials: file:./secrets/../secrets/brand.token
    """), name="hot-path-brand.yaml", expected_account="hot-path-brand")
    first = platform_accounts(policy, Path("policies"))
    assert json.dumps(sorted(first)) == json.dumps(
        [["mastodon", "https://hot-path.example", "credentials", "file:policies/secrets/brand.token"]])
    asked: list[str] = []
    normpath = os.path.normpath

    def counted_normpath(path: Any) -> Any:
        asked.append("normpath")
        return normpath(path)

    def counted_urlsplit(url: str) -> Any:
        asked.append("urlsplit")
        return urlsplit(url)

    monkeypatch.setattr(os.path, "normpath", counted_normpath)
    monkeypatch.setattr(loader, "urlsplit", counted_urlsplit)
    again = platform_accounts(policy, Path("policies"))
    monkeypatch.undo()
    assert (again, asked) == (first, [])


async def test_a_post_with_no_options_is_not_hashed_for_its_content(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing but words: no content hash and no uploads, without hashing or describing empty
    options; a post with options is hashed as before."""
    import gateway.services.content as content

    assert (content.content_sha256({}, salt="00"), content.described({}, [])) == (None, [])
    hashed = content.content_sha256({"spoiler_text": "cw"}, salt="00")
    monkeypatch.setattr(content, "content_sha256", _fails)
    monkeypatch.setattr(content, "described", _fails)
    assert await content.stored_content(None, {}, salt="00", scheme=1) == (None, [])  # type: ignore[arg-type]  # no txn needed
    monkeypatch.undo()
    no_txn: Any = None  # no uploads to read
    assert await content.stored_content(no_txn, {"spoiler_text": "cw"}, salt="00", scheme=1) == (hashed, [])


def _rendered_the_long_way(text: str) -> str:
    """A status's content as Mastodon renders it, paragraph by paragraph, as before."""
    from html import escape

    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join("<p>" + "<br />".join(escape(line) for line in p.split("\n")) + "</p>" for p in paragraphs)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["words", " ", "\n", "\r\n", "\r", "<b>", "&", "'", "\t"]), max_size=10).map("".join))
def test_a_status_renders_as_it_did(text: str) -> None:
    """One line or many, blank or not, a status's words render as paragraph by paragraph."""
    from gateway.http.mastodon.entities import _content

    assert _content(text) == _rendered_the_long_way(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["plain", " ", "@", "://", "http://", "HTTPS://x.example/a.", "@bob@social.example",
                                 "@bob", "é", "\n"]), max_size=12).map("".join))
def test_the_mastodon_adapter_counts_as_it_did(text: str) -> None:
    """The adapter's own count before it sends: with or without a URL or a mention, as when
    both were looked for."""
    import adapters.mastodon as mastodon

    looked_for = mastodon._REMOTE_MENTION_RE.sub(r"@\1", mastodon._URL_RE.sub(
        lambda m: "x" * mastodon.URL_WEIGHT + m.group(0)[len(m.group(0).rstrip(mastodon._URL_TRAILING)):], text))
    assert mastodon.countable_text(text) == looked_for


def test_the_mastodon_adapter_does_not_look_for_urls_in_a_plain_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """No scheme and no @: the adapter's count looks for neither."""
    import adapters.mastodon as mastodon

    monkeypatch.setattr(mastodon, "_URL_RE", None)
    monkeypatch.setattr(mastodon, "_REMOTE_MENTION_RE", None)
    assert mastodon.status_length("Benchmark post number 12", None) == 24
