"""The checkpoint signer: keys, and its refusal to sign over a restored or rewritten log."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import stat
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from gateway.app import make_app
from gateway.appkeys import CHECKPOINTS
from gateway.audit.keys import LogKeyError, load_signer, write_new_key
from gateway.clock import ManualClock
from gateway.services.checkpoints import CheckpointRefused
from tests.audit.logtools import Attacker, byline, cli_env
from tests.conftest import make_settings, started_gateway


def _put_back(copy: Path, path: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    path.write_bytes(copy.read_bytes())


class _Backup:
    """An older copy of the database, and putting it back the way an operator would."""

    def __init__(self, db_url: str, tmp_path: Path) -> None:
        self.db_url = db_url
        self.copy = tmp_path / "backup.db"
        self.state: tuple[int, bytes, bytes] | None = None

    async def take(self) -> None:
        """Copy the database as it is now."""
        if self.db_url.startswith("sqlite:///"):
            src = sqlite3.connect(self.db_url.removeprefix("sqlite:///"))
            dst = sqlite3.connect(self.copy)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
            return
        rows = await Attacker(self.db_url).fetch("SELECT size, root, frontier FROM log_state")
        size, root, frontier = rows[0]
        self.state = (int(size), bytes(root), bytes(frontier))

    async def restore(self) -> None:
        """Put the older copy back (the gateway is stopped)."""
        if self.db_url.startswith("sqlite:///"):
            await asyncio.to_thread(_put_back, self.copy, Path(self.db_url.removeprefix("sqlite:///")))
            return
        # PostgreSQL: what restoring that copy does to the log tables, done in place by a
        # superuser with the append-only triggers out of the way.
        assert self.state is not None
        size, root, frontier = self.state
        await Attacker(self.db_url).run(
            ("DELETE FROM log_entries WHERE idx >= ?", (size,)),
            ("DELETE FROM log_nodes WHERE (idx + 1) * (1::bigint << level::int) > ?", (size,)),
            ("DELETE FROM log_checkpoints WHERE size > ?", (size,)),
            ("DELETE FROM log_texts", ()),
            ("UPDATE log_state SET size = ?, root = ?, frontier = ?", (size, root, frontier)),
        )


async def test_restored_older_copy_is_refused(
    db_url: str, policy_dir: Path, clock: ManualClock, tmp_path: Path
) -> None:
    """After an older database copy is restored, the gateway signs nothing and says why."""
    backup = _Backup(db_url, tmp_path)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.submit("alice", "direct", "Before the backup")
        await gw.app[CHECKPOINTS].sign_now()
        await backup.take()
        old = await gw.client.get("/log/checkpoint")
        old_note = await old.read()
        for n in range(3):
            await gw.submit("alice", "direct", f"After the backup {n}")
        signed = await gw.app[CHECKPOINTS].sign_now()
        signed_size = int(signed.split(b"\n")[1])
    await backup.restore()
    async with started_gateway(db_url, policy_dir, clock) as gw:
        status, body = await gw.call(None, "GET", "/readyz")
        assert status == 503, body
        assert "restored from an older copy" in body["problems"]["log"]
        assert f"a checkpoint of {signed_size} entries" in body["problems"]["log"]
        with pytest.raises(CheckpointRefused):
            await gw.app[CHECKPOINTS].sign_now()
        resp = await gw.client.get("/log/checkpoint")
        assert await resp.read() == old_note
        # Growing past the remembered size does not help: it is another history.
        while await gw.log_size() <= signed_size:
            await gw.submit("alice", "direct", "A different future")
        with pytest.raises(CheckpointRefused, match="does not extend the checkpoint"):
            await gw.app[CHECKPOINTS].sign_now()
        resp = await gw.client.get("/log/checkpoint")
        assert await resp.read() == old_note


async def test_forged_checkpoint_in_the_database_is_refused(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A latest checkpoint in the database that this key did not sign stops the signer."""
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.submit("alice", "direct", "Hello")
        note = await gw.app[CHECKPOINTS].sign_now()
        size = int(note.split(b"\n")[1])
        forged = note.replace(b"\n\n\xe2\x80\x94 byline.local/log ", b"\n\n\xe2\x80\x94 byline.local/log AAAA")
        await Attacker(db_url).run(("UPDATE log_checkpoints SET note = ? WHERE size = ?", (forged, size)))
        with pytest.raises(CheckpointRefused, match="does not verify"):
            await gw.app[CHECKPOINTS].sign_now()
        status, body = await gw.call(None, "GET", "/readyz")
        assert status == 503 and "does not verify" in body["problems"]["log"]


async def test_missing_key_stops_the_start(db_url: str, policy_dir: Path, clock: ManualClock, tmp_path: Path) -> None:
    """Without a key file (and outside demo mode) the gateway does not start, and says how to fix it."""
    missing = tmp_path / "nowhere" / "log.key"
    app = make_app(make_settings(db_url, policy_dir, log_key_file=missing, log_key_autocreate=False),
                   clock=clock, run_publisher=False)
    server = TestServer(app)
    try:
        with pytest.raises(LogKeyError, match="byline log keygen"):
            await server.start_server()
    finally:
        await server.close()
    assert not missing.exists()


async def test_serve_without_a_key_exits_with_a_clear_error(tmp_path: Path, policy_dir: Path) -> None:
    """`byline serve` with no key file prints which setting to fix and exits 2."""
    env = cli_env(BYLINE_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}", BYLINE_POLICY_DIR=str(policy_dir),
                  BYLINE_LOG_KEY_FILE=str(tmp_path / "absent.key"), BYLINE_PORT="0")
    result = await byline("serve", env=env)
    assert result.code == 2, result.text
    assert "BYLINE_LOG_KEY_FILE: no log signing key" in result.err
    assert "byline log keygen" in result.err


async def test_keygen_writes_a_private_file_and_prints_the_verifier(tmp_path: Path) -> None:
    """`byline log keygen` writes a 0600 key file, prints only the verifier key, and never overwrites."""
    out = tmp_path / "keys" / "log.key"
    result = await byline("log", "keygen", "--out", str(out), "--origin", "example.org/log")
    assert result.code == 0, result.text
    signer = load_signer(out, origin="example.org/log")
    assert result.out.strip() == signer.verifier().to_text()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    secret = out.read_text().strip()
    assert secret.startswith("PRIVATE+KEY+example.org/log+")
    # PRIVATE+KEY+name+keyid+base64: the base64 itself may contain "+", so split from the left.
    seed = secret.split("+", 4)[4]
    assert len(seed) == 44
    assert secret not in result.text and seed not in result.text
    again = await byline("log", "keygen", "--out", str(out), "--origin", "example.org/log")
    assert again.code == 1 and "exists" in again.err
    assert out.read_text().strip() == secret


def test_key_for_another_origin_is_refused(tmp_path: Path) -> None:
    """A key whose name is not BYLINE_LOG_ORIGIN is refused, without quoting the secret."""
    path = tmp_path / "log.key"
    signer = write_new_key(path, "other.example/log")
    with pytest.raises(LogKeyError, match=re.escape("signs for 'other.example/log'")) as caught:
        load_signer(path, origin="byline.local/log")
    assert signer.to_text() not in str(caught.value)
    path.write_text("not a key\n")
    with pytest.raises(LogKeyError, match="is not a signer key"):
        load_signer(path, origin="byline.local/log")
