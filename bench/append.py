"""The audit log's append rate against plain batched INSERTs.

``python -m bench append [--events N]`` (default 200,000) appends N events through the real
appender on SQLite (WAL, synchronous=FULL), many callers at once as a busy gateway would have,
on the event loop ``byline serve`` runs (uvloop unless ``--loop asyncio``). Then it writes the
same number of rows to a table shaped like the log's with plain batched INSERTs (one INSERT
statement a row, the same batch size, one transaction each) in the same database, with the same
durability. It does both ``--rounds`` times (default 3), each round in a fresh database, and
prints every round's rates and ratio, and the median ratio; the target is a ratio of at least
0.5. Each timed part starts as ``byline serve`` runs once started: what was built before it
frozen out of the garbage collector's full walks (``gateway.heap``).

For reference it also prints the rate of the same rows written as multi-row INSERTs (one
statement of many rows), which is how the appender writes its entries: it is not the baseline
the target names, but it shows how much of the gap is SQLite's work and how much is the log's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from bench.report import Verdict
from gateway import heap
from gateway.audit.appender import Appender, LogTxn
from gateway.clock import SystemClock
from gateway.loops import LOOPS, loop_factory, loop_name
from gateway.policy.models import HOLD_EXPIRES_AFTER
from gateway.storage.db import SqliteDatabase, open_database
from gateway.storage.logwriter.sqlite import entries_statements
from gateway.types import duration_micros, iso

ACCOUNT = "brand"
POLICY = {
    "tier": "co-signed", "platform": "sandbox", "owner": "alice", "writers": ["alice", "carol"],
    "approvers": ["bob", "carol", "dave"], "required": 2, "suggesters": [], "delay_seconds": 60,
    "rules": [{"name": "breaking-news", "action": "hold", "reason": "Check the full story first"}],
}
POLICY_SHA = "9f2c" * 16
T = TypeVar("T")
TARGET = 0.5
"""The log's append rate against plain batched INSERTs of the same rows, at least."""


