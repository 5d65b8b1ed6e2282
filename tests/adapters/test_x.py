"""The X adapter against the strict local stand-in, over real sockets."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.base import AdapterConfig, AdapterError, MediaItem
from adapters.x import XAdapter, restored_text, weighted_length
from gateway.audit.gates import POSTGATE
from tests.adapters.helpers import post, texts_of
from tests.fakes.x import FakeX, User, create_app
from tests.fakes.x import weighted_length as fake_weighted_length

TOKEN = "xtok-S3CRET-0d9c8b7a6f5e4d3c"
OTHER_TOKEN = "xtok-OTHER-1a2b3c"


@dataclass
class Env:
    """One stand-in, its server, a client session and the user under test."""

    fake: FakeX
    server: TestServer
    session: aiohttp.ClientSession
    user: User

    def adapter(self, **options: str) -> XAdapter:
        """A fresh adapter (as after a restart) for the user, sharing the fake's clock."""
        config = AdapterConfig(
            account="brand-x",
            handle="brand",
            secret=TOKEN,
            options={"api": str(self.server.make_url("")).rstrip("/"), **options},
            session=self.session,
        )
        return XAdapter(config, clock=self.fake.clock.now)

    def url(self, path: str) -> str:
        """The stand-in's URL for ``path``."""
        return str(self.server.make_url(path))


@pytest.fixture
async def env(aiohttp_server: Any) -> AsyncIterator[Env]:
    """A running stand-in with one user, and a client session."""
    fake = FakeX()
    user = fake.add_user("brand", TOKEN)
    server = await aiohttp_server(create_app(fake))
    async with aiohttp.ClientSession() as session:
        yield Env(fake=fake, server=server, session=session, user=user)


def creates(env: Env) -> int:
    """How many create requests the stand-in received."""
    return env.fake.faults.count("POST", "/2/tweets")


# -- publish ---------------------------------------------------------------------------------


async def test_publish_stores_the_tweet_and_its_reply_target(env: Env) -> None:
    """A reply is stored with its text and target; the result names the new tweet."""
    parent = env.fake.seed_tweet(env.user, "parent", created_at=env.fake.clock.now())
    result = await env.adapter().publish(post("A reply", reply_to=parent.id))
    stored = env.fake.tweet(result.remote_id)
    assert stored is not None and (stored.text, stored.in_reply_to) == ("A reply", parent.id)
    assert result.url == f"https://x.com/i/web/status/{result.remote_id}"
    assert len(result.remote_id) == 19 and result.remote_id.isdigit()


async def test_publish_sends_exactly_the_documented_json(env: Env) -> None:
    """The create is JSON with only ``text`` and ``reply`` and the bearer token."""
    parent = env.fake.seed_tweet(env.user, "parent", created_at=env.fake.clock.now())
    await env.adapter().publish(post("hi", reply_to=parent.id))
    [request] = [r for r in env.fake.faults.requests if r.path == "/2/tweets"]
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.body) == {"text": "hi",
                                        "reply": {"in_reply_to_tweet_id": parent.id}}


async def test_accept_then_drop_then_retry_makes_one_tweet(env: Env) -> None:
    """After a lost answer the retry finds the tweet instead of posting again."""
    adapter = env.adapter()
    env.fake.faults.drop_next_create()
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post())
    assert caught.value.retryable
    result = await adapter.publish(post())
    assert creates(env) == 1
    assert [t.id for t in env.fake.tweets()] == [result.remote_id]


async def test_timeout_then_retry_finds_the_late_tweet(env: Env) -> None:
    """A create that times out but lands later is found by the retry, not reposted."""
    adapter = env.adapter(timeout="0.3")
    env.fake.faults.delay_next(1.0, method="POST", path="/2/tweets")
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post())
    assert caught.value.retryable and caught.value.status is None
    await env.fake.faults.settle()
    assert len(env.fake.tweets()) == 1
    result = await adapter.publish(post())
    assert creates(env) == 1
    assert [t.id for t in env.fake.tweets()] == [result.remote_id]


