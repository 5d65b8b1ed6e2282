"""Co-signed posts approved by concurrent approvers, against bare compare-and-set UPDATEs.

``python -m bench approvals [--posts N]`` (default 10,000) on SQLite (WAL, synchronous=FULL) and
on PostgreSQL (a database of its own, created and dropped; ``--postgres DSN``, default the
local server the tests use; not run when none answers):

1. Setup, not timed: a co-signed account whose posts need 2 approvals from bob, carol and
   dave; N posts submitted through the real ``PostService`` (each held, with its version and
   its ``post.submitted`` entry), the policy recorded as ``byline serve`` records it.
2. Byline: 2N approvals through ``PostService.approve`` with the version the approver saw, as
   the HTTP handlers call it (the service level: the approval path without the HTTP parsing
   benchmark 1 measures), by ``--concurrency`` approvers at once (default 64). Both approvals
   of a post are taken one after the other from the shared list, so they are in flight
   together and race. Each is a transaction of its own through the appender: the post read
   again, the decision inserted, the approvals counted, the compare-and-set on the post, one
   log entry, then the view of the post the caller gets back.
3. The baseline, in the same database: 2N bare compare-and-set UPDATEs
   (``UPDATE … SET approvals = approvals + 1, updated_at = ? WHERE id = ? AND state = 'held'
   AND version = ?``), each in a transaction of its own, committed as durably, by the same
   number of concurrent callers, on a table with the same N ids.
4. Then nothing may be lost: every approval a caller was told of is in the approvals table
   once, every post has exactly two, is scheduled, and has two ``post.approved`` entries, the
   first saying held with a count of 1, the second scheduled with a count of 2; the baseline's
   counters add up to 2N.

The ratio is Byline's approvals/s over the baseline's UPDATEs/s; each database runs
``--rounds`` rounds (default 3), each with fresh posts, and the median ratio counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.report import Verdict
from gateway.audit.appender import Appender
from gateway.clock import SystemClock
from gateway.errors import BylineError, Code
from gateway.loops import LOOPS, loop_factory, loop_name
from gateway.policy.loader import PolicyRegistry
from gateway.services.policies import PolicyService
from gateway.services.posts import Caller, PostService
from gateway.storage.db import Database, open_database

ACCOUNT = "bench-cosigned"
POLICY = f"""\
account: {ACCOUNT}
platform: sandbox
handle: "@bench"
tier: co-signed
owner: alice
writers: [alice]
delay: 1m
approvals:
  required: 2
  from: [bob, carol, dave]
  expire_after: 24h
"""
PAIRS = (("bob", "carol"), ("carol", "dave"), ("dave", "bob"))
"""The two approvers of each post, in turn: every approver races every other."""
TARGETS = {"sqlite": 0.25, "postgresql": 0.1}
"""Byline's approvals/s over bare compare-and-set UPDATEs/s, at least. An approval is two read
transactions (the post as the approver saw it; the view answered) and a write transaction of
five statements (the post read again, an earlier decision looked for, the decision inserted,
the approvals counted, the compare-and-set) and one log entry, where the baseline is one
UPDATE: on SQLite about 14 calls into aiosqlite's threads against 3, made up for in part by the
group commit (one fsync for many approvals); on PostgreSQL the five statements of each work wait
for the server one after the other in the single writer, where the bare UPDATEs run on the
pool's ten connections at once. See the README's "Measured figures"."""
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True, kw_only=True)
class Round:
    """One round's figures on one database."""

    approvals_s: float
    baseline_s: float
    approvals: int
    retries: int
    lost: list[str]
    """Each way an approval went missing or counted twice (empty when none did)."""


async def _pool(count: int, items: Sequence[Any], act: Callable[[Any], Awaitable[None]]) -> float:
    """Run ``act`` on every item, ``count`` at a time, in the items' order; the seconds it took."""
    queue = iter(items)

    async def caller() -> None:
        for item in queue:
            await act(item)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(count)))
    return time.perf_counter() - started