def _events(post: str, text_hash: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The five events of one co-signed post, with the data the gateway logs."""
    return [
        ("post.submitted", "carol", {
            "version": 1, "text_hash": text_hash, "state": "held",
            "reasons": [], "approvers": ["bob", "dave"], "required": 2, "publish_at": None,
            "expires_at": None, "suggested_by": None, "adopted_from": None,  # set as it is appended
            "policy_sha256": POLICY_SHA, "options": {},
        }),
        ("post.approved", "bob", {"version": 1, "count": 1, "required": 2, "state": "held"}),
        ("post.approved", "dave", {"version": 1, "count": 2, "required": 2, "state": "scheduled",
                                   "publish_at": "2026-01-01T12:01:00.000000Z"}),
        ("post.publishing", "system", {"attempt": 1, "version": 1, "idempotency_key": f"byline-{post}-v1",
                                       "recovering": False, "text_hash": text_hash}),
        ("post.published", "system", {"remote_id": f"sb{post}", "url": f"https://sandbox.example/{post}",
                                      "version": 1, "attempt": 1}),
    ]


def _works(n: int) -> list[Callable[[LogTxn], Awaitable[Any]]]:
    """N one-event works: a policy, then posts of five events each, as callers would submit them."""
    async def policy(ltx: LogTxn) -> None:
        await ltx.append("policy.loaded", actor="policy-file", account=ACCOUNT, chain=f"policy:{ACCOUNT}",
                         data={"file": "brand.yaml", "sha256": POLICY_SHA, "previous_sha256": None,
                               "changed": [], "policy": POLICY})

    works: list[Callable[[LogTxn], Awaitable[Any]]] = [policy]
    base = 1_882_000_000_000_000_000
    while len(works) < n:
        post = str(base + len(works))
        text = f"Our product number {post} ships today, with everything you asked for."
        for kind, actor, data in _events(post, ""):
            def work(ltx: LogTxn, kind: str = kind, actor: str = actor, data: dict[str, Any] = data,
                     post: str = post, text: str = text) -> Awaitable[int]:
                if "text_hash" in data:
                    data = {**data, "text_hash": ltx.commit_text(text)}
                if kind == "post.submitted":  # held for a day from its entry's time, as the gateway holds it
                    data = {**data, "expires_at": iso(ltx.now + duration_micros(HOLD_EXPIRES_AFTER))}
                return ltx.append(kind, actor=actor, account=ACCOUNT, post=post, data=data)
            works.append(work)
    return works[:n]


async def append_log(
    db: Any, works: list[Callable[[LogTxn], Awaitable[Any]]], *, in_flight: int, max_batch: int = 512
) -> tuple[float, int]:
    """Submit every work through the appender, ``in_flight`` at a time; (seconds, batches)."""
    appender = Appender(db, SystemClock(), max_batch=max_batch)
    await appender.start()
    queue = iter(works)

    async def caller() -> None:
        for work in queue:
            await appender.submit(work)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(in_flight)))
    seconds = time.perf_counter() - started
    await appender.stop()
    return seconds, appender.batches


_BENCH_TABLE = ("CREATE TABLE {name} (idx BIGINT PRIMARY KEY, leaf_hash BLOB NOT NULL, entry BLOB NOT NULL, "
                "type TEXT NOT NULL, chain TEXT, post_id TEXT, account TEXT, actor TEXT, ts BIGINT NOT NULL)")


async def _bench_table(db: SqliteDatabase, name: str) -> None:
    """A table shaped like log_entries, with the same indexes, and no triggers."""
    async with db.write() as txn:
        await txn.execute(_BENCH_TABLE.format(name=name))
        await txn.execute(f"CREATE INDEX {name}_chain ON {name} (chain, idx)")
        await txn.execute(f"CREATE INDEX {name}_post ON {name} (post_id, idx)")


async def baseline(db: SqliteDatabase, rows: list[tuple[Any, ...]], batch: int) -> float:
    """The same rows written by plain batched INSERTs: one statement a row, one transaction a batch."""
    await _bench_table(db, "bench_rows")
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        async with db.write() as txn:
            await txn.executemany(
                "INSERT INTO bench_rows (idx, leaf_hash, entry, type, chain, post_id, account, actor, ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows[start : start + batch])
    return time.perf_counter() - started


async def multi_row(db: SqliteDatabase, rows: list[tuple[Any, ...]], batch: int) -> float:
    """For reference: the same rows as the appender writes its entries, multi-row INSERTs."""
    await _bench_table(db, "bench_multi")
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        async with db.write() as txn:
            for sql, args in entries_statements(rows[start : start + batch]):
                await txn.execute(sql.replace("log_entries", "bench_multi", 1), *args)
    return time.perf_counter() - started


async def _frozen(timed: Awaitable[T]) -> T:
    """Run a timed part as ``byline serve`` runs: with what was built before it (the works, the
    rows) frozen out of the collector's full walks (see gateway.heap), given back afterwards."""
    heap.freeze()
    try:
        return await timed
    finally:
        heap.unfreeze()


async def _round(args: argparse.Namespace, folder: Path) -> tuple[float, float, float, int]:
    """One round in a fresh database: (log seconds, baseline seconds, multi-row seconds, commits)."""
    db = await open_database(f"sqlite:///{folder / 'bench.db'}")
    assert isinstance(db, SqliteDatabase)
    try:
        async with db.read() as txn:
            mode = (await txn.fetchone("PRAGMA journal_mode"))["journal_mode"]  # type: ignore[index]
            sync = (await txn.fetchone("PRAGMA synchronous"))["synchronous"]  # type: ignore[index]
        assert (mode, sync) == ("wal", 2), (mode, sync)  # WAL, synchronous=FULL: the log's durability
        works = _works(args.events)
        log_s, batches = await _frozen(append_log(db, works, in_flight=args.in_flight, max_batch=args.batch))
        async with db.read() as txn:
            rows = [tuple(r) for r in await txn.fetchall(
                "SELECT idx, leaf_hash, entry, type, chain, post_id, account, actor, ts FROM log_entries ORDER BY idx")]
        assert len(rows) == args.events, len(rows)
        base_s = await _frozen(baseline(db, rows, args.batch))
        multi_s = await _frozen(multi_row(db, rows, args.batch))
    finally:
        await db.close()
    return log_s, base_s, multi_s, batches


async def _append_bench(args: argparse.Namespace, folder: Path) -> list[Verdict]:
    n = args.events
    print(f"SQLite {sqlite_version()} journal_mode=WAL synchronous=FULL, {os.cpu_count()} CPUs, "
          f"{loop_name(asyncio.get_running_loop())} event loop; {n:,} events a round, "
          f"{args.in_flight} callers, batches of {args.batch}", flush=True)
    ratios = []
    rates = []
    for r in range(1, args.rounds + 1):
        (folder / str(r)).mkdir()
        log_s, base_s, multi_s, batches = await _round(args, folder / str(r))
        ratio = base_s / log_s
        ratios.append(ratio)
        rates.append((n / log_s, n / base_s))
        print(f"round {r}: log {n / log_s:,.0f} events/s ({log_s:.2f} s, {batches:,} commits); "
              f"baseline {n / base_s:,.0f} rows/s ({base_s:.2f} s); ratio {ratio:.2f}. "
              f"For reference, multi-row INSERTs: {n / multi_s:,.0f} rows/s (log/that {multi_s / log_s:.2f})",
              flush=True)
    median = statistics.median(ratios)
    log_rate, base_rate = (statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates))
    print(f"ratio log/baseline, median of {len(ratios)}: {median:.2f} "
          f"(target >= {TARGET:.2f}: {'met' if median >= TARGET else 'NOT met'})")
    return [Verdict(
        benchmark="append, SQLite",
        measured=f"{median:.2f} (median of {len(ratios)}; log {log_rate:,.0f} events/s, "
                 f"batched INSERTs {base_rate:,.0f} rows/s)",
        target=f"ratio >= {TARGET}", met=median >= TARGET,
    )]


def sqlite_version() -> str:
    """The SQLite library's version."""
    import sqlite3

    return sqlite3.sqlite_version


def parser() -> argparse.ArgumentParser:
    """The append benchmark's options."""
    p = argparse.ArgumentParser(prog="python -m bench append", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=200_000, help="events a round (default 200,000)")
    p.add_argument("--batch", type=int, default=512,
                   help="the appender's largest batch, and the baseline's rows a transaction")
    p.add_argument("--in-flight", type=int, default=2048, help="concurrent callers of the appender")
    p.add_argument("--rounds", type=int, default=3, help="rounds of log and baseline (the median counts)")
    p.add_argument("--loop", choices=LOOPS, default="uvloop", help="the event loop (byline serve's: uvloop)")
    p.add_argument("--dir", help="where the databases go (default: a fresh temporary folder)")
    return p


def run(argv: Sequence[str] | None = None) -> list[Verdict]:
    """Run the append benchmark; print its rounds; its verdicts."""
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="byline-bench-", dir=args.dir) as tmp, \
            asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        return runner.run(_append_bench(args, Path(tmp)))


if __name__ == "__main__":
    from bench.report import summary

    print(summary(run()))