async def test_after_a_restart_the_duplicate_refusal_finds_the_tweet(env: Env) -> None:
    """A fresh adapter that resends hits X's duplicate 403 and returns the existing tweet."""
    env.fake.faults.drop_next_create()
    with pytest.raises(AdapterError):
        await env.adapter().publish(post())
    result = await env.adapter().publish(post())
    assert creates(env) == 2
    assert [t.id for t in env.fake.tweets()] == [result.remote_id]


async def test_duplicate_of_an_unrelated_old_tweet_is_final(env: Env) -> None:
    """Duplicate content older than the lookback window is not ours: a final refusal."""
    env.fake.seed_tweet(env.user, "Hello from Byline",
                        created_at=env.fake.clock.now() - timedelta(hours=7))
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert not caught.value.retryable and caught.value.status == 403
    assert "duplicate content" in (caught.value.detail or "")
    assert len(env.fake.tweets()) == 1


async def test_images_are_uploaded_with_alt_text(env: Env) -> None:
    """Images go through /2/media/upload and /2/media/metadata and are attached."""
    image = MediaItem(data=b"\x89PNG fake", mime_type="image/png", description="a red dot")
    result = await env.adapter().publish(post("with picture", media=(image,)))
    stored = env.fake.tweet(result.remote_id)
    assert stored is not None and len(stored.media_ids) == 1
    upload = env.fake.uploads[stored.media_ids[0]]
    assert (upload.media_type, upload.alt_text, upload.size) == ("image/png", "a red dot", 9)


async def test_unsupported_content_is_refused_without_a_request(env: Env) -> None:
    """Video, content warnings and private visibility are refused before anything is sent."""
    video = MediaItem(data=b"...", mime_type="video/mp4")
    for bad in (post(media=(video,)), post(spoiler_text="cw"), post(visibility="direct")):
        with pytest.raises(AdapterError) as caught:
            await env.adapter().publish(bad)
        assert not caught.value.retryable
    assert env.fake.faults.requests == []


async def test_what_x_cannot_carry_is_refused_in_its_words(env: Env) -> None:
    """A content warning, a followers-only or direct visibility, and a Bluesky threadgate or
    postgate (who may reply or quote) are refused, each saying what X lacks; a post with both of
    the first is refused for its content warning; unlisted goes out."""
    refused = {
        "x: X has no content warnings; refusing to publish the hidden text openly":
            (post(spoiler_text="cw"), post(spoiler_text="cw", visibility="direct")),
        "x: X posts are public; visibility 'private' cannot be honoured": (post(visibility="private"),),
        "x: X posts are public; visibility 'direct' cannot be honoured": (post(visibility="direct"),),
        "x: X has no setting of who may reply to or quote a post; refusing to publish open to all a post whose "
        "threadgate or postgate limits them":
            (post(gates={POSTGATE: {"embeddingRules": [{"$type": f"{POSTGATE}#disableRule"}]}}),),
    }
    for said, posts in refused.items():
        for bad in posts:
            with pytest.raises(AdapterError) as caught:
                await env.adapter().publish(bad)
            assert (caught.value.message, caught.value.retryable) == (said, False)
    assert env.fake.faults.requests == []
    assert (await env.adapter().publish(post(visibility="unlisted"))).remote_id


# -- error classification --------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(env: Env, status: int) -> None:
    """5xx problem answers are retryable and keep the status and title."""
    env.fake.faults.fail_next(1, status, path="/2/tweets")
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert caught.value.retryable and caught.value.status == status
    assert not caught.value.auth_failed and caught.value.detail


async def test_rate_limit_uses_retry_after(env: Env) -> None:
    """429 is retryable with ``retry_after`` from the Retry-After header."""
    env.fake.faults.rate_limit_next(1, retry_after=42)
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert caught.value.retryable and caught.value.status == 429
    assert caught.value.retry_after == 42


async def test_rate_limit_reset_header_and_local_backoff(env: Env) -> None:
    """Without Retry-After the epoch reset is used, and the endpoint rests until then."""
    adapter = env.adapter()
    env.fake.faults.rate_limit_next(1, retry_after=120, send_retry_after=False)
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post())
    assert caught.value.retry_after is not None and 115 <= caught.value.retry_after <= 120
    sent = len(env.fake.faults.requests)
    with pytest.raises(AdapterError) as again:
        await adapter.publish(post())
    assert again.value.retryable and again.value.retry_after is not None
    assert len(env.fake.faults.requests) == sent
    env.fake.clock.advance(121)
    await adapter.publish(post())
    assert len(env.fake.tweets()) == 1


