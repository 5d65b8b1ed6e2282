"""Length as each platform counts it: X's weights, Mastodon's URLs and mentions, graphemes."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import regex
import twitter_text
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.base import ascii_grapheme_count
from adapters.bluesky import grapheme_count
from adapters.mastodon import grapheme_length as mastodon_grapheme_length
from adapters.x import weighted_length
from gateway.policy.text import (
    folded_form,
    grapheme_length,
    is_blank,
    published_length,
    visible_form,
    without_invisibles,
)
from tests.conftest import Gateway, write_policy
from tests.fakes.x import FakeX, create_app
from tests.fakes.x import weighted_length as stand_in_weighted_length

X_TOKEN = "xtok-lengths-5e6f7a8b"
FAMILY = "👨\u200d👩\u200d👧\u200d👦"


@pytest.fixture
async def x_fake(gateway: Gateway, policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeX]:
    """An X stand-in on a real socket, and accounts on X, Mastodon and Bluesky in the gateway."""
    fake = FakeX()
    fake.add_user("brand", X_TOKEN)
    server = TestServer(create_app(fake))
    await server.start_server()
    monkeypatch.setenv("LENGTHS_X_TOKEN", X_TOKEN)
    monkeypatch.setenv("LENGTHS_OTHER_TOKEN", "unused")
    write_policy(policy_dir, "xacct", f"""
        account: xacct
        platform: x
        api: {str(server.make_url('')).rstrip('/')}
        credentials: env:LENGTHS_X_TOKEN
        tier: direct
        owner: alice
    """)
    write_policy(policy_dir, "masto", """
        account: masto
        platform: mastodon
        instance: https://mastodon.example
        credentials: env:LENGTHS_OTHER_TOKEN
        tier: direct
        owner: alice
    """)
    write_policy(policy_dir, "sky", """
        account: sky
        platform: bluesky
        pds: https://pds.example
        credentials: env:LENGTHS_OTHER_TOKEN
        tier: direct
        owner: alice
    """)
    await gateway.sync_policies()
    try:
        yield fake
    finally:
        await server.close()


async def _too_long(gateway: Gateway, account: str, text: str) -> dict[str, Any]:
    status, body = await gateway.call("alice", "POST", "/v1/posts", {"account": account, "text": text})
    assert (status, body.get("error")) == (422, "text_too_long"), body
    return body  # type: ignore[no-any-return]


async def test_family_emoji_on_the_sandbox_count_one_each(gateway: Gateway) -> None:
    """72 family emoji are 72 characters on the sandbox (not 504 code points) and go out intact."""
    text = FAMILY * 72
    post = await gateway.submit("alice", "direct", text)
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("direct")] == [text]
    assert (await gateway.get("alice", post["id"]))["state"] == "published"
    body = await _too_long(gateway, "direct", FAMILY * 501)
    assert (body["length"], body["limit"]) == (501, 500)


async def test_cjk_on_x_is_refused_at_submission_by_weight(gateway: Gateway, x_fake: FakeX) -> None:
    """200 × 漢 weighs 400 on X: refused when submitted, saying how X counts; 140 × 漢 goes out."""
    body = await _too_long(gateway, "xacct", "漢" * 200)
    assert (body["length"], body["limit"]) == (400, 280)
    assert body["message"] == "text is 400 characters as x counts them; the limit for this account is 280"
    post = await gateway.submit("alice", "xacct", "漢" * 140)
    await gateway.tick()
    assert (await gateway.get("alice", post["id"]))["state"] == "published"
    assert [t.text for t in x_fake.tweets()] == ["漢" * 140]


async def test_bare_domains_count_23_on_x(gateway: Gateway, x_fake: FakeX) -> None:
    """A bare domain is a URL to X (23): 260 letters and example.com weigh 284, one letter less fits."""
    body = await _too_long(gateway, "xacct", "a" * 260 + " example.com")
    assert body["length"] == 284
    text = "a" * 256 + " example.com"
    post = await gateway.submit("alice", "xacct", text)
    await gateway.tick()
    assert (await gateway.get("alice", post["id"]))["state"] == "published"
    assert [t.text for t in x_fake.tweets()] == [text]


async def test_mastodon_counts_urls_as_23_and_mentions_by_their_user(gateway: Gateway, x_fake: FakeX) -> None:
    """On Mastodon a long URL counts 23 and @user@domain counts as @user, as its validator does."""
    url = "https://example.com/" + "p" * 100
    text = "@alice@a-very-long-instance-name.example " + "a" * 430 + " " + url
    await gateway.submit("alice", "masto", text)
    assert published_length("mastodon", text) == len("@alice ") + 430 + 1 + 23
    body = await _too_long(gateway, "masto", "a" * 478 + " " + url)
    assert body["length"] == 478 + 1 + 23


async def test_bluesky_counts_graphemes(gateway: Gateway, x_fake: FakeX) -> None:
    """300 family emoji fit Bluesky's 300 graphemes; 301 do not."""
    await gateway.submit("alice", "sky", FAMILY * 300)
    body = await _too_long(gateway, "sky", FAMILY * 301)
    assert (body["length"], body["limit"]) == (301, 300)


