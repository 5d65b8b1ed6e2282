"""The Mastodon adapter against the strict local stand-in, over real sockets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.base import AdapterConfig, AdapterError, MediaItem, ScopeCheck
from adapters.mastodon import (
    MastodonAdapter,
    grapheme_length,
    html_to_text,
    normalize_for_match,
    status_length,
)
from tests.adapters.helpers import post, texts_of
from tests.fakes.mastodon import (
    Account,
    FakeMastodon,
    countable_length,
    create_app,
    render_content,
)

TOKEN = "mtok-S3CRET-5b1f0c9e2d7a4e8f"
OTHER_TOKEN = "mtok-OTHER-77aa00bb11cc"


@dataclass
class Env:
    """One stand-in, its server, a client session and the account under test."""

    fake: FakeMastodon
    server: TestServer
    session: aiohttp.ClientSession
    account: Account

    def adapter(self, **options: str) -> MastodonAdapter:
        """A fresh adapter (as after a restart) for the account, sharing the fake's clock."""
        config = AdapterConfig(
            account="alice-main",
            handle="alice",
            secret=TOKEN,
            options={"instance": str(self.server.make_url("")), **options},
            session=self.session,
        )
        return MastodonAdapter(config, clock=self.fake.clock.now)

    def url(self, path: str) -> str:
        """The stand-in's URL for ``path``."""
        return str(self.server.make_url(path))


E = TypeVar("E", bound=Env)


@asynccontextmanager
async def running(aiohttp_server: Any, kind: type[E]) -> AsyncIterator[E]:
    """A running stand-in with one account (``TOKEN``), and a client session, as ``kind``."""
    fake = FakeMastodon()
    account = fake.add_account("alice", TOKEN)
    server = await aiohttp_server(create_app(fake))
    async with aiohttp.ClientSession() as session:
        yield kind(fake=fake, server=server, session=session, account=account)


@pytest.fixture
async def env(aiohttp_server: Any) -> AsyncIterator[Env]:
    """A running stand-in with one account, and a client session."""
    async with running(aiohttp_server, Env) as running_env:
        yield running_env


def creates(env: Env) -> int:
    """How many create requests the stand-in received."""
    return env.fake.faults.count("POST", "/api/v1/statuses")


