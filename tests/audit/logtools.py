"""Helpers for the audit-log tests: a realistic log, the real CLI, and a determined attacker."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg
import structlog

from gateway.appkeys import CHECKPOINTS
from gateway.audit.export import export_database
from gateway.audit.note import Checkpoint, Signer, sign_note
from gateway.audit.verify import ExportSource, Report, verify
from gateway.storage import log as log_sql
from gateway.storage.db import Database
from tests.conftest import Gateway

ROOT = Path(__file__).resolve().parents[2]


async def populate(gw: Gateway) -> dict[str, str]:
    """Drive every tier through the HTTP API, so the log holds each kind of event; return ids."""
    ids: dict[str, str] = {}
    direct = await gw.submit("alice", "direct", "Hello world")
    ids["direct"] = direct["id"]
    held = await gw.submit("alice", "direct", "The CEO was fired today")
    ids["confirmed"] = held["id"]
    assert (await gw.act("alice", held["id"], "approve"))[0] == 200
    status, _ = await gw.call("alice", "POST", "/v1/posts", {"account": "direct", "text": "example-slur"})
    assert status == 422
    cos = await gw.submit("carol", "cosigned", "Our new product ships today")
    ids["cosigned"] = cos["id"]
    assert (await gw.act("bob", cos["id"], "approve"))[0] == 200
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{cos['id']}", {"text": "Our new product ships today!"})
    assert status == 200
    assert (await gw.act("bob", cos["id"], "approve"))[0] == 200
    assert (await gw.act("dave", cos["id"], "approve"))[0] == 200
    rejected = await gw.submit("alice", "cosigned", "Draft announcement")
    ids["rejected"] = rejected["id"]
    assert (await gw.act("carol", rejected["id"], "reject", {"reason": "Not this week"}))[0] == 200
    delayed = await gw.submit("bob", "delayed", "First draft")
    ids["delayed"] = delayed["id"]
    await gw.call("bob", "PATCH", f"/v1/posts/{delayed['id']}", {"text": "Second draft"})
    cancelled = await gw.submit("bob", "delayed", "Regrettable take")
    assert (await gw.act("bob", cancelled["id"], "cancel"))[0] == 200
    suggestion = await gw.submit("dave", "managed", "Thank you all for coming")
    ids["suggestion"] = suggestion["id"]
    status, adopted = await gw.act("bob", suggestion["id"], "adopt", {"text": "Thank you all!"})
    assert status == 201
    ids["adopted"] = adopted["id"]
    expiring = await gw.submit("alice", "cosigned", "Will anyone read this")
    ids["expired"] = expiring["id"]
    await gw.tick()
    gw.clock.advance(timedelta(hours=25))
    await gw.tick()
    status, _ = await gw.call("alice", "DELETE", f"/v1/posts/{ids['direct']}")
    assert status == 200
    await gw.app[CHECKPOINTS].sign_now()
    return ids


@dataclass
class Result:
    """What a CLI run printed and how it ended."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        """Everything it printed."""
        return self.out + self.err


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a `byline` subprocess: no developer BYLINE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(extra)
    return env


async def byline_in_process(*args: str, env: dict[str, str] | None = None, stdin: str = "",
                            cwd: Path = ROOT) -> Result:
    """`byline`'s own ``main`` run in the test's process, with ``env`` as its whole environment
    and stdin, stdout and stderr of its own: its parsing, its checks, its messages and its exit
    status, without the second or more that a new Python process takes to start under load.
    For the many runs whose point is what the command says, not how it starts: the entry point
    itself, as its own process, is run by :func:`byline` in the tests of each command. Password
    hashes made here are those of the tests' process (tests/conftest.py), not Byline's cost."""
    from gateway.cli import main

    def run() -> Result:
        out, err = io.StringIO(), io.StringIO()
        with _logging_kept(), mock.patch.dict(os.environ, env or cli_env(), clear=True), \
                contextlib.chdir(cwd), mock.patch.object(sys, "stdin", io.StringIO(stdin)), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors, as the process would end
                code = exc.code if isinstance(exc.code, int) else 1
        return Result(code, out.getvalue(), err.getvalue())

    # ``main`` runs its own event loop (asyncio.run), which cannot start inside the test's; the
    # test's goes on meanwhile, serving a gateway the command may be reading.
    return await asyncio.to_thread(run)


@contextlib.contextmanager
def _logging_kept() -> Iterator[None]:
    """A command configures structlog and the standard library's logging for its process: in
    the test's process, the test's own are put back afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


