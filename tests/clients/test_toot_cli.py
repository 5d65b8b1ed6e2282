"""toot (PyPI), the Mastodon command-line client, run as its users run it, through Byline: the
browser sign-in (the URL it prints, the code pasted back), a post with a picture and its alt
text (toot sends the file with no content type), a scheduled post, and deleting; with exact
checks of what reaches the Mastodon instance behind the account."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from toot import api as toot_api
from toot import config as toot_config

from tests.clients.revisions import turned
from tests.clients.signin import sign_in
from tests.clients.world import World
from tests.images import PNG


class Toot:
    """The ``toot`` command with a configuration of its own (its tokens live under ``home``)."""

    def __init__(self, home: Path) -> None:
        self.env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
                    "NO_COLOR": "1", "TERM": "dumb"}
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
            self.env.pop(name, None)

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "toot", *args, env=self.env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

    async def run(self, *args: str) -> str:
        """Run one command to its end; it must succeed; give what it printed."""
        proc = await self.start(*args)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"toot {' '.join(args)}: {err.decode()}{out.decode()}"
        return out.decode()

    async def json(self, *args: str) -> Any:
        return json.loads(await self.run(*args, "--json"))

    async def login(self, world: World, *, user: str, account: str) -> str:
        """``toot login``: it prints the sign-in URL, a person signs in, the code is pasted back."""
        proc = await self.start("login", "--instance", world.base)
        assert proc.stdin is not None and proc.stdout is not None
        url = ""
        while not url:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, "toot login stopped before printing the sign-in URL"
            if line.startswith(f"{world.base}/oauth/authorize"):
                url = line.strip()
        proc.stdin.write(b"n\n")  # no browser here: the test is the person
        code = await sign_in(url, token=world.gateway.tokens[user], account=account)
        proc.stdin.write(code.encode() + b"\n")
        await proc.stdin.drain()
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode() + out.decode()
        assert "Successfully logged in" in out.decode()
        return url


async def test_toot_signs_in_posts_a_picture_schedules_and_deletes(world: World, tmp_path: Path) -> None:
    toot = Toot(tmp_path)
    url = await toot.login(world, user="alice", account="masto")
    assert url.startswith(f"{world.base}/oauth/authorize/?"), "toot asks for the page with a slash"
    assert "Authenticated accounts" in await toot.run("auth")

    picture = tmp_path / "photo"  # no extension: toot sends it with no content type
    picture.write_bytes(PNG)
    status = await toot.json("post", "A picture from toot", "--media", str(picture),
                             "--description", "A red square")
    assert status["url"] == f"{world.base}/posts/{status['id']}", "not out yet: its page on Byline"
    [attached] = status["media_attachments"]
    assert (attached["type"], attached["description"]) == ("image", "A red square")
    await world.gateway.tick()
    [sent] = world.upstream.statuses(world.upstream_account)
    assert sent.text == "A picture from toot"
    [uploaded] = [world.upstream.media[m] for m in sent.media_ids]
    assert (uploaded.mime_type, uploaded.description, uploaded.size) == ("image/png", "A red square", len(PNG))

    printed = await toot.run("post", "Later, from toot", "--scheduled-in", "2h")
    assert printed.startswith("Toot scheduled for: "), printed
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["A picture from toot"]

    await toot.run("delete", status["id"])
    assert world.upstream.statuses(world.upstream_account) == []
    assert world.upstream.statuses(world.upstream_account, include_deleted=True)[0].deleted


async def test_toots_edit_of_a_cosigned_status_waits_and_toot_sees_it(
    world: World, tmp_path: Path, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """toot's edit (its terminal interface's, ``toot.api.edit_status``, with the sign-in ``toot
    login`` kept) of a status published before its account turned co-signed: the answer is the
    status it edited, the words the platform shows, naming the edit held for two co-signers;
    ``toot status`` shows the same; ``toot delete`` takes the status off the instance and
    cancels the edit, which no approval then makes."""
    toot = Toot(tmp_path)
    await toot.login(world, user="alice", account="masto")
    first = await toot.json("post", "Bake sale at 10")
    await world.gateway.tick()
    await turned(world, policy_dir, "co-signed")
    monkeypatch.setenv("XDG_CONFIG_HOME", toot.env["XDG_CONFIG_HOME"])
    monkeypatch.setenv("HOME", toot.env["HOME"])
    user, app = toot_config.get_active_user_app()
    assert user is not None and app is not None
    answered = (await world.run(toot_api.edit_status, app, user, first["id"], "Bake sale at 11",
                                spoiler_text=None, visibility="public")).json()
    held = answered["byline"]["pending_revision"]
    assert (answered["id"], answered["content"], held["state"], held["approvals_needed"]) == (
        first["id"], "<p>Bake sale at 10</p>", "held", 2)
    shown = await toot.json("status", first["id"])
    assert (shown["content"], shown["byline"]["pending_revision"]["id"]) == ("<p>Bake sale at 10</p>", held["id"])
    await toot.run("delete", first["id"])
    assert (await world.gateway.get("alice", held["id"]))["state"] == "cancelled"
    code, body = await world.gateway.act("bob", held["id"], "approve")
    assert code == 409, body
    await world.gateway.tick()
    [sent] = world.upstream.statuses(world.upstream_account, include_deleted=True)
    assert (sent.deleted, sent.edits) == (True, [])