async def test_revoked_token_is_auth_failed(env: Env) -> None:
    """401 marks the credential broken and is not retryable."""
    env.fake.revoke_token(TOKEN)
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert caught.value.auth_failed and not caught.value.retryable
    assert caught.value.status == 401 and caught.value.detail == "Unauthorized"


async def test_invalid_request_is_final_with_problem_text(env: Env) -> None:
    """A 400 problem+json is final and its detail and messages reach ``detail``."""
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post(reply_to="12abc"))
    assert not caught.value.retryable and caught.value.status == 400
    detail = caught.value.detail or ""
    assert "One or more parameters to your request was invalid." in detail
    assert "in_reply_to_tweet_id" in detail


# -- length ----------------------------------------------------------------------------------


async def test_overlong_text_is_refused_without_a_request(env: Env) -> None:
    """281 weighted characters (or 141 CJK) are refused locally; nothing is sent."""
    for text in ("a" * 281, "漢" * 141, "🙂" * 141):
        with pytest.raises(AdapterError) as caught:
            await env.adapter().publish(post(text))
        assert not caught.value.retryable and "280" in caught.value.message
    assert env.fake.faults.requests == []


async def test_limit_texts_are_accepted_by_adapter_and_stand_in(env: Env) -> None:
    """Exactly 280 weighted characters, with CJK, emoji and a long URL, is published."""
    url = "https://example.com/" + "p" * 100
    texts = ["a" * 280, "漢" * 140, "a" * 256 + " " + url, "👨\u200d👩\u200d👧" * 140]
    adapter = env.adapter()
    for i, text in enumerate(texts):
        assert weighted_length(text) == 280, text[:20]
        await adapter.publish(post(text, key=f"limit-{i}:v1"))
    assert len(env.fake.tweets()) == len(texts)


def test_weighted_length_follows_twitter_text() -> None:
    """Adapter and stand-in (written apart) agree with twitter-text's v3 weights."""
    vectors = {
        "hello": 5,
        "漢字": 4,
        "こんにちは": 10,
        "👍": 2,
        "👍🏽": 2,
        "🇯🇵": 2,
        "👨\u200d👩\u200d👧\u200d👦": 2,
        "1\ufe0f\u20e3": 2,
        "e\u0301": 1,
        "\u2014 \u201cq\u201d": 5,
        "see https://example.com/a/very/long/path.": 4 + 23 + 1,
        "www.example.com/x": 23,
    }
    for text, expected in vectors.items():
        assert weighted_length(text) == expected, text
        assert fake_weighted_length(text) == expected * 100, text


# -- find_existing ---------------------------------------------------------------------------


async def test_find_existing_sees_through_tco_and_escaping(env: Env) -> None:
    """X serves t.co links and &amp;; the restored text still matches the post."""
    text = "Fish & chips <3 at https://example.com/menu?x=1&y=2 tonight"
    published = await env.adapter().publish(post(text))
    served = env.fake.render(env.fake.tweets()[0], {"entities"})
    assert "https://t.co/" in served["text"] and "&amp;" in served["text"]
    assert restored_text(served) == text
    found = await env.adapter().find_existing(post(text), since=env.fake.clock.now()
                                              - timedelta(minutes=1))
    assert found == published


async def test_find_existing_with_media_ignores_the_media_link(env: Env) -> None:
    """The t.co link X appends for an image does not break the match."""
    image = MediaItem(data=b"img", mime_type="image/jpeg")
    published = await env.adapter().publish(post("pic", media=(image,)))
    found = await env.adapter().find_existing(post("pic", media=(image,)),
                                              since=env.fake.clock.now() - timedelta(minutes=1))
    assert found == published


async def test_find_existing_ignores_older_and_different_tweets(env: Env) -> None:
    """Same text before the first attempt, or replying elsewhere, is not ours."""
    now = env.fake.clock.now()
    env.fake.seed_tweet(env.user, "Hello from Byline", created_at=now - timedelta(hours=1))
    parent = env.fake.seed_tweet(env.user, "parent", created_at=now)
    env.fake.seed_tweet(env.user, "Hello from Byline", created_at=now, in_reply_to=parent.id)
    assert await env.adapter().find_existing(post(), since=now) is None
    found = await env.adapter().find_existing(post(reply_to=parent.id), since=now)
    assert found is not None