async def wait_for(predicate: Any, within: float = 3.0) -> None:
    """Poll until ``predicate()`` holds; fail if it never does."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


# -- publish ---------------------------------------------------------------------------------


async def test_publish_stores_every_field(env: Env) -> None:
    """A published status carries text, reply, spoiler, language, visibility and sensitivity."""
    parent = env.fake.seed_status(env.account, "parent", created_at=env.fake.clock.now())
    result = await env.adapter().publish(post(
        "Reply text", reply_to=parent.id, spoiler_text="cw: food", language="de",
        visibility="unlisted", sensitive=True,
    ))
    stored = env.fake.status(result.remote_id)
    assert stored is not None
    assert (stored.text, stored.in_reply_to_id, stored.spoiler_text) == (
        "Reply text", parent.id, "cw: food")
    assert (stored.language, stored.visibility, stored.sensitive) == ("de", "unlisted", True)
    assert result.url == f"https://mastodon.example/@alice/{stored.id}"
    assert result.remote_id.isdigit()


async def test_publish_sends_the_idempotency_key_and_bearer_token(env: Env) -> None:
    """The create carries ``Idempotency-Key: <post.idempotency_key>`` and the bearer token."""
    await env.adapter().publish(post(key="p-42:v3"))
    [request] = [r for r in env.fake.faults.requests if r.path == "/api/v1/statuses"]
    assert request.headers["Idempotency-Key"] == "p-42:v3"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.body)["status"] == "Hello from Byline"


async def test_same_idempotency_key_twice_makes_one_status(env: Env) -> None:
    """Publishing the same post twice returns the same status and stores only one."""
    adapter = env.adapter()
    first = await adapter.publish(post())
    second = await adapter.publish(post())
    assert first == second
    assert len(env.fake.statuses()) == 1
    keys = {r.headers["Idempotency-Key"] for r in env.fake.faults.requests
            if r.path == "/api/v1/statuses"}
    assert creates(env) == 2 and keys == {"post-1:v1"}


async def test_accept_then_drop_then_retry_makes_one_status(env: Env) -> None:
    """A create whose answer is lost is retried with the same key and not duplicated."""
    adapter = env.adapter()
    env.fake.faults.drop_next_create()
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post())
    assert caught.value.retryable and not caught.value.auth_failed
    assert len(env.fake.statuses()) == 1
    result = await adapter.publish(post())
    assert [s.id for s in env.fake.statuses()] == [result.remote_id]


async def test_timeout_is_retryable_and_the_retry_dedupes(env: Env) -> None:
    """A slow answer times out as retryable; the late-created status is found by the retry."""
    adapter = env.adapter(timeout="0.3")
    env.fake.faults.delay_next(1.0, path="/api/v1/statuses")
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post())
    assert caught.value.retryable and caught.value.status is None
    await wait_for(lambda: len(env.fake.statuses()) == 1)
    result = await adapter.publish(post())
    assert [s.id for s in env.fake.statuses()] == [result.remote_id]


async def test_retry_past_the_key_window_searches_instead_of_posting(env: Env) -> None:
    """After Mastodon forgot the key (1 h), a retry finds the status rather than reposting."""
    adapter = env.adapter()
    env.fake.faults.drop_next_create()
    with pytest.raises(AdapterError):
        await adapter.publish(post())
    env.fake.clock.advance(2 * 3600)
    result = await adapter.publish(post())
    assert creates(env) == 1
    assert [s.id for s in env.fake.statuses()] == [result.remote_id]


async def test_media_is_uploaded_and_awaited_before_posting(env: Env) -> None:
    """Attachments go through /api/v2/media, are polled while 206, then attached."""
    env.fake.media_processing_polls = 2
    adapter = env.adapter(media_poll_interval="0.01")
    image = MediaItem(data=b"\x89PNG fake", mime_type="image/png", description="a red dot")
    result = await adapter.publish(post(media=(image,)))
    stored = env.fake.status(result.remote_id)
    assert stored is not None and len(stored.media_ids) == 1
    media = env.fake.media[stored.media_ids[0]]
    assert (media.mime_type, media.description) == ("image/png", "a red dot")
    assert env.fake.faults.count("GET", f"/api/v1/media/{media.id}") == 3


# -- error classification --------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(env: Env, status: int) -> None:
    """5xx answers (JSON or the proxy's HTML) are retryable and keep the status."""
    env.fake.faults.fail_next(1, status)
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert caught.value.retryable and caught.value.status == status
    assert not caught.value.auth_failed and caught.value.detail


async def test_rate_limit_uses_retry_after(env: Env) -> None:
    """429 is retryable with ``retry_after`` taken from the Retry-After header."""
    env.fake.faults.rate_limit_next(1, retry_after=42)
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert caught.value.retryable and caught.value.status == 429
    assert caught.value.retry_after == 42


async def test_rate_limit_falls_back_to_reset_time(env: Env) -> None:
    """Without Retry-After, ``retry_after`` comes from the ISO 8601 X-RateLimit-Reset."""
    env.fake.faults.rate_limit_next(1, retry_after=90, send_retry_after=False)
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert caught.value.retry_after is not None
    assert 85 <= caught.value.retry_after <= 90


async def test_revoked_token_is_auth_failed(env: Env) -> None:
    """401 marks the credential broken and is not retryable."""
    env.fake.revoke_token(TOKEN)
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post())
    assert caught.value.auth_failed and not caught.value.retryable
    assert caught.value.status == 401 and caught.value.detail == "The access token is invalid"


