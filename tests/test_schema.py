"""Migrations bring a database made by an earlier version up to date, its data with it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from gateway.audit.entry import encode_entry, text_commitment
from gateway.audit.merkle import leaf_hash
from gateway.storage import gate_intents as intents_sql
from gateway.storage import log as log_sql
from gateway.storage import posts as posts_sql
from gateway.storage import schema
from gateway.storage import xrpc as xrpc_sql
from gateway.storage.db import PostgresDatabase, SqliteDatabase, Txn, open_database
from gateway.types import AccountName, Micros, PostId, UserName

pytestmark = pytest.mark.empty_database  # the migrations themselves, from nothing


async def _open_unmigrated(db_url: str) -> SqliteDatabase | PostgresDatabase:
    if db_url.startswith("sqlite:///"):
        return await SqliteDatabase(Path(db_url.removeprefix("sqlite:///"))).open()
    assert urlsplit(db_url).scheme in ("postgresql", "postgres")
    return await PostgresDatabase(db_url).open()


async def _migrate_by_hand(txn: Txn, dialect: str, *, upto: int) -> None:
    """The schema of versions 1 to ``upto``, as a Byline of then left it, with its migrations noted."""
    await txn.execute("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for version in range(1, upto + 1):
        for stmt in schema._statements(dialect, version):
            await txn.execute(stmt)
        await txn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, 'then')", version)


async def test_version_3_keys_kept_texts_by_entry(db_url: str) -> None:
    """Texts kept by hash (version 2) are moved to the entries that commit to them, erased
    ones included, and the table then takes erasure and nothing else."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=2)
            texts = {
                text_commitment(word, bytes([n]) * 16): (bytes([n]) * 16, word if n != 2 else None)
                for n, word in enumerate(["one", "two", "three"])
            }
            digests = list(texts)
            datas: list[dict[str, object]] = [
                {"text_hash": digests[0]}, {"n": 1}, {"text_hash": digests[1]}, {"text_hash": digests[2]},
            ]
            for idx, data in enumerate(datas):
                raw = encode_entry(type="test.event", ts=0, actor="a", account="x", post=None, data=data, prev=None)
                await txn.execute(
                    "INSERT INTO log_entries (idx, leaf_hash, entry, type, chain, post_id, account, ts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", idx, leaf_hash(raw), raw, "test.event", None, None, "x", 0)
            await txn.execute("INSERT INTO log_state (id, size, root, frontier) VALUES (1, ?, ?, ?)",
                              len(datas), b"\0" * 32, b"")
            for digest, (salt, text) in texts.items():
                await txn.execute("INSERT INTO log_texts (text_hash, salt, text) VALUES (?, ?, ?)", digest, salt, text)
            # A text no entry commits to has nothing to be kept beside.
            await txn.execute("INSERT INTO log_texts (text_hash, salt, text) VALUES (?, ?, ?)", "f" * 64, b"s", "stray")
        await schema.migrate(db)
        async with db.read() as txn:
            rows = await log_sql.texts(txn, 0, 10)
            versions = [int(r["version"]) for r in await txn.fetchall("SELECT version FROM schema_migrations")]
        assert sorted(versions) == list(range(1, schema.LATEST + 1))
        assert [(int(r["idx"]), r["text_hash"], bytes(r["salt"]), r["text"]) for r in rows] == [
            (0, digests[0], bytes([0]) * 16, "one"),
            (2, digests[1], bytes([1]) * 16, "two"),
            (3, digests[2], bytes([2]) * 16, None),
        ]
        async with db.write() as txn:
            assert await log_sql.erase_text(txn, 0)
        with pytest.raises(Exception, match="append-only"):
            async with db.write() as txn:
                await txn.execute("UPDATE log_texts SET text = ? WHERE idx = 2", "changed")
    finally:
        await db.close()