async def _submit(posts: PostService, n: int, concurrency: int) -> list[str]:
    ids: list[str] = []
    alice = Caller(user="alice")

    async def one(i: int) -> None:
        view = await posts.submit(alice, account=ACCOUNT, text=f"Launch note {i}: the release ships today.")
        assert view.state == "held", view.state
        ids.append(view.id)

    await _pool(concurrency, range(n), one)
    return ids


async def _approve_all(posts: PostService, ids: list[str], concurrency: int) -> tuple[float, int, int]:
    """Both approvals of every post; (seconds, approvals told, retries after a conflict)."""
    work = [(post_id, who) for i, post_id in enumerate(ids) for who in PAIRS[i % len(PAIRS)]]
    told = retries = 0

    async def approve(item: tuple[str, str]) -> None:
        nonlocal told, retries
        post_id, who = item
        while True:
            try:
                await posts.approve(Caller(user=who), post_id, version=1)
            except BylineError as exc:
                if exc.code is not Code.CONFLICT:
                    raise
                retries += 1  # as a client does: read the post again and approve again
                continue
            told += 1
            return

    seconds = await _pool(concurrency, work, approve)
    return seconds, told, retries


async def _baseline(db: Database, ids: list[str], concurrency: int) -> tuple[float, int]:
    """The same number of bare compare-and-set UPDATEs; (seconds, their counters' sum)."""
    async with db.write() as txn:
        await txn.execute("DROP TABLE IF EXISTS bench_cas")
        await txn.execute("CREATE TABLE bench_cas (id TEXT PRIMARY KEY, state TEXT NOT NULL, "
                          "version INTEGER NOT NULL, approvals INTEGER NOT NULL, updated_at BIGINT NOT NULL)")
        await txn.executemany("INSERT INTO bench_cas (id, state, version, approvals, updated_at) "
                              "VALUES (?, 'held', 1, 0, 0)", [(i,) for i in ids])
    work = [post_id for post_id in ids for _ in range(2)]

    async def update(post_id: str) -> None:
        async with db.write() as txn:
            count = await txn.execute(
                "UPDATE bench_cas SET approvals = approvals + 1, updated_at = ? "
                "WHERE id = ? AND state = 'held' AND version = ?", time.time_ns() // 1000, post_id, 1)
        assert count == 1, count

    seconds = await _pool(concurrency, work, update)
    async with db.read() as txn:
        row = await txn.fetchone("SELECT SUM(approvals) AS total FROM bench_cas")
    total = int(row["total"]) if row is not None else 0
    async with db.write() as txn:
        await txn.execute("DROP TABLE bench_cas")
    return seconds, total


async def _lost(db: Database, ids: list[str], told: int) -> list[str]:
    """What went missing or counted twice, each said in words; empty when nothing did."""
    n = len(ids)
    wrong: list[str] = []
    async with db.read() as txn:
        rows = await txn.fetchall("SELECT post_id, approver, version FROM approvals WHERE decision = 'approve'")
        states = await txn.fetchall("SELECT id, state FROM posts WHERE account = ?", ACCOUNT)
        entries = await txn.fetchall(
            "SELECT post_id, entry FROM log_entries WHERE type = 'post.approved' ORDER BY idx")
    if told != 2 * n:
        wrong.append(f"{told:,} approvals told to their approvers, not {2 * n:,}")
    if len(rows) != told:
        wrong.append(f"{len(rows):,} approvals stored, {told:,} told")
    per_post: dict[str, set[str]] = {}
    for r in rows:
        per_post.setdefault(r["post_id"], set()).add(r["approver"])
    short = [i for i in ids if len(per_post.get(i, ())) != 2]
    if short:
        wrong.append(f"{len(short):,} posts without exactly two approvals")
    not_scheduled = [r["id"] for r in states if r["state"] != "scheduled"]
    if not_scheduled or len(states) != n:
        wrong.append(f"{len(not_scheduled):,} of {len(states):,} posts not scheduled")
    said: dict[str, list[tuple[int, str]]] = {}
    for e in entries:
        data = json.loads(bytes(e["entry"]))["data"]
        said.setdefault(e["post_id"], []).append((data["count"], data["state"]))
    if len(entries) != 2 * n:
        wrong.append(f"{len(entries):,} post.approved entries, not {2 * n:,}")
    bad = [i for i in ids if said.get(i) != [(1, "held"), (2, "scheduled")]]
    if bad:
        wrong.append(f"{len(bad):,} posts whose entries do not go held (1 of 2) then scheduled (2 of 2)")
    return wrong


async def _round(url: str, folder: Path, args: argparse.Namespace) -> Round:
    """One round in a fresh database: setup, Byline's approvals, the baseline, the check."""
    (folder / "policies").mkdir(parents=True, exist_ok=True)
    (folder / "policies" / f"{ACCOUNT}.yaml").write_text(POLICY)
    db = await open_database(url)
    clock = SystemClock()
    appender = Appender(db, clock)
    await appender.start()
    try:
        registry = PolicyRegistry(folder / "policies")
        await PolicyService(registry=registry, appender=appender, db=db, interval=3600).sync()
        posts = PostService(db=db, appender=appender, policies=registry, clock=clock)
        started = time.perf_counter()
        ids = await _submit(posts, args.posts, args.concurrency)
        print(f"  setup: {len(ids):,} co-signed posts submitted and held in {time.perf_counter() - started:.1f} s",
              flush=True)
        approvals_s, told, retries = await _approve_all(posts, ids, args.concurrency)
        baseline_s, total = await _baseline(db, ids, args.concurrency)
        lost = await _lost(db, ids, told)
        if total != 2 * len(ids):
            lost.append(f"the baseline's counters add up to {total:,}, not {2 * len(ids):,}")
    finally:
        await appender.stop()
        await db.close()
    return Round(approvals_s=approvals_s, baseline_s=baseline_s, approvals=told, retries=retries, lost=lost)


async def _with_postgres(dsn: str, name: str) -> str | None:
    """A fresh database ``name`` on the server ``dsn`` names; its DSN, or None when none answers."""
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL at {urlsplit(dsn).hostname}: not reachable ({exc})", flush=True)
        return None
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    # its own database, in its default schema (a search_path given for another would not be there)
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}", query=""))


