"""From outside: `byline serve` as an operator runs it, a token from `byline token create
--account`, and an unmodified Mastodon.py posting through it with the real clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from mastodon import Mastodon, MastodonNotFoundError

from tests.serve import ServeProcess


async def test_cli_token_works_for_a_mastodon_app(tmp_path: Path, db_url: str, policy_dir: Path) -> None:
    """A CLI token bound to an account is a Mastodon bearer token: post, cancel in the window, publish."""
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policy_dir)
    keygen = serve.cli("log", "keygen", "--out", str(tmp_path / "log.key"), check=False)
    assert keygen.returncode == 0, keygen.stderr
    await serve.start()
    tokens: list[str] = []
    try:
        for user, account in (("bob", "delayed"), ("alice", "direct")):
            made = serve.cli("token", "create", "--user", user, "--account", account).stdout.strip()
            tokens.append(made)
        delayed = Mastodon(access_token=tokens[0], api_base_url=serve.base)
        regret = await asyncio.to_thread(delayed.status_post, "Second thoughts")
        assert regret.byline.state == "scheduled"
        await asyncio.to_thread(delayed.status_delete, regret.id)
        with pytest.raises(MastodonNotFoundError):
            await asyncio.to_thread(delayed.status, regret.id)
        direct = Mastodon(access_token=tokens[1], api_base_url=serve.base)
        status = await asyncio.to_thread(direct.status_post, "Hello from outside")
        deadline = time.monotonic() + 15
        while (current := await asyncio.to_thread(direct.status, status.id)).byline.state != "published":
            assert time.monotonic() < deadline, current.byline.state
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session, session.get(f"{serve.base}/sandbox/direct.json") as page:
            [published] = (await page.json())["posts"]
        assert current.url == f"{serve.base}/sandbox/direct#post-{published['id']}"
        assert published["text"] == "Hello from outside"
    finally:
        output = serve.stop()
        assert "Traceback" not in output, output
        for token in tokens:  # tokens never reach the logs
            assert token not in output