async def test_validation_refusal_is_final_with_platform_text(env: Env) -> None:
    """422 is not retryable and carries Mastodon's ``error`` text."""
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post(language="english"))
    assert not caught.value.retryable and caught.value.status == 422
    assert caught.value.detail == "Validation failed: Language is not an ISO 639-1 code"


async def test_missing_reply_target_is_final(env: Env) -> None:
    """Replying to a status that does not exist is a final 404 with the platform's text."""
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post(reply_to="999"))
    assert not caught.value.retryable and caught.value.status == 404
    assert "does not appear to exist" in (caught.value.detail or "")


async def test_connection_refused_is_retryable(env: Env) -> None:
    """Nobody listening on the port is a transient, retryable failure."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = AdapterConfig(account="a", handle="a", secret=TOKEN, session=env.session,
                           options={"instance": f"http://127.0.0.1:{port}"})
    with pytest.raises(AdapterError) as caught:
        await MastodonAdapter(config).verify_credentials()
    assert caught.value.retryable and caught.value.status is None


# -- local checks ----------------------------------------------------------------------------


async def test_overlong_text_is_refused_without_a_request(env: Env) -> None:
    """501 characters (spoiler included) are refused locally; nothing is sent."""
    adapter = env.adapter()
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post("a" * 491, spoiler_text="0123456789"))
    assert not caught.value.retryable and "500" in caught.value.message
    with pytest.raises(AdapterError):
        await adapter.publish(post("a" * 501))
    assert env.fake.faults.requests == []


async def test_urls_count_23_so_long_links_still_fit(env: Env) -> None:
    """A text over 500 raw characters but within 500 as Mastodon counts is published."""
    text = "a" * 470 + " https://example.com/" + "p" * 200
    assert len(text) > 500 and status_length(text, None) == 494
    await env.adapter().publish(post(text))
    assert len(env.fake.statuses()) == 1


async def test_bad_visibility_is_refused_locally(env: Env) -> None:
    """A visibility outside the documented enum never reaches the instance."""
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post(visibility="followers"))
    assert not caught.value.retryable
    assert env.fake.faults.requests == []


async def test_a_post_limiting_who_may_reply_or_quote_is_refused_not_sent_open_to_all(env: Env) -> None:
    """A post with a Bluesky threadgate or postgate (its account moved to Mastodon while it
    waited) is refused for good without a request, saying why: on Mastodon anyone could reply
    to and quote what its approvers approved with those limits."""
    gates = {"app.bsky.feed.threadgate": {"allow": []}}
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post(gates=gates))
    assert (caught.value.message, caught.value.retryable) == (
        "mastodon: Mastodon has no setting of who may reply to or quote a post; refusing to publish open to all "
        "a post whose threadgate or postgate limits them", False)
    assert env.fake.faults.requests == []


def test_grapheme_length_counts_what_people_see() -> None:
    """Flags, skin tones, ZWJ families and combining accents count as one character each."""
    assert grapheme_length("🇯🇵") == 1
    assert grapheme_length("👍🏽") == 1
    assert grapheme_length("👨\u200d👩\u200d👧") == 1
    assert grapheme_length("e\u0301") == 1
    assert grapheme_length("ab\r\nc") == 4


# -- find_existing ---------------------------------------------------------------------------


async def test_find_existing_after_a_crash(env: Env) -> None:
    """A new adapter finds the status made by a dropped create, given the first attempt."""
    started = env.fake.clock.now()
    env.fake.faults.drop_next_create()
    with pytest.raises(AdapterError):
        await env.adapter().publish(post())
    found = await env.adapter().find_existing(post(), since=started)
    assert found is not None and found.remote_id == env.fake.statuses()[0].id
    assert await env.adapter().find_existing(post()) == found  # lookback window default


async def test_find_existing_rides_out_passing_errors_on_its_pages(env: Env) -> None:
    """Against a platform failing now and then (found by the crash harness at 30% failures), a
    page of the lookup that fails is asked again: the status is found, not the post failed."""
    started = env.fake.clock.now()
    env.fake.faults.drop_next_create()
    with pytest.raises(AdapterError):
        await env.adapter().publish(post())
    statuses = f"/api/v1/accounts/{env.account.id}/statuses"
    env.fake.faults.fail_next(3, 503, method="GET", path=statuses)
    found = await env.adapter().find_existing(post(), since=started)
    assert found is not None and found.remote_id == env.fake.statuses()[0].id
    env.fake.faults.fail_next(10, 502, method="GET", path=statuses)
    with pytest.raises(AdapterError) as caught:  # a platform down for good still fails the lookup
        await env.adapter().find_existing(post(), since=started)
    assert caught.value.retryable


async def test_find_existing_matches_rendered_html(env: Env) -> None:
    """Links, remote mentions, paragraphs and escaping in ``content`` still match the text."""
    text = "Tea & <cake> with @bob@other.example\n\nsee https://example.com/" + "x" * 40
    published = await env.adapter().publish(post(text))
    found = await env.adapter().find_existing(post(text), since=env.fake.clock.now()
                                              - timedelta(minutes=1))
    assert found == published


async def test_find_existing_ignores_older_and_different_statuses(env: Env) -> None:
    """Identical text from before the first attempt, or replying elsewhere, is not ours."""
    now = env.fake.clock.now()
    env.fake.seed_status(env.account, "Hello from Byline", created_at=now - timedelta(hours=3))
    parent = env.fake.seed_status(env.account, "parent", created_at=now)
    env.fake.seed_status(env.account, "Hello from Byline", created_at=now,
                         in_reply_to_id=parent.id)
    assert await env.adapter().find_existing(post(), since=now) is None


async def test_find_existing_pages_past_newer_statuses(env: Env) -> None:
    """The match is found even when more than one page of newer statuses follows it."""
    now = env.fake.clock.now()
    target = env.fake.seed_status(env.account, "Hello from Byline", created_at=now)
    for i in range(45):
        env.fake.seed_status(env.account, f"later {i}", created_at=now)
    found = await env.adapter().find_existing(post(), since=now)
    assert found is not None and found.remote_id == target.id


# -- delete, verify --------------------------------------------------------------------------


async def test_delete_and_delete_again(env: Env) -> None:
    """Delete removes the status; deleting it again, where it went out (under the account's
    own profile address) is known, is not an error: the account's own status it cannot read is gone."""
    adapter = env.adapter()
    result = await adapter.publish(post())
    assert result.url is not None
    await adapter.delete_published(result.remote_id, url=result.url)
    assert env.fake.statuses() == []
    await adapter.delete_published(result.remote_id, url=result.url)
    assert env.fake.faults.count("DELETE", f"/api/v1/statuses/{result.remote_id}") == 2