async def byline(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run the real `byline` CLI in a subprocess without blocking the event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args, cwd=ROOT, env=env or cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


class Attacker:
    """Someone with full control of the database: triggers are no obstacle."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    async def run(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Run SQL with the append-only triggers out of the way."""
        if self.db_url.startswith("sqlite:///"):
            conn = sqlite3.connect(self.db_url.removeprefix("sqlite:///"), isolation_level=None)
            try:
                names = [r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'")]
                for name in names:
                    conn.execute(f"DROP TRIGGER {name}")
                for sql, args in statements:
                    conn.execute(sql, args)
            finally:
                conn.close()
            return
        pg = await asyncpg.connect(self.db_url)
        try:
            await pg.execute("SET session_replication_role = replica")  # no triggers fire
            for sql, args in statements:
                counter = iter(range(1, 100))
                converted = "".join(f"${next(counter)}" if ch == "?" else ch for ch in sql)
                await pg.execute(converted, *args)
        finally:
            await pg.close()

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Read with plain SQL."""
        if self.db_url.startswith("sqlite:///"):
            conn = sqlite3.connect(self.db_url.removeprefix("sqlite:///"))
            try:
                return list(conn.execute(sql, args))
            finally:
                conn.close()
        pg = await asyncpg.connect(self.db_url)
        try:
            counter = iter(range(1, 100))
            converted = "".join(f"${next(counter)}" if ch == "?" else ch for ch in sql)
            return [tuple(r) for r in await pg.fetch(converted, *args)]
        finally:
            await pg.close()

    async def entry(self, index: int) -> bytes:
        """The stored bytes of one entry."""
        rows = await self.fetch("SELECT entry FROM log_entries WHERE idx = ?", index)
        return bytes(rows[0][0])


async def verified_export(db: Database, tmp_path: Path) -> Report:
    """Sign the tree as it is, export the log and verify the export (as an auditor would)."""
    signer = Signer.generate("test.example/log")
    async with db.read() as txn:
        state = await log_sql.read_state(txn)
    note = sign_note(Checkpoint(signer.name, int(state["size"]), bytes(state["root"])).to_text(), signer)
    async with db.write() as txn:
        await log_sql.insert_checkpoint(txn, size=int(state["size"]), root=bytes(state["root"]), note=note, at=0)
    out = tmp_path / f"log-{state['size']}.export"
    await export_database(db, out, origin=signer.name)
    return verify(ExportSource(out), signer.verifier(), workers=1)


async def verified_by_cli(gw: Gateway) -> None:
    """``byline audit verify`` against the running gateway passes (a checkpoint signed first,
    so that it covers the whole log). The command runs in the test's process, on one process of
    its own (a fork of the test's, threads and all, is no place for its worker processes): a
    hundred tests end with it, and tests/audit/test_tamper.py runs it as its own process, with
    its workers, against a live gateway too."""
    await gw.app[CHECKPOINTS].sign_now()
    key = gw.app[CHECKPOINTS].verifier_key()
    url = str(gw.client.make_url("")).rstrip("/")
    result = await byline_in_process("audit", "verify", "--key", key, "--url", url, "--no-state", "--no-progress",
                                     "--workers", "1")
    assert result.code == 0, result.text


async def rejected_by_cli(gw: Gateway) -> str:
    """``byline audit verify`` against the running gateway (a checkpoint signed first), which
    must reject its log: what it said."""
    await gw.app[CHECKPOINTS].sign_now()
    key = gw.app[CHECKPOINTS].verifier_key()
    url = str(gw.client.make_url("")).rstrip("/")
    result = await byline("audit", "verify", "--key", key, "--url", url, "--no-state", "--no-progress")
    assert result.code != 0, result.text
    return result.text