async def test_blank_once_invisible_characters_are_removed(gateway: Gateway) -> None:
    """Text of zero-width, joiner, bidi and BOM characters only is empty: 422 text_empty."""
    for text in ("\u200b", "\u200b\u200c\u200d\u2060\u00ad\ufeff", " \u202e\u2066\u200e \n", "\u3164\ufe0f"):
        status, body = await gateway.call("alice", "POST", "/v1/posts", {"account": "direct", "text": text})
        assert (status, body.get("error")) == (422, "text_empty"), (text, body)
    assert await gateway.timeline("direct") == []


ORDINARY = [
    "hello",
    "漢字 and かな, 한국어",
    "see example.com and https://a.co/x, http://foo.bar.",
    "www.example.com/x?y=1",
    "Visit https://www.example.org/path/to/page?query=1&b=2. Then example.net!",
    "(https://en.wikipedia.org/wiki/Foo_(bar)) ok",
    "file.py and readme.md and config.yaml, hello.world",
    "foo@bar.com $example.com x-example.com _example.com /example.com",
    "https://example.com:8080/a?b=c#frag EXAMPLE.COM/Path",
    "http://twitter.com/これは日本語です。example.com中国語",
    "a\r\nb\rc",
    f"{FAMILY} 1\ufe0f\u20e3 🇯🇵 👍🏽 e\u0301 \u2014 \u201cq\u201d",
    "https://例え.テスト/パス and https://xn--r8jz45g.xn--zckzah/path",
    "a.coma.com example.comx a_b.com foo.bar.baz.co.uk/x?y",
]


def test_x_weights_agree_with_twitter_text() -> None:
    """Gateway, adapter and stand-in weigh ordinary text exactly as twitter-text-parser does."""
    for text in ORDINARY:
        expected = twitter_text.parse_tweet(text).weightedLength
        assert published_length("x", text) == expected, text
        assert weighted_length(text) == expected, text
        assert stand_in_weighted_length(text) == expected * 100, text


def test_x_weight_takes_linear_time_on_hostile_text() -> None:
    """Text that makes twitter-text's backtracking URL pattern quadratic is weighed at once."""
    import time

    hostile = "a." * 20_000
    started = time.perf_counter()
    assert published_length("x", hostile) == 40_000
    assert published_length("mastodon", "http://" + hostile) == 40_007
    assert time.perf_counter() - started < 1.0


def test_graphemes_in_the_gateway_and_the_bluesky_adapter() -> None:
    """Both count UAX #29 clusters: flags, ZWJ families, skin tones, Hangul and Indic conjuncts."""
    vectors = {"abc": 3, "e\u0301" * 4: 4, "🇩🇪🇫🇷": 2, FAMILY: 1, "👍🏽!": 2,
               "\u1100\u1161\u11a8": 1, "a\r\nb": 3, "क्षत्रिय": 3}
    for text, expected in vectors.items():
        assert grapheme_count(text) == expected, text
        assert published_length("bluesky", text) == expected, text
        assert published_length("sandbox", text) == expected, text


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=60))
@settings(max_examples=300, deadline=None)
def test_ascii_text_counts_as_the_full_rules_count_it(text: str) -> None:
    """ASCII text is counted without walking it (one cluster a character, CR LF one): the same
    figure as ICU's and the regex library's UAX #29 clusters, and the same forms for matching."""
    clusters = sum(1 for _ in regex.finditer(r"\X", text))
    assert ascii_grapheme_count(text) == clusters
    assert grapheme_count(text) == clusters  # the Bluesky adapter
    assert mastodon_grapheme_length(text) == clusters  # the Mastodon adapter
    assert grapheme_length(text) == clusters  # the gateway's own count
    assert without_invisibles(text) == regex.sub(r"\p{Default_Ignorable_Code_Point}+", "", text) == text
    assert visible_form(text) == unicodedata.normalize("NFKC", text) == text
    assert folded_form(text) == text
    assert is_blank(text) == (not text.strip())