async def test_a_private_status_of_another_account_is_not_taken_for_gone(env: Env) -> None:
    """Another account's private status answers 404 to the token's account, to its deletion
    and to its read, as a status gone does: the deletion is refused for good (not retried),
    the status stands (before: counted deleted, the post recorded deleted while it stood).
    The token may have come to be another account's since the post went out."""
    bob = env.fake.add_account("bob", "mtok-bob-77e0")
    theirs = env.fake.seed_status(bob, "Bob's followers-only words", created_at=env.fake.clock.now())
    theirs.visibility = "private"
    address = f"https://{env.fake.host}/@bob/{theirs.id}"
    with pytest.raises(AdapterError) as refused:
        await env.adapter().delete_published(theirs.id, url=address)
    assert (refused.value.status, refused.value.retryable) == (404, False)
    assert "gone, or another account's that the token's may not see" in refused.value.message
    assert address in refused.value.message
    assert env.fake.status(theirs.id) is not None and not theirs.deleted


async def test_a_status_gone_where_it_went_out_is_not_known_is_not_taken_for_gone(env: Env) -> None:
    """Without the address the status went out at, a 404 to its deletion and its read tells
    nothing of whose it was: refused, never counted deleted on a guess."""
    adapter = env.adapter()
    result = await adapter.publish(post())
    await adapter.delete(result.remote_id)
    with pytest.raises(AdapterError) as refused:
        await adapter.delete(result.remote_id)
    assert (refused.value.status, refused.value.retryable) == (404, False)
    assert "its address not recorded" in refused.value.message