async def test_each_migration_is_its_own_transaction(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration that fails leaves every one before it applied and itself not at all; the
    next start applies it."""
    db = await _open_unmigrated(db_url)
    real = schema._statements

    def failing_last(dialect: str, version: int) -> list[str]:
        if version == schema.LATEST:
            return [*real(dialect, version), "SELECT no_such_column FROM schema_migrations"]
        return real(dialect, version)

    try:
        monkeypatch.setattr(schema, "_statements", failing_last)
        with pytest.raises(Exception, match="no_such_column"):
            await schema.migrate(db)
        async with db.read() as txn:
            versions = sorted(int(r["version"]) for r in await txn.fetchall("SELECT version FROM schema_migrations"))
        assert versions == list(range(1, schema.LATEST))
        monkeypatch.setattr(schema, "_statements", real)
        await schema.migrate(db)
        async with db.read() as txn:
            versions = sorted(int(r["version"]) for r in await txn.fetchall("SELECT version FROM schema_migrations"))
            assert await txn.fetchone("SELECT name FROM gateway_keys") is None  # version 5's table is there
        assert versions == list(range(1, schema.LATEST + 1))
    finally:
        await db.close()


async def test_an_up_to_date_database_opens_while_another_is_migrating_or_writing(db_url: str) -> None:
    """A database with every migration opens by one read: a `byline` command or a replica that
    starts is not kept waiting behind another replica migrating (the migration lock, on
    PostgreSQL) or another process's write (SQLite's writer lock), and the schema is as it was."""
    holder = await open_database(db_url)
    try:
        async with contextlib.AsyncExitStack() as elsewhere:
            if holder.dialect == "postgresql":
                txn = await elsewhere.enter_async_context(holder.write())
                await schema._lock(holder, txn)
            else:
                raw = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
                elsewhere.callback(raw.close)
                raw.execute("BEGIN IMMEDIATE")
                elsewhere.callback(raw.rollback)
            opened = await asyncio.wait_for(open_database(db_url, create=False), timeout=5)
            try:
                async with opened.read() as read:
                    versions = [int(r["version"]) for r in await read.fetchall("SELECT version FROM schema_migrations")]
            finally:
                await opened.close()
        assert sorted(versions) == list(range(1, schema.LATEST + 1))
    finally:
        await holder.close()


async def test_version_13_makes_each_earlier_session_a_login_of_its_own(db_url: str) -> None:
    """XRPC sessions made before refresh grace each become a family of their own (deleteSession
    ends them alone); other tokens belong to none."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=12)
            for key, label in (("xrpc:one", "atproto-session:p"), ("xrpc:two", "atproto-session:p"), ("a" * 64, "cli")):
                await txn.execute("INSERT INTO tokens (token_hash, user_name, account, label, created_at) "
                                  "VALUES (?, 'alice', 'brand', ?, 0)", key, label)
        await schema.migrate(db)
        async with db.read() as txn:
            rows = await txn.fetchall("SELECT token_hash, family, successor FROM tokens ORDER BY token_hash")
        assert [(r["token_hash"], r["family"], r["successor"]) for r in rows] == [
            ("a" * 64, None, None), ("xrpc:one", "xrpc:one", None), ("xrpc:two", "xrpc:two", None),
        ]
        async with db.write() as txn:
            assert await xrpc_sql.revoke_family(txn, "xrpc:one", at=1) == 1
    finally:
        await db.close()