async def test_find_existing_pages_through_the_timeline(env: Env) -> None:
    """The match is found behind more than a page of newer tweets."""
    now = env.fake.clock.now()
    target = env.fake.seed_tweet(env.user, "Hello from Byline", created_at=now)
    for i in range(105):
        env.fake.seed_tweet(env.user, f"later {i}", created_at=now)
    found = await env.adapter().find_existing(post(), since=now)
    assert found is not None and found.remote_id == target.id
    pages = [r for r in env.fake.faults.requests if r.path.endswith("/tweets")
             and r.method == "GET"]
    assert len(pages) == 2 and "pagination_token" in pages[1].query


# -- delete, verify --------------------------------------------------------------------------


async def test_delete_and_delete_again(env: Env) -> None:
    """Delete removes the tweet; deleting it again is not an error."""
    adapter = env.adapter()
    result = await adapter.publish(post())
    await adapter.delete(result.remote_id)
    assert env.fake.tweets() == []
    await adapter.delete(result.remote_id)
    assert env.fake.faults.count("DELETE", f"/2/tweets/{result.remote_id}") == 2


async def test_delete_of_another_users_tweet_is_refused_not_taken_for_gone(env: Env) -> None:
    """A token of another X user deleting the tweet is answered 403, which is a refusal for
    good, never "gone" (a policy whose credential now names another user records no deletion)."""
    other = env.fake.add_user("stranger", "xtok-stranger-3d9e")
    theirs = env.fake.seed_tweet(other, "A stranger's words", created_at=env.fake.clock.now())
    with pytest.raises(AdapterError) as refused:
        await env.adapter().delete(theirs.id)
    assert (refused.value.status, refused.value.retryable, refused.value.auth_failed) == (403, False, False)
    assert env.fake.tweet(theirs.id) is not None and not theirs.deleted


async def test_verify_credentials(env: Env) -> None:
    """verify_credentials reports the token's user from /2/users/me."""
    info = await env.adapter().verify_credentials()
    assert (info.remote_id, info.handle, info.display_name) == (env.user.id, "brand", "Brand")
    assert info.url == "https://x.com/brand"


# -- secrecy ---------------------------------------------------------------------------------


async def test_token_never_appears_in_errors_reprs_or_logs(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """No failure path puts the access token into an exception, a repr or a log line."""
    caplog.set_level(logging.DEBUG)
    adapter = env.adapter(timeout="0.3")
    errors: list[AdapterError] = []
    faults: list[Callable[[], None]] = [
        lambda: env.fake.faults.fail_next(1, 500),
        lambda: env.fake.faults.fail_next(1, 503),
        lambda: env.fake.faults.drop_next_create(),
        lambda: env.fake.faults.delay_next(1.0),
    ]
    for i, inject in enumerate(faults):
        inject()
        with pytest.raises(AdapterError) as caught:
            await adapter.publish(post(f"text {i}", key=f"leak-{i}:v1"))
        errors.append(caught.value)
    env.fake.faults.rate_limit_next(1)
    with pytest.raises(AdapterError) as caught:
        await adapter.delete("1")
    errors.append(caught.value)
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post("bad", key="leak-400:v1", reply_to="x1"))
    errors.append(caught.value)
    env.fake.revoke_token(TOKEN)
    with pytest.raises(AdapterError) as caught:
        await adapter.verify_credentials()
    errors.append(caught.value)
    assert caught.value.auth_failed
    for error in errors:
        assert TOKEN not in texts_of(error)
    assert TOKEN not in repr(adapter)
    assert TOKEN not in caplog.text
    assert "/2/tweets" in caplog.text  # the debug log did run
    await env.fake.faults.settle()


# -- the stand-in itself ---------------------------------------------------------------------


async def _raw(env: Env, method: str, path: str, *, token: str | None = TOKEN,
               **kwargs: Any) -> tuple[int, Any, str]:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with env.session.request(method, env.url(path), headers=headers, **kwargs) as resp:
        return resp.status, json.loads(await resp.text()), resp.content_type