async def test_delete_of_another_accounts_status_is_refused_not_taken_for_gone(env: Env) -> None:
    """Mastodon answers the deletion of another account's status 404, as for one gone: the
    status is read, found still there, and the deletion refused for good, naming its account
    (before: taken for gone, and the post recorded deleted while it stood)."""
    bob = env.fake.add_account("bob", "mtok-bob-77e0")
    theirs = env.fake.seed_status(bob, "Bob's words", created_at=env.fake.clock.now())
    with pytest.raises(AdapterError) as refused:
        await env.adapter().delete(theirs.id)
    assert (refused.value.status, refused.value.retryable) == (404, False)
    assert "another account's (bob)" in refused.value.message
    assert env.fake.status(theirs.id) is not None and not theirs.deleted


async def test_a_token_without_read_statuses_deletes_its_own_status(env: Env) -> None:
    """Deleting one's own status needs only write:statuses: the instance answers 200 and
    nothing is read."""
    adapter = env.adapter()
    result = await adapter.publish(post())
    env.fake.scope_token(TOKEN, "read:accounts", "write:statuses")
    await adapter.delete(result.remote_id)
    assert env.fake.statuses() == []
    assert env.fake.faults.count("GET", f"/api/v1/statuses/{result.remote_id}") == 0


async def test_delete_of_a_gone_status_without_read_statuses_is_refused_naming_the_scope(env: Env) -> None:
    """The status is gone (deleted on the instance), so DELETE answers 404, as for another
    account's; telling which needs a read, and a token without read:statuses is refused it
    (403): the deletion is refused as the credential's fault, naming the scope, never taken
    for done (before: the stand-in let the read through and the 404 was taken for gone)."""
    adapter = env.adapter()
    result = await adapter.publish(post())
    gone = env.fake.status(result.remote_id)
    assert gone is not None
    gone.deleted = True  # deleted on the instance's own pages
    env.fake.scope_token(TOKEN, "read:accounts", "write:statuses")
    with pytest.raises(AdapterError) as refused:
        await adapter.delete(result.remote_id)
    assert (refused.value.status, refused.value.retryable, refused.value.auth_failed) == (403, False, True)
    assert "the token lacks the scope read:statuses" in refused.value.message
    assert "gone, or another account's" in refused.value.message
    assert TOKEN not in texts_of(refused.value)


async def test_find_existing_without_read_statuses_fails_as_the_credential_naming_the_scope(env: Env) -> None:
    """The recovery lookup reads the account's statuses: a token without read:statuses is
    refused 403 there, and the lookup fails as the credential's fault (its posts wait for an
    admin, unspent), naming the scope, not as a refusal of the post; nothing is sent."""
    await env.adapter().publish(post())
    env.fake.scope_token(TOKEN, "read:accounts", "write:statuses")
    with pytest.raises(AdapterError) as refused:
        await env.adapter().find_existing(post())
    assert (refused.value.status, refused.value.retryable, refused.value.auth_failed) == (403, False, True)
    assert refused.value.message == (
        "mastodon: GET /api/v1/accounts/:id/statuses answered 403: the token lacks the scope read:statuses; "
        "give the application read:statuses on the instance (Preferences, Development) and use its new access token")
    assert creates(env) == 1


