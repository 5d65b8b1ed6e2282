"""The appender: many callers at once, texts kept by entry, chains carried across restarts,
failures kept to their own callers, other writers let in; on both databases."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.appender import Appender, LogTxn, LooseText
from gateway.audit.entry import text_commitment
from gateway.clock import ManualClock
from gateway.storage import log as log_sql
from gateway.storage.db import SQLITE_MAX_VARIABLES, Database, SqliteDatabase, open_database
from gateway.storage.logwriter.sqlite import entries_statements, texts_statements
from tests.audit.logtools import verified_export

Work = Callable[[LogTxn], Awaitable[Any]]




@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    """A SQLite database, for what only SQLite's single writer does; closed after the test."""
    opened = await open_database(f"sqlite:///{tmp_path / 'byline.db'}")
    assert isinstance(opened, SqliteDatabase)
    try:
        yield opened
    finally:
        await opened.close()


def _event(post: str, n: int, *, text: str | None = None, account: str = "acct") -> Work:
    async def work(ltx: LogTxn) -> int:
        data: dict[str, Any] = {"n": n}
        if text is not None:
            data["text_hash"] = ltx.commit_text(text)
        return await ltx.append("test.event", actor="alice", account=account, post=post, data=data)

    return work


POISONED = "poisoned"  # the account whose log entries the injected failure refuses

