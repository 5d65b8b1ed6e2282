"""The gateway is SIGKILLed at the moment a status's uploads are being attached to it: after a
restart there is either no status at all (and the uploads are free for the retry), or one with
every upload attached, never a held post whose media are gone."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.images import PNG
from tests.serve import ServeProcess

M_TOKEN = "mtok-crash-media-7e57ab1e"

# Loaded by the gateway process at start (``sitecustomize``, from PYTHONPATH): the first call
# that attaches uploads to a post kills the process outright, inside whatever it was doing.
KILL_ON_ATTACH = textwrap.dedent("""
    import os, signal

    import gateway.storage.media as media

    async def attach(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    media.attach = attach
""")


@pytest.mark.slow
async def test_sigkill_while_attaching_media_leaves_no_post_without_them(tmp_path: Path, db_url: str) -> None:
    """Killed while attaching, the status is not there after the restart, the upload is still
    the person's, and posting the status again carries it."""
    upstream = FakeMastodon()
    upstream.add_account("brand", M_TOKEN)
    server = TestServer(mastodon_app(upstream))
    await server.start_server()
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "masto", f"""
        account: masto
        platform: mastodon
        instance: {str(server.make_url('')).rstrip('/')}
        credentials: env:CRASH_M_TOKEN
        tier: co-signed
        owner: alice
        writers: [alice]
        approvals:
          required: 1
          from: [bob]
    """)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_ON_ATTACH)
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policies)
    serve.env.update(CRASH_M_TOKEN=M_TOKEN)
    serve.cli("log", "keygen", "--out", str(tmp_path / "log.key"))
    serve.cli("migrate")  # the token is made before the gateway's first start
    token = serve.cli("token", "create", "--user", "alice", "--account", "masto").stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    plain_path = serve.env.get("PYTHONPATH", "")
    serve.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(hooks), plain_path) if p)
    await serve.start()
    try:
        async with aiohttp.ClientSession() as session:
            form = aiohttp.FormData()
            form.add_field("file", PNG, filename="dot.png", content_type="image/png")
            async with session.post(f"{serve.base}/api/v2/media", data=form, headers=auth) as resp:
                assert resp.status in (200, 202), await resp.text()
                media_id = (await resp.json())["id"]
            try:
                async with session.post(f"{serve.base}/api/v1/statuses", headers=auth,
                                        data={"status": "With a picture", "media_ids[]": media_id}) as resp:
                    answered = resp.status
            except aiohttp.ClientError:
                answered = None
            assert answered is None, "the gateway answered instead of dying while attaching"
            assert serve.proc is not None and serve.proc.wait(timeout=10) == -9
            serve.proc = None

            serve.env["PYTHONPATH"] = plain_path
            await serve.start()
            async with session.get(f"{serve.base}/v1/posts?account=masto", headers=auth) as resp:
                assert resp.status == 200
                assert (await resp.json())["posts"] == [], "a status was stored without its upload"
            async with session.post(f"{serve.base}/api/v1/statuses", headers=auth,
                                    data={"status": "With a picture", "media_ids[]": media_id}) as resp:
                assert resp.status == 200, await resp.text()
                status = await resp.json()
            assert [m["id"] for m in status["media_attachments"]] == [media_id]
    finally:
        serve.stop()
        await server.close()