async def test_each_call_refused_for_scope_names_the_scope_it_needs(env: Env) -> None:
    """Publishing, uploading, the profile: each 403 for a missing scope names the one its call
    needs, and is the credential's fault, not the post's."""
    image = MediaItem(data=b"\x89PNG fake", mime_type="image/png")
    cases: list[tuple[tuple[str, ...], Callable[[MastodonAdapter], Any], str]] = [
        (("read:accounts",), lambda a: a.publish(post()), "write:statuses"),
        (("read:accounts", "write:statuses"), lambda a: a.publish(post(media=(image,))), "write:media"),
        (("write:statuses",), lambda a: a.verify_credentials(), "read:accounts"),
    ]
    for scopes, call, scope in cases:
        env.fake.scope_token(TOKEN, *scopes)
        with pytest.raises(AdapterError) as refused:
            await call(env.adapter())
        assert refused.value.auth_failed and refused.value.status == 403, scope
        assert f"the token lacks the scope {scope};" in refused.value.message
    assert env.fake.statuses() == [] and env.fake.media == {}


async def test_scope_check_says_what_each_narrowed_token_cannot_do_and_changes_nothing(env: Env) -> None:
    """The health check's question: without read:statuses a warning (posts still go out), naming
    the scope; without read:accounts the refusal itself; with every scope, nothing. It never asks
    to create a status (an instance taking an empty one would publish it), so a token without
    write:statuses is not told from one with it here, and nothing is made."""
    adapter = env.adapter()
    env.fake.scope_token(TOKEN, "read:accounts", "write:statuses")
    narrowed = await adapter.scope_check()
    assert narrowed.blocking is None and narrowed.warning is not None
    assert narrowed.warning.startswith("mastodon: GET /api/v1/accounts/:id/statuses answered 403: the token "
                                       "lacks the scope read:statuses; give the application read:statuses")
    env.fake.scope_token(TOKEN, "read:accounts", "read:statuses")
    assert await adapter.scope_check() == ScopeCheck()
    env.fake.scope_token(TOKEN, "write:statuses")
    with pytest.raises(AdapterError) as refused:
        await adapter.scope_check()
    assert refused.value.auth_failed and "the token lacks the scope read:accounts;" in refused.value.message
    env.fake.scope_token(TOKEN, "read", "write")
    assert await adapter.scope_check() == ScopeCheck()
    assert env.fake.statuses() == [] and creates(env) == 0  # no status asked for, none made
    assert TOKEN not in texts_of(refused.value)


async def test_verify_credentials(env: Env) -> None:
    """verify_credentials reports the token's account."""
    info = await env.adapter().verify_credentials()
    assert (info.remote_id, info.handle, info.display_name) == ("1", "alice@127.0.0.1", "Alice")
    assert info.url == "https://mastodon.example/@alice"


async def test_http_instance_is_refused_unless_loopback(env: Env) -> None:
    """A token is never sent in clear text to a non-loopback host."""
    config = AdapterConfig(account="a", handle="a", secret=TOKEN, session=env.session,
                           options={"instance": "http://mastodon.example"})
    with pytest.raises(ValueError, match="https"):
        MastodonAdapter(config)


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
        lambda: env.fake.faults.rate_limit_next(1),
        lambda: env.fake.faults.drop_next_create(),
        lambda: env.fake.faults.delay_next(1.0),
    ]
    for i, inject in enumerate(faults):
        inject()
        with pytest.raises(AdapterError) as caught:
            await adapter.publish(post(key=f"leak-{i}:v1"))
        errors.append(caught.value)
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(post(language="xx-bad", key="leak-422:v1"))
    errors.append(caught.value)
    env.fake.revoke_token(TOKEN)
    with pytest.raises(AdapterError) as caught:
        await adapter.verify_credentials()
    errors.append(caught.value)
    assert caught.value.auth_failed
    for error in errors:
        assert TOKEN not in texts_of(error)
    assert TOKEN not in repr(adapter)
    assert TOKEN not in repr(AdapterConfig(account="a", handle="a", secret=TOKEN))
    assert TOKEN not in caplog.text
    assert "mastodon" in caplog.text  # the debug log did run
    await env.fake.faults.settle()