_POISON_DDL = {
    # SQLite refuses the row with the INSERT; or a deferred foreign key that points nowhere
    # makes the COMMIT fail (and leaves the transaction open, as a failed COMMIT does).
    ("sqlite", "insert"): [
        f"CREATE TRIGGER test_poison BEFORE INSERT ON log_entries WHEN NEW.account = '{POISONED}' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    ],
    ("sqlite", "commit"): [
        "CREATE TABLE test_nowhere (id INTEGER PRIMARY KEY)",
        "CREATE TABLE test_poison (ref INTEGER REFERENCES test_nowhere (id) DEFERRABLE INITIALLY DEFERRED)",
        f"CREATE TRIGGER test_poison AFTER INSERT ON log_entries WHEN NEW.account = '{POISONED}' "
        "BEGIN INSERT INTO test_poison VALUES (1); END",
    ],
    # PostgreSQL: a row trigger raises at the INSERT, or a deferred constraint trigger at COMMIT.
    ("postgresql", "insert"): [
        "CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.account = '{POISONED}' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER test_poison BEFORE INSERT ON log_entries FOR EACH ROW EXECUTE FUNCTION test_poison()",
    ],
    ("postgresql", "commit"): [
        "CREATE FUNCTION test_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.account = '{POISONED}' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$",
        "CREATE CONSTRAINT TRIGGER test_poison AFTER INSERT ON log_entries DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW EXECUTE FUNCTION test_poison()",
    ],
}
_POISON_ERROR = {"insert": "injected failure", "commit": "injected failure|FOREIGN KEY constraint failed"}


async def _poison(db: Database, failing: str) -> None:
    """Make the database itself refuse any batch that logs an entry for ``POISONED``: at the
    INSERT of its entries, or at its COMMIT."""
    async with db.write() as txn:
        for statement in _POISON_DDL[(db.dialect, failing)]:
            await txn.execute(statement)


async def _texts(db: Database) -> dict[int, tuple[str, bytes, str | None]]:
    async with db.read() as txn:
        rows = await log_sql.texts(txn, 0, 1 << 40)
    return {int(r["idx"]): (r["text_hash"], bytes(r["salt"]), r["text"]) for r in rows}


async def test_many_callers_one_log(db: Database, tmp_path: Path) -> None:
    """Callers at once get their own entries; each text is kept, salted afresh, by the entry
    carrying its hash; and the log verifies."""
    appender = Appender(db, ManualClock(), max_batch=16)
    await appender.start()
    try:
        works = [_event(f"p{n % 37}", n, text=f"words {n % 5}" if n % 3 == 0 else None) for n in range(300)]
        indexes = await asyncio.gather(*(appender.submit(w) for w in works))
    finally:
        await appender.stop()
    assert sorted(indexes) == list(range(300))
    assert appender.batches >= 300 // 16
    texts = await _texts(db)
    assert sorted(texts) == sorted(indexes[n] for n in range(0, 300, 3))
    assert len({salt for _, salt, _ in texts.values()}) == 100
    for n in range(0, 300, 3):
        digest, salt, text = texts[indexes[n]]
        assert text == f"words {n % 5}" and text_commitment(text, salt) == digest
    report = await verified_export(db, tmp_path)
    assert report.ok, report.summary()
    assert (report.size, report.texts_checked) == (300, 100)


async def test_failures_stay_with_their_callers(db: Database, tmp_path: Path) -> None:
    """A work that fails, or commits to a text it does not log, fails alone; the rest commit."""
    appender = Appender(db, ManualClock(), max_batch=8)
    await appender.start()

    async def broken(ltx: LogTxn) -> None:
        await ltx.append("test.event", actor="alice", account="acct", post="p1", data={})
        raise ValueError("refused")

    async def loose(ltx: LogTxn) -> None:
        ltx.commit_text("never logged")
        await ltx.append("test.event", actor="alice", account="acct", post="p2", data={})

    try:
        works: list[Work] = [_event(f"p{n % 3}", n) for n in range(20)]
        works[5], works[13] = broken, loose
        outcomes = await asyncio.gather(*(appender.submit(w) for w in works), return_exceptions=True)
    finally:
        await appender.stop()
    assert isinstance(outcomes[5], ValueError) and isinstance(outcomes[13], LooseText)
    good = [o for n, o in enumerate(outcomes) if n not in (5, 13)]
    assert sorted(good) == list(range(18))
    assert await _texts(db) == {}
    report = await verified_export(db, tmp_path)
    assert report.ok and report.size == 18, report.summary()


async def test_chains_carry_on_after_a_restart(db: Database, tmp_path: Path) -> None:
    """An appender that has not seen a post links its next entries to the stored last one,
    also when several land in one batch."""
    for round in range(3):
        appender = Appender(db, ManualClock(), max_batch=64)
        await appender.start()
        try:
            await asyncio.gather(*(appender.submit(_event(f"p{n % 4}", round * 100 + n)) for n in range(12)))
        finally:
            await appender.stop()
    report = await verified_export(db, tmp_path)
    assert report.ok and report.size == 36, report.summary()
    async with db.read() as txn:
        rows = await log_sql.post_entries(txn, "p1")
    assert [int(r["idx"]) for r in rows] == [1, 5, 9, 13, 17, 21, 25, 29, 33]


@pytest.mark.parametrize("failing", ["commit", "insert"])
async def test_a_failed_statement_fails_its_batch_only(db: Database, tmp_path: Path, failing: str) -> None:
    """When a batch's COMMIT, or the INSERT of its entries, fails, that batch's callers hear so
    and nothing of it is kept; the batches after it go on (on SQLite, one run meanwhile on top
    of it is run again from the start), and the log stays whole."""
    await _poison(db, failing)
    appender = Appender(db, ManualClock(), max_batch=4)
    await appender.start()
    try:
        outcomes = await asyncio.gather(
            *(appender.submit(_event(f"p{n % 3}", n, text=f"t{n}", account=POISONED if n == 0 else "acct"))
              for n in range(16)),
            return_exceptions=True,
        )
        failed = [n for n, o in enumerate(outcomes) if isinstance(o, BaseException)]
        assert failed == [0, 1, 2, 3], outcomes
        for n in failed:  # the database refused it, as it was made to
            assert re.search(_POISON_ERROR[failing], str(outcomes[n])), outcomes[n]
        assert sorted(o for o in outcomes if isinstance(o, int)) == list(range(12))
        assert await appender.submit(_event("p0", 99)) == 12
    finally:
        await appender.stop()
    assert sorted(await _texts(db)) == list(range(12))  # no text of the failed batch was kept
    async with db.read() as txn:
        kept = await txn.fetchall("SELECT idx FROM log_entries WHERE account = ?", POISONED)
    assert kept == []
    report = await verified_export(db, tmp_path)
    assert report.ok and report.size == 13, report.summary()


def test_multi_row_inserts_cover_every_row_with_few_statements() -> None:
    """Entries and texts go to SQLite as multi-row INSERTs: every row once, in order, and few
    distinct statements whatever the batch size, so that prepared ones are reused."""
    seen: set[str] = set()
    for n in [*range(0, 70), 255, 256, 257, 511, 512, 513, 1000, 1024, 1537]:
        entries = [(i, b"h" * 32, b"{}", "t", f"post:{i}", str(i), "a", "carol", 7) for i in range(n)]
        texts = [(i, "ab" * 32, b"s" * 16, f"text {i}") for i in range(n)]
        for rows, statements, width in ((entries, entries_statements(entries), 9),
                                        (texts, texts_statements(texts), 4)):
            flat = [v for _, args in statements for v in args]
            assert flat == [v for row in rows for v in row]
            for sql, args in statements:
                assert sql.count("?") == len(args) == width * sql.count("(?") <= SQLITE_MAX_VARIABLES
                seen.add(sql)
    assert len(seen) <= 2 * 10  # per table: 512 rows, then 256, 128, … 1


async def test_a_writer_outside_the_turns_is_waited_for_off_the_event_loop(
    sqlite_db: SqliteDatabase, tmp_path: Path
) -> None:
    """SQLite: the log writer begins its transaction on the event loop's thread while it holds
    the turns' lock, where no other gateway can be writing; a writer that takes no turns (a
    tool on the file) may still hold SQLite's lock. The log writer then waits for it on the
    connection's thread, the event loop going on meanwhile, and writes once it is let go."""
    db = sqlite_db
    tool = sqlite3.connect(db.path, isolation_level=None)
    tool.execute("BEGIN IMMEDIATE")
    tool.execute("INSERT INTO policy_heads (account, sha256, summary, updated_at) VALUES ('tool', '', '{}', 0)")
    appender = Appender(db, ManualClock())
    await appender.start()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        written = appender.submit(_event("p1", 1))
        await asyncio.sleep(0.5)
        assert not written.done(), "the log writer wrote while another connection held SQLite's lock"
        assert ticks >= 20, f"the event loop ticked {ticks} times in 0.5 s: it was kept waiting"
        tool.execute("COMMIT")
        await asyncio.wait_for(written, timeout=10)
    finally:
        ticker.cancel()
        tool.close()
        await appender.stop()
    report = await verified_export(db, tmp_path)
    assert report.ok and report.size == 1, report.summary()


async def test_other_writers_get_their_turn(db: Database) -> None:
    """While the appender is busy batch after batch, another write is let in."""
    appender = Appender(db, ManualClock(), max_batch=8)
    await appender.start()
    done = 0
    busy = asyncio.Event()

    async def caller(n: int) -> None:
        nonlocal done
        for m in range(40):
            await appender.submit(_event(f"p{n}", m))
            done += 1
            if done == 50:
                busy.set()

    async def other() -> int:
        await busy.wait()
        async with db.write() as txn:
            await txn.execute("INSERT INTO policy_heads (account, sha256, summary, updated_at) VALUES (?, ?, ?, ?)",
                              "x", "0" * 64, "{}", 0)
        return done

    try:
        results = await asyncio.gather(other(), *(caller(n) for n in range(40)))
    finally:
        await appender.stop()
    assert results[0] < 40 * 40


async def test_texts_can_be_erased_and_nothing_else(db: Database, tmp_path: Path) -> None:
    """A committed text can be erased (the verifier counts it); any other change to the kept
    texts, or to the entries, is refused by the database."""
    appender = Appender(db, ManualClock())
    await appender.start()
    try:
        first = await appender.submit(_event("p1", 1, text="to be forgotten"))
        await appender.submit(_event("p1", 2, text="kept"))
    finally:
        await appender.stop()
    async with db.write() as txn:
        assert await log_sql.erase_text(txn, first)
        assert not await log_sql.erase_text(txn, first + 100)
    assert (await _texts(db))[first][2] is None
    refused = [
        ("UPDATE log_texts SET text = ? WHERE idx = ?", ("rewritten", first + 1)),
        ("UPDATE log_texts SET salt = ? WHERE idx = ?", (b"0" * 16, first + 1)),
        ("UPDATE log_texts SET text_hash = ? WHERE idx = ?", ("0" * 64, first + 1)),
        ("UPDATE log_texts SET idx = ? WHERE idx = ?", (first + 5, first + 1)),
        ("DELETE FROM log_texts WHERE idx = ?", (first + 1,)),
        ("UPDATE log_entries SET entry = ? WHERE idx = ?", (b"{}", first)),
        ("DELETE FROM log_entries WHERE idx = ?", (first,)),
    ]
    for sql, args in refused:
        with pytest.raises(Exception, match="append-only"):
            async with db.write() as txn:
                await txn.execute(sql, *args)
    report = await verified_export(db, tmp_path)
    assert report.ok, report.summary()
    assert (report.texts_checked, report.texts_erased) == (1, 1)


async def test_two_gateways_works_never_interleave(db_url: str, db: Database, tmp_path: Path) -> None:
    """Works are run one batch at a time across every gateway (replicas, workers) sharing the
    database, not only within one: a work that reads a row and writes it back from what it
    read loses no update to another gateway's work doing the same meanwhile, with no lock of
    its own. The services count on it (a post stored only under the policy version still in
    force, a policy version recorded once). On PostgreSQL the tree state's lock gives it, and
    only because a batch takes that lock before its works run: taken once they had run (to
    hold it for less time), two workers starting together recorded the same policy version
    twice and one died of it."""
    other = await open_database(db_url)
    async with db.write() as txn:
        await txn.execute("INSERT INTO policy_heads (account, sha256, summary, updated_at) VALUES (?, ?, ?, ?)",
                          "counter", "0" * 64, "{}", 0)

    async def bump(ltx: LogTxn) -> None:
        row = await ltx.txn.fetchone("SELECT updated_at FROM policy_heads WHERE account = ?", "counter")
        assert row is not None
        await asyncio.sleep(0.002)  # a round trip elsewhere: the other gateway's works may run now
        await ltx.txn.execute("UPDATE policy_heads SET updated_at = ? WHERE account = ?",
                              int(row["updated_at"]) + 1, "counter")
        await ltx.append("test.bumped", actor="alice", account="counter", data={})

    appenders = [Appender(db, ManualClock(), max_batch=8), Appender(other, ManualClock(), max_batch=8)]
    for appender in appenders:
        await appender.start()
    try:
        await asyncio.gather(*(appenders[n % 2].submit(bump) for n in range(60)))
    finally:
        for appender in appenders:
            await appender.stop()
        await other.close()
    async with db.read() as txn:
        row = await txn.fetchone("SELECT updated_at FROM policy_heads WHERE account = ?", "counter")
    assert row is not None and int(row["updated_at"]) == 60
    report = await verified_export(db, tmp_path)
    assert report.ok and report.size == 60, report.summary()