async def test_fake_requires_a_known_token(env: Env) -> None:
    """Missing or unknown tokens get 401 problem+json."""
    for token in (None, "nope"):
        status, body, content_type = await _raw(env, "POST", "/2/tweets", token=token,
                                                json={"text": "x"})
        assert status == 401 and content_type == "application/problem+json"
        assert body == {"title": "Unauthorized", "detail": "Unauthorized",
                        "type": "about:blank", "status": 401}


async def test_fake_accepts_only_json_with_documented_fields(env: Env) -> None:
    """Form bodies and unknown fields (top-level or nested) are 400 invalid-request."""
    bad_requests: list[dict[str, Any]] = [
        {"data": {"text": "form"}},
        {"json": {"text": "x", "status": "mastodon-style"}},
        {"json": {"text": "x", "reply": {"in_reply_to_status_id": "1"}}},
        {"json": {"text": "x", "media": {"media_ids": ["1"]}, "poll": {}}},
        {"json": {"text": "x", "reply_settings": "everyone"}},
    ]
    for kwargs in bad_requests:
        status, body, _ = await _raw(env, "POST", "/2/tweets", **kwargs)
        assert status == 400, kwargs
        assert body["type"] == "https://api.twitter.com/2/problems/invalid-request"
        assert body["detail"] == "One or more parameters to your request was invalid."
    assert env.fake.tweets() == []


async def test_fake_refuses_long_and_duplicate_text(env: Env) -> None:
    """Over 280 weighted is 403; the same text again is X's duplicate-content 403."""
    status, body, _ = await _raw(env, "POST", "/2/tweets", json={"text": "漢" * 141})
    assert (status, body["detail"]) == (403, "Tweet needs to be a bit shorter.")
    status, body, _ = await _raw(env, "POST", "/2/tweets", json={"text": "once"})
    assert status == 201 and set(body["data"]) == {"id", "text", "edit_history_tweet_ids"}
    assert isinstance(body["data"]["id"], str) and body["data"]["id"].isdigit()
    status, body, _ = await _raw(env, "POST", "/2/tweets", json={"text": "once"})
    assert (status, body) == (403, {
        "detail": "You are not allowed to create a Tweet with duplicate content.",
        "type": "about:blank", "title": "Forbidden", "status": 403})


async def test_fake_validates_timeline_queries(env: Env) -> None:
    """max_results outside 5–100, bad times and unknown parameters are 400."""
    path = f"/2/users/{env.user.id}/tweets"
    for params in ({"max_results": "4"}, {"max_results": "101"},
                   {"start_time": "2026-01-01 12:00"}, {"since": "1"},
                   {"tweet.fields": "created_at,colour"}, {"exclude": "quotes"}):
        status, body, _ = await _raw(env, "GET", path, params=params)
        assert status == 400, params
        assert body["title"] == "Invalid Request"
    status, body, _ = await _raw(env, "GET", path, params={"max_results": "5"})
    assert (status, body) == (200, {"meta": {"result_count": 0}})


async def test_fake_sends_rate_limit_headers_and_enforces_them(env: Env) -> None:
    """Each endpoint answers x-rate-limit-* headers and 429s past its documented limit."""
    async with env.session.get(env.url("/2/users/me"),
                               headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.headers["x-rate-limit-limit"] == "75"
        assert resp.headers["x-rate-limit-remaining"] == "74"
        assert int(resp.headers["x-rate-limit-reset"]) > env.fake.clock.now().timestamp()
    for _ in range(74):
        status, _, _ = await _raw(env, "GET", "/2/users/me")
        assert status == 200
    status, body, _ = await _raw(env, "GET", "/2/users/me")
    assert status == 429 and body["title"] == "Too Many Requests"


async def test_fake_delete_and_lookup_of_missing_tweets(env: Env) -> None:
    """Deleting a missing tweet is 404; looking it up is 200 with resource-not-found."""
    status, body, _ = await _raw(env, "DELETE", "/2/tweets/123")
    assert status == 404 and body["type"].endswith("/resource-not-found")
    status, body, _ = await _raw(env, "GET", "/2/tweets/123")
    assert status == 200 and body["errors"][0]["type"].endswith("/resource-not-found")
    status, body, _ = await _raw(env, "DELETE", "/2/tweets/abc")
    assert status == 400