# -- the stand-in itself ---------------------------------------------------------------------


async def _raw(env: Env, method: str, path: str, *, token: str | None = TOKEN,
               **kwargs: Any) -> tuple[int, Any]:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with env.session.request(method, env.url(path), headers=headers, **kwargs) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


async def test_fake_requires_a_known_token(env: Env) -> None:
    """The stand-in answers 401 with Mastodon's body for a missing or unknown token."""
    for token in (None, "nope"):
        status, body = await _raw(env, "POST", "/api/v1/statuses", token=token,
                                  json={"status": "x"})
        assert (status, body) == (401, {"error": "The access token is invalid"})
    assert env.fake.statuses() == []


async def test_fake_checks_each_methods_scope_as_mastodon_does(env: Env) -> None:
    """A known token without the scope a method needs is answered 403 with Mastodon's body,
    and nothing changes; a parent scope covers its children; reading public statuses without
    a token needs none (``authorize_if_got_token!``); verify_credentials takes ``profile``."""
    status_id = (await env.adapter().publish(post())).remote_id
    outside = (403, {"error": "This action is outside the authorized scopes"})
    env.fake.scope_token(TOKEN, "read:accounts", "write:statuses")
    for path in (f"/api/v1/statuses/{status_id}", f"/api/v1/accounts/{env.account.id}/statuses",
                 f"/api/v1/statuses?id[]={status_id}"):
        assert await _raw(env, "GET", path) == outside, path
        assert (await _raw(env, "GET", path, token=None))[0] == 200, path
    assert await _raw(env, "POST", "/api/v2/media", data={"file": io.BytesIO(b"x")}) == outside
    assert await _raw(env, "PATCH", "/api/v1/accounts/update_credentials", json={"note": "n"}) == outside
    assert env.fake.media == {} and env.account.note == ""
    env.fake.scope_token(TOKEN, "read:statuses", "write:media")
    assert await _raw(env, "POST", "/api/v1/statuses", json={"status": "x"}) == outside
    assert await _raw(env, "PUT", f"/api/v1/statuses/{status_id}", json={"status": "y"}) == outside
    assert await _raw(env, "DELETE", f"/api/v1/statuses/{status_id}") == outside
    assert await _raw(env, "GET", "/api/v1/accounts/verify_credentials") == outside
    assert [s.text for s in env.fake.statuses()] == [post().text]
    env.fake.scope_token(TOKEN, "read", "write")
    assert (await _raw(env, "GET", f"/api/v1/statuses/{status_id}"))[0] == 200
    assert (await _raw(env, "PATCH", "/api/v1/accounts/update_credentials", json={"note": "n"}))[0] == 200
    env.fake.scope_token(TOKEN, "profile")
    assert (await _raw(env, "GET", "/api/v1/accounts/verify_credentials"))[0] == 200


async def test_fake_accepts_form_and_json_bodies(env: Env) -> None:
    """Form-encoded (arrays as ``name[]``) and JSON bodies both create statuses."""
    status, body = await _raw(env, "POST", "/api/v1/statuses",
                              data={"status": "form", "sensitive": "true",
                                    "visibility": "private"})
    assert status == 200 and body["visibility"] == "private" and body["sensitive"] is True
    status, body = await _raw(env, "POST", "/api/v1/statuses",
                              json={"status": "json", "sensitive": False})
    assert status == 200 and body["content"] == "<p>json</p>" and body["sensitive"] is False
    assert [s.text for s in env.fake.statuses()] == ["form", "json"]


