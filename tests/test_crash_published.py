"""The gateway is SIGKILLed after Mastodon has edited (or deleted) a published post and before
the gateway records it, then restarted: the record, the log (verified) and Mastodon agree, and
the change went to Mastodon once more at most. Before, nothing brought them in line until a
later change of the same post, and without one Mastodon kept words the log never held."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware
from mastodon import Mastodon

from gateway.audit.export import export_database
from gateway.audit.keys import write_new_key
from gateway.storage.db import open_database
from tests.clients.test_media_update import PNG
from tests.conftest import write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.serve import ServeProcess

M_TOKEN = "mtok-crash-published-7a11ed17"
NEW_WORDS = "Launch day, fixed"


class Stall:
    """Mastodon makes the first change of a status (``PUT`` edits it, ``DELETE`` deletes it)
    and then does not answer: the gateway waits for an answer that comes after it died."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.calls = 0
        self.made = asyncio.Event()
        self.release = asyncio.Event()

    def middleware(self) -> Middleware:
        """The middleware to add to the stand-in's application."""

        @web.middleware
        async def stall(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method != self.method or not request.path.startswith("/api/v1/statuses/"):
                return await handler(request)
            self.calls += 1
            response = await handler(request)
            if self.calls == 1:
                self.made.set()
                await self.release.wait()
            return response

        return stall


async def _until(what: str, condition: Callable[[], Awaitable[tuple[bool, object]]], seconds: float = 15) -> None:
    """Wait until ``condition`` says yes; else fail with what it saw last."""
    deadline = time.monotonic() + seconds
    while not (outcome := await condition())[0]:
        assert time.monotonic() < deadline, f"{what}: not so after {seconds:.0f} s: {outcome[1]}"
        await asyncio.sleep(0.1)


async def _record(session: aiohttp.ClientSession, serve: ServeProcess, token: str, post_id: str) -> dict[str, Any]:
    async with session.get(f"{serve.base}/v1/posts/{post_id}", headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200, await resp.text()
        found: dict[str, Any] = await resp.json()
        return found


@pytest.mark.slow
@pytest.mark.parametrize("change", ["edit", "edit_alt_text", "delete"])
async def test_sigkill_between_a_change_on_the_platform_and_its_record(
    tmp_path: Path, db_url: str, change: str,
) -> None:
    """Alice edits (or deletes) her published toot; Mastodon makes the change and the gateway
    is killed before it hears so. After a restart (a 2 s hold), its publisher settles the
    change: the record and Mastodon agree, the log holds the change and verifies, and Mastodon
    was asked for it twice at most. An edit giving the toot's picture new alt text as well
    (``edit_alt_text``) is settled with it: the alt text goes out again with the words, and the
    record and the log hold it."""
    fake = FakeMastodon()
    account = fake.add_account("brand", M_TOKEN)
    stall = Stall("DELETE" if change == "delete" else "PUT")
    standin = mastodon_app(fake)
    standin.middlewares.append(stall.middleware())
    server = TestServer(standin)
    await server.start_server()
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "masto", f"""
        account: masto
        platform: mastodon
        instance: {str(server.make_url('')).rstrip('/')}
        credentials: env:CRASH_M_TOKEN
        tier: direct
        owner: alice
    """)
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policies, publish_lease_seconds="2",
                         checkpoint_interval_seconds="1")
    serve.env.update(CRASH_M_TOKEN=M_TOKEN)
    key = write_new_key(tmp_path / "log.key", "byline.local/log").verifier().to_text()
    serve.cli("migrate")
    token = serve.cli("token", "create", "--user", "alice", "--account", "masto").stdout.strip()
    changing: asyncio.Future[Any] | None = None
    try:
        await serve.start()
        api = Mastodon(access_token=token, api_base_url=serve.base)
        media = None
        if change == "edit_alt_text":
            media = await asyncio.to_thread(api.media_post, PNG, mime_type="image/png", description="A cat")
        post_id = str((await asyncio.to_thread(api.status_post, "Launch day", media_ids=media and [media])).id)
        async with aiohttp.ClientSession() as session:
            async def published() -> tuple[bool, object]:
                state = (await _record(session, serve, token, post_id))["state"]
                return state == "published", state

            await _until("published", published)
            alt = [api.generate_media_edit_attributes(media, description="A ginger cat")] if media else None
            call = functools.partial(api.status_update, post_id, NEW_WORDS, media_attributes=alt) \
                if change != "delete" else functools.partial(api.status_delete, post_id)
            changing = asyncio.ensure_future(asyncio.to_thread(call))
            await asyncio.wait_for(stall.made.wait(), 15)
            serve.kill()
            shown = [s.text for s in fake.statuses(account)]
            assert shown == ([] if change == "delete" else [NEW_WORDS]), "Mastodon made the change"
            alt_texts = [[fake.media[m].description for m in s.media_ids] for s in fake.statuses(account)]
            if media:
                assert alt_texts == [["A ginger cat"]], "Mastodon made the change"

            await serve.start()

            async def settled() -> tuple[bool, object]:
                record = await _record(session, serve, token, post_id)
                now = (record["state"], record["text"])
                return now == (("deleted", "Launch day") if change == "delete" else ("published", NEW_WORDS)), now

            await _until("the record says what Mastodon shows", settled)
            record = await _record(session, serve, token, post_id)
            if media:
                again = Mastodon(access_token=token, api_base_url=serve.base)  # the restart's port
                status = await asyncio.to_thread(again.status, post_id)
                assert [m.description for m in status.media_attachments] == ["A ginger cat"]
        assert [s.text for s in fake.statuses(account)] == shown
        assert [[fake.media[m].description for m in s.media_ids] for s in fake.statuses(account)] == alt_texts
        assert stall.calls <= 2, f"Mastodon was asked {stall.calls} times"
        kinds = [e["type"] for e in record["events"]]
        if change != "delete":
            assert kinds[-2:] == ["post.revising", "post.revised"], kinds
        else:
            assert kinds[-1] == "post.deleted", kinds
        assert record["events"][-1]["data"].get("recovered") is True
    finally:
        serve.stop()
        stall.release.set()
        if changing is not None:
            with contextlib.suppress(Exception):
                await changing  # the client's connection died with the gateway
        await server.close()
    export = tmp_path / "log.export"
    db = await open_database(db_url)
    try:
        await export_database(db, export, origin="byline.local/log")
    finally:
        await db.close()
    verified = await asyncio.to_thread(serve.cli, "audit", "verify", "--key", key, "--export", str(export),
                                       "--no-state", "--no-progress", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert M_TOKEN not in serve.log_path.read_text()