async def test_version_15_keeps_options_beside_new_versions_and_none_beside_earlier_ones(db_url: str) -> None:
    """Versions recorded before version 15 keep no options (their log entries carry them) and
    their posts no content salt; versions recorded after keep theirs, and a post's salt, drawn
    when it is stored, is never changed."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=14)
            await txn.execute("INSERT INTO posts (id, account, author, state, version, text, options, created_at, "
                              "updated_at) VALUES ('1', 'brand', 'alice', 'held', 1, 'Then', ?, 0, 0)",
                              '{"spoiler_text": "cw"}')
            await txn.execute("INSERT INTO post_versions (post_id, version, text, editor, created_at) "
                              "VALUES ('1', 1, 'Then', 'alice', 0)")
        await schema.migrate(db)
        async with db.write() as txn:
            await posts_sql.insert_version(txn, post_id="1", version=2, text="Now", editor="alice", at=1,
                                           options={"spoiler_text": "new"}, media=[{"id": "m", "description": "d"}])
            rows = [dict(r) for r in await posts_sql.versions(txn, "1")]
            post = await posts_sql.get_post(txn, "1")
            with pytest.raises(ValueError, match="content_salt"):
                await posts_sql.compare_and_set(txn, "1", state="held", version=1, changes={"content_salt": "0" * 32})
        assert [(r["version"], r["options"], r["media"]) for r in rows] == [
            (1, None, None), (2, '{"spoiler_text": "new"}', '[{"id": "m", "description": "d"}]'),
        ]
        assert post is not None and post.content_salt is None
    finally:
        await db.close()


async def test_version_16_keeps_the_change_a_published_post_is_held_for(db_url: str) -> None:
    """A post held before version 16 (by a Byline that kept no change) may be held again once its
    lease runs out, as then. A change kept with its hold keeps every other change off the post,
    its lease run out or not; the publisher finds it once the lease has run out, and one gateway
    alone takes it over; let go of, the change is forgotten."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=15)
            await txn.execute("INSERT INTO posts (id, account, author, state, version, text, lease_until, created_at, "
                              "updated_at) VALUES ('1', 'brand', 'alice', 'published', 1, 'Then', 100, 0, 0)")
        await schema.migrate(db)
        edit = {"change": "revise", "actor": "alice", "version": 2, "text": "Now"}
        async with db.write() as txn:
            assert not await posts_sql.hold_published(txn, "1", version=1, now=99, until=199, change=edit)
            assert await posts_sql.hold_published(txn, "1", version=1, now=100, until=200, change=edit)
            delete = {"change": "delete", "actor": "alice"}
            assert not await posts_sql.hold_published(txn, "1", version=1, now=300, until=400, change=delete)
            assert await posts_sql.changes_due(txn, now=199, limit=10) == []
            [due] = await posts_sql.changes_due(txn, now=200, limit=10)
            assert (due.id, due.held_change, due.lease_until) == ("1", edit, 200)
            assert await posts_sql.take_over(txn, "1", lease_until=200, now=300, until=400)
            assert not await posts_sql.take_over(txn, "1", lease_until=200, now=300, until=500), "taken once"
            assert not await posts_sql.let_go(txn, "1", lease_until=200)
            assert await posts_sql.let_go(txn, "1", lease_until=400)
            post = await posts_sql.get_post(txn, "1")
            assert await posts_sql.changes_due(txn, now=1000, limit=10) == []
        assert post is not None and (post.held_change, post.lease_until) == (None, None)
    finally:
        await db.close()


async def test_version_21_marks_a_kept_change_stranded_once_and_releases_it(db_url: str) -> None:
    """A post holding a change from before version 21 is not stranded. Stranded once its hold has
    run out, it is new the first time and not the second, counted by account, and out of the
    publisher's rounds until its wait ends or it is released; taken over, it is stranded no
    longer, and a new change of the post starts unstranded."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=20)
            await txn.execute("INSERT INTO posts (id, account, author, state, version, text, lease_until, held_change, "
                              "created_at, updated_at) VALUES ('1', 'brand', 'alice', 'published', 1, 'Then', 100, "
                              "'{\"change\": \"delete\", \"actor\": \"alice\"}', 0, 0)")
        await schema.migrate(db)
        async with db.write() as txn:
            assert await posts_sql.stranded_change_counts(txn) == {}
            assert await posts_sql.strand_change(txn, "1", lease_until=100, now=99, until=5000) is None, "held still"
            assert await posts_sql.strand_change(txn, "1", lease_until=100, now=200, until=5000) is True
            assert await posts_sql.strand_change(txn, "1", lease_until=100, now=200, until=5000) is None, "taken"
            assert await posts_sql.changes_due(txn, now=4999, limit=10) == []
            assert await posts_sql.strand_change(txn, "1", lease_until=5000, now=5000, until=9000) is False
            assert await posts_sql.stranded_change_counts(txn) == {"brand": 1}
            assert [p.id for p in await posts_sql.stranded_changes(txn)] == ["1"]
            assert await posts_sql.release_stranded_change(txn, "1", lease_until=9000, now=6000)
            assert not await posts_sql.release_stranded_change(txn, "1", lease_until=9000, now=6000)
            [due] = await posts_sql.changes_due(txn, now=6000, limit=10)
            assert await posts_sql.take_over(txn, "1", lease_until=due.lease_until or 0, now=6000, until=6100)
            assert await posts_sql.stranded_change_counts(txn) == {}
            assert await posts_sql.strand_change(txn, "1", lease_until=6100, now=6100, until=9000) is True
            assert await posts_sql.let_go(txn, "1", lease_until=9000)
            delete = {"change": "delete", "actor": "alice"}
            assert await posts_sql.hold_published(txn, "1", version=1, now=9000, until=9100, change=delete)
            assert await posts_sql.stranded_change_counts(txn) == {}
    finally:
        await db.close()


async def test_version_17_leaves_earlier_posts_without_a_content_scheme_and_keeps_a_new_posts(db_url: str) -> None:
    """A post stored before version 17 has no content scheme (its versions were hashed without
    focal points and reply targets, and its claims are hashed so); one stored after keeps the
    scheme it was stored with, which no change of the post may rewrite."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=16)
            await txn.execute("INSERT INTO posts (id, account, author, state, version, text, created_at, "
                              "updated_at) VALUES ('1', 'brand', 'alice', 'held', 1, 'Then', 0, 0)")
        await schema.migrate(db)
        async with db.write() as txn:
            await posts_sql.insert_post(txn, posts_sql.PostRecord(
                id=PostId("2"), account=AccountName("brand"), author=UserName("alice"), state="held", version=1,
                text="Now", created_at=Micros(1), updated_at=Micros(1), content_salt="0" * 32, content_scheme=1))
            with pytest.raises(ValueError, match="content_scheme"):
                await posts_sql.compare_and_set(txn, "2", state="held", version=1, changes={"content_scheme": None})
            earlier, later = await posts_sql.get_post(txn, "1"), await posts_sql.get_post(txn, "2")
        assert earlier is not None and later is not None
        assert (earlier.content_scheme, later.content_scheme) == (None, 1)
    finally:
        await db.close()