async def test_fake_enforces_documented_validations(env: Env) -> None:
    """Length (spoiler counted, URLs 23), blank text, visibility, language, scheduled_at."""
    ok_text = "a" * 477 + " https://example.com/" + "z" * 100  # 477 + 1 + 23 = 501
    cases: list[tuple[dict[str, Any], str]] = [
        ({"status": "a" * 501}, "Validation failed: Text character limit of 500 exceeded"),
        ({"status": "a" * 495, "spoiler_text": "123456"},
         "Validation failed: Text character limit of 500 exceeded"),
        ({"status": ok_text}, "Validation failed: Text character limit of 500 exceeded"),
        ({"status": "   "}, "Validation failed: Text can't be blank"),
        ({"status": "x", "visibility": "everyone"},
         "Validation failed: Visibility is not included in the list"),
        ({"status": "x", "language": "eng"},
         "Validation failed: Language is not an ISO 639-1 code"),
        ({"status": "x", "scheduled_at": (env.fake.clock.now() + timedelta(minutes=4))
          .isoformat()},
         "Validation failed: Scheduled at The scheduled date must be in the future"),
    ]
    for params, message in cases:
        status, body = await _raw(env, "POST", "/api/v1/statuses", json=params)
        assert (status, body) == (422, {"error": message}), params
    assert env.fake.statuses() == []
    status, body = await _raw(env, "POST", "/api/v1/statuses", json={"status": "a" * 500})
    assert status == 200
    later = (env.fake.clock.now() + timedelta(minutes=10)).isoformat()
    status, body = await _raw(env, "POST", "/api/v1/statuses",
                              json={"status": "later", "scheduled_at": later})
    assert status == 200 and "scheduled_at" in body and "content" not in body


async def test_fake_idempotency_is_per_account_and_expires(env: Env) -> None:
    """Same key and account return the same status for an hour; others get their own."""
    env.fake.add_account("bob", OTHER_TOKEN)
    key = {"Idempotency-Key": "k1"}
    _, first = await _raw(env, "POST", "/api/v1/statuses", json={"status": "a"}, headers=key)
    _, again = await _raw(env, "POST", "/api/v1/statuses", json={"status": "b"}, headers=key)
    _, bobs = await _raw(env, "POST", "/api/v1/statuses", token=OTHER_TOKEN,
                         json={"status": "a"}, headers=key)
    assert first["id"] == again["id"] != bobs["id"]
    env.fake.clock.advance(3601)
    _, expired = await _raw(env, "POST", "/api/v1/statuses", json={"status": "a"},
                            headers=key)
    assert expired["id"] not in (first["id"], bobs["id"])
    assert len(env.fake.statuses()) == 3


async def test_fake_lists_newest_first_at_most_40(env: Env) -> None:
    """Account statuses come newest first, capped at 40, with rate-limit headers."""
    for i in range(45):
        env.fake.seed_status(env.account, f"s{i}", created_at=env.fake.clock.now())
    async with env.session.get(env.url("/api/v1/accounts/1/statuses"), params={"limit": "80"},
                               headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        page = await resp.json()
        assert resp.headers["X-RateLimit-Limit"] == "300"
        assert resp.headers["X-RateLimit-Reset"].endswith("Z")
    assert len(page) == 40
    assert [int(s["id"]) for s in page] == sorted((int(s["id"]) for s in page), reverse=True)


def test_fake_counts_length_like_the_adapter() -> None:
    """Stand-in and adapter agree on Mastodon's length rule, written independently."""
    samples = ["plain", "🇯🇵👍🏽 e\u0301", "@bob@other.example hi", "see https://x.example/"
               + "y" * 80 + ".", "👨\u200d👩\u200d👧 family"]
    for sample in samples:
        assert countable_length(sample, "cw") == status_length(sample, "cw"), sample


def test_rendered_content_strips_back_to_the_text() -> None:
    """The adapter's HTML stripping undoes the stand-in's Mastodon-style rendering."""
    text = "A & B <c>\nline two https://example.com/a/very/long/path/that/is/cut\n\n@x@y.z"
    html = render_content(text, "mastodon.example")
    assert "<br />" in html and 'class="invisible"' in html
    assert normalize_for_match(html_to_text(html)) == normalize_for_match(text)