async def _drop_postgres(dsn: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _on(dialect: str, url: str, folder: Path, args: argparse.Namespace) -> list[Verdict]:
    """Every round on one database; its two verdicts (the ratio, nothing lost)."""
    label = "SQLite" if dialect == "sqlite" else "PostgreSQL"
    n = args.posts
    print(f"{label}: {n:,} posts, {2 * n:,} approvals, {args.concurrency} approvers at once", flush=True)
    ratios: list[float] = []
    rates: list[tuple[float, float]] = []
    lost: list[str] = []
    for r in range(1, args.rounds + 1):
        where = folder / f"{dialect}-{r}"
        round_url = f"sqlite:///{where / 'bench.db'}" if dialect == "sqlite" else url
        got = await _round(round_url, where, args)
        a_rate, b_rate = got.approvals / got.approvals_s, 2 * n / got.baseline_s
        ratios.append(a_rate / b_rate)
        rates.append((a_rate, b_rate))
        lost += got.lost
        print(f"  round {r}: Byline {a_rate:,.0f} approvals/s ({got.approvals_s:.2f} s, {got.retries} retried "
              f"after a conflict); bare compare-and-set {b_rate:,.0f} UPDATEs/s ({got.baseline_s:.2f} s); "
              f"ratio {a_rate / b_rate:.2f}; lost or doubled: {'; '.join(got.lost) or 'none'}", flush=True)
        if dialect != "sqlite" and r < args.rounds:
            await _reset_postgres(url)
    median = statistics.median(ratios)
    a_rate, b_rate = (statistics.median(r[0] for r in rates), statistics.median(r[1] for r in rates))
    target = TARGETS[dialect]
    return [
        Verdict(benchmark=f"approvals, {label}",
                measured=f"{median:.2f} (Byline {a_rate:,.0f} approvals/s; bare compare-and-set {b_rate:,.0f}/s)",
                target=f"ratio >= {target}", met=median >= target),
        Verdict(benchmark=f"approvals, {label}, lost updates",
                measured=f"{len(lost)} ({'; '.join(lost) or f'{2 * n * args.rounds:,} approvals, each counted once'})",
                target="0", met=not lost),
    ]


async def _reset_postgres(url: str) -> None:
    """Empty a round's PostgreSQL schema for the next round (as a fresh SQLite file is): the
    database's own ``public``, or the schema that ``--postgres-database`` names."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        schema = await conn.fetchval("SELECT current_schema()")
        quoted = '"' + str(schema).replace('"', '""') + '"'
        await conn.execute(f"DROP SCHEMA {quoted} CASCADE; CREATE SCHEMA {quoted}")
    finally:
        await conn.close()


async def _bench(args: argparse.Namespace, folder: Path) -> list[Verdict]:
    print(f"{os.cpu_count()} CPUs, {loop_name(asyncio.get_running_loop())} event loop", flush=True)
    verdicts: list[Verdict] = []
    if "sqlite" in args.on:
        verdicts += await _on("sqlite", "", folder, args)
    if "postgresql" in args.on and args.postgres_database:
        verdicts += await _on("postgresql", args.postgres_database, folder, args)
    elif "postgresql" in args.on:
        name = f"bench_approvals_{os.getpid()}"
        url = await _with_postgres(args.postgres, name)
        if url is None:
            verdicts.append(Verdict(benchmark="approvals, PostgreSQL", measured="no PostgreSQL answered",
                                    target=f"ratio >= {TARGETS['postgresql']}", met=False, ran=False))
        else:
            try:
                verdicts += await _on("postgresql", url, folder, args)
            finally:
                await _drop_postgres(args.postgres, name)
    return verdicts


def parser() -> argparse.ArgumentParser:
    """The approvals benchmark's options."""
    p = argparse.ArgumentParser(prog="python -m bench approvals", description=__doc__.splitlines()[0])
    p.add_argument("--posts", type=int, default=10_000, help="co-signed posts, two approvals each (default 10,000)")
    p.add_argument("--concurrency", type=int, default=64, help="approvers (and baseline callers) at once")
    p.add_argument("--rounds", type=int, default=3, help="rounds on each database, fresh posts each (median)")
    p.add_argument("--on", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"])
    p.add_argument("--postgres", default=os.environ.get("BYLINE_TEST_POSTGRES_DSN", DEFAULT_POSTGRES),
                   help="a PostgreSQL server to make the benchmark's own database on")
    # Dropping a database makes PostgreSQL finish a checkpoint first, which on a server busy
    # with other writes (the tests') takes a minute or more; emptying a schema does not.
    p.add_argument("--postgres-database", metavar="URL",
                   help="run in this PostgreSQL database and schema (its search_path) instead, "
                        "emptied between rounds, neither made nor dropped")
    p.add_argument("--loop", choices=LOOPS, default="uvloop", help="the event loop (byline serve's: uvloop)")
    p.add_argument("--dir", help="where the SQLite databases go (default: a fresh temporary folder)")
    return p


def run(argv: Sequence[str] | None = None) -> list[Verdict]:
    """Run the approvals benchmark; print its rounds; its verdicts."""
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="byline-bench-", dir=args.dir) as tmp, \
            asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        return runner.run(_bench(args, Path(tmp)))


if __name__ == "__main__":
    from bench.report import summary

    print(summary(run()))