async def test_version_18_gives_each_earlier_entry_its_actor_and_keeps_the_log_append_only(db_url: str) -> None:
    """Entries logged before version 18 are given the actor their bytes name (one that does not
    read as an entry gets none), in the migration only: the log then refuses a change of any row
    again, the new column's included."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=17)
            raws = [encode_entry(type="post.deleted", ts=0, actor=actor, account="brand", post="1", data={}, prev=None)
                    for actor in ("alice", "carol")] + [b"not an entry"]
            for idx, raw in enumerate(raws):
                await txn.execute(
                    "INSERT INTO log_entries (idx, leaf_hash, entry, type, chain, post_id, account, ts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", idx, leaf_hash(raw), raw, "post.deleted", None, "1", "brand", 0)
            await txn.execute("INSERT INTO log_state (id, size, root, frontier) VALUES (1, ?, ?, ?)",
                              len(raws), b"\0" * 32, b"")
        await schema.migrate(db)
        async with db.read() as txn:
            rows = await txn.fetchall("SELECT idx, actor FROM log_entries ORDER BY idx")
        assert [(int(r["idx"]), r["actor"]) for r in rows] == [(0, "alice"), (1, "carol"), (2, None)]
        for change in ("UPDATE log_entries SET actor = 'mallory' WHERE idx = 0", "DELETE FROM log_entries"):
            with pytest.raises(Exception, match="append-only"):
                async with db.write() as txn:
                    await txn.execute(change)
    finally:
        await db.close()


async def test_version_20_keeps_gate_changes_written_ahead_and_lets_one_claim_each(db_url: str) -> None:
    """A database of version 19 takes the gate intents' table: an intent is settled by its
    request only while no reconciler has claimed it; one whose lease ran out is claimed once,
    and a claim that ran out is taken over; only the claim holding it drops it."""
    db = await _open_unmigrated(db_url)
    try:
        async with db.write() as txn:
            await _migrate_by_hand(txn, db.dialect, upto=19)
        await schema.migrate(db)
        held, written = {"$type": "app.bsky.feed.threadgate", "allow": []}, None
        intents = [intents_sql.GateIntent(
            id=n, account="brand", post_id="1", remote_id="at://did:plc:x/app.bsky.feed.post/1",
            collection="app.bsky.feed.threadgate", held=held, written=written, actor="alice", lease_until=100,
            created_at=0) for n in ("a", "b")]
        async with db.write() as txn:
            await intents_sql.insert(txn, intents)
            assert await intents_sql.due(txn, now=99, limit=10) == []
            assert await intents_sql.due(txn, now=100, limit=10) == intents
            assert await intents_sql.settle(txn, "a")
            assert not await intents_sql.claim(txn, "b", token="one", now=99, until=200)
            assert await intents_sql.claim(txn, "b", token="one", now=100, until=200)
            assert not await intents_sql.claim(txn, "b", token="two", now=150, until=250), "claimed once"
            assert not await intents_sql.settle(txn, "b"), "its request ran past its lease: the claim's now"
            assert await intents_sql.claim(txn, "b", token="two", now=200, until=300), "taken over"
            assert not await intents_sql.drop(txn, "b", token="one")
            [left] = await intents_sql.due(txn, now=300, limit=10)
            assert (left.held, left.written, left.claimed_by, left.attempts) == (held, None, "two", 2)
            assert await intents_sql.drop(txn, "b", token="two")
            assert await intents_sql.due(txn, now=10**9, limit=10) == []
    finally:
        await db.close()
