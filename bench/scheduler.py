"""Benchmark 2, the scheduler at scale: many delayed posts due within one minute, and how late
they go out.

``python -m bench.scheduler [--posts N]`` (default 100,000) writes N delayed posts for 100
sandbox accounts through the real post service (each with its ``post.submitted`` entry, the
submissions many at once, so the appender batches them): setup, not timed. Their due times
(``publish_at``) are spread evenly over one minute that starts once the setup is done, the
accounts interleaved. Then a real gateway, ``byline serve`` in its own process, publishes them
with its background publisher. The publish lag of a post is the time of its ``post.published``
change (``posts.updated_at``, set in the transaction that records it) minus its ``publish_at``;
its p50 and p99 are reported. The sandbox platform imposes no rate limit, so the whole lag is
the gateway's, and the target is a p99 under 1 s. The gateway's resident memory is read from
``/proc``: idle on the database before any post was written, idle with the N posts pending
(just before the minute), its peak while they go out, and after the last went out. The
targets: less than 10 MB for N pending posts, and a peak less than 50 MB above that: pending
posts stay in the database, not in the gateway's memory, and only a bounded number of claims
is held while they go out. (The peak still grows with the posts published, +41 MB for
100,000 against +8 MB for 10,000: not yet explained.)

It runs on SQLite (a temporary folder), then on PostgreSQL in a database of its own made at
``BYLINE_BENCH_POSTGRES`` (default the local server) and dropped after, when a server answers;
``--databases sqlite`` for one, or ``--database-url URL`` for a given database (emptied first).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from bench.postgres import POSTGRES_ADMIN, scratch_database
from bench.report import Verdict, summary
from gateway import logs
from gateway.app import make_app
from gateway.appkeys import POSTS
from gateway.errors import BylineError, Code
from gateway.loops import loop_factory
from gateway.services.posts import Caller
from gateway.settings import Settings
from gateway.storage.db import open_database

ACCOUNTS = 100
SPREAD_SECONDS = 60.0
LAG_TARGET_SECONDS = 1.0
MEMORY_TARGET_MB = 50.0
PENDING_TARGET_MB = 10.0
_SECOND = 1_000_000


@dataclass(kw_only=True)
class Outcome:
    """What one run measured."""

    posts: int
    published: int
    lags: list[float]
    """Seconds, one a post that went out."""
    claim_lags: list[float]
    """Seconds from due to claimed, one a post that went out."""
    rss_empty: float
    """MB, the gateway idle on the database before any post was written."""
    rss_before: float
    """MB, the gateway idle with every post pending."""
    rss_peak: float
    rss_after: float
    publish_seconds: float
    """From the first due time until the last post went out."""
    setup_seconds: float
    late_start: float
    """Seconds the gateway started after the first due time (0 when the setup kept to plan)."""
    notes: list[str] = field(default_factory=list)


def _policy(n: int) -> str:
    return (f"account: sched{n:03d}\nplatform: sandbox\nhandle: \"@sched{n:03d}\"\n"
            f"tier: delayed\nowner: w{n:03d}\ndelay: 1s\n")


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def _empty_postgres(url: str) -> None:
    """Drop every table of a benchmark's own PostgreSQL database: each run starts empty."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


async def _submit_all(service: Any, *, posts: int, first_due: datetime, spread: float,
                      concurrency: int = 1000, offset: int = 0) -> None:
    """Write the posts through the post service, ``concurrency`` at a time, due evenly over
    ``spread`` seconds from ``first_due``, the accounts taking turns."""
    step = spread / posts

    async def one(i: int) -> None:
        n = i % ACCOUNTS
        for _ in range(5):
            try:
                await service.submit(
                    Caller(user=f"w{n:03d}"), account=f"sched{n:03d}",
                    text=f"post {offset + i} of the benchmark",
                    publish_at=first_due + timedelta(seconds=i * step),
                )
                return
            except (sqlite3.IntegrityError, asyncpg.UniqueViolationError):
                # Two posts submitted in the same millisecond may draw the same id (20 random
                # bits a millisecond): the second is refused whole, and is sent again.
                continue
            except BylineError as exc:
                if exc.code is not Code.NOT_FOUND:
                    raise
                # Seen once under this load: the post's own view did not find it right after
                # its submission. The run counts the posts stored, not those sent.
                return
        raise RuntimeError("a post's id collided five times")

    for start in range(0, posts, concurrency):
        await asyncio.gather(*(one(i) for i in range(start, min(posts, start + concurrency))))


async def _setup(settings: Settings, *, posts: int, spread: float, margin: float,
                 say: Callable[[str], None]) -> tuple[datetime, int]:
    """Write the posts with a gateway that runs no publisher; their first due time, and how many
    posts were written that are not due in the run.

    The minute must start after the last post is written and the gateway publishing them has
    started. So a tenth of the posts (2,000 at most) are written first, due tomorrow: they time
    the setup, and stay pending through the run, as posts due later would.
    """
    app = make_app(settings, run_publisher=False)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        service = app[POSTS]
        later = min(2_000, max(1, posts // 10))
        started = time.monotonic()
        await _submit_all(service, posts=later, first_due=datetime.now(UTC) + timedelta(days=1),
                          spread=spread, offset=posts)
        rate = later / (time.monotonic() - started)
        first_due = datetime.now(UTC) + timedelta(seconds=margin + posts / (0.6 * rate))
        say(f"writing {posts:,} delayed posts for {ACCOUNTS} accounts (and {later:,} due tomorrow), "
            f"due from {first_due:%H:%M:%S} over {spread:.0f} s")
        await _submit_all(service, posts=posts, first_due=first_due, spread=spread)
    finally:
        await runner.cleanup()
    return first_due, later


def _tail(path: Path, size: int = 4000) -> str:
    """The end of a log file."""
    return path.read_text()[-size:]


async def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a gateway as an operator would (SIGTERM), and wait until it has."""
    proc.terminate()
    for _ in range(300):
        if proc.poll() is not None:
            return
        await asyncio.sleep(0.1)
    proc.kill()
    proc.wait()


async def _serve(env: dict[str, str], log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start `byline serve` and wait until it answers /readyz; the process and its address."""
    log = log_path.open("ab")
    proc = subprocess.Popen(  # noqa: ASYNC220 - the gateway runs beside the benchmark
        [sys.executable, "-m", "gateway", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    deadline = time.monotonic() + 60
    base = None
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway stopped:\n{_tail(log_path)}")
            if base is None:
                for line in _tail(log_path, 1 << 20).splitlines():
                    if '"gateway_started"' in line:
                        base = f"http://127.0.0.1:{json.loads(line)['port']}"
            else:
                try:
                    async with session.get(base + "/readyz") as resp:
                        if resp.status == 200:
                            return proc, base
                except aiohttp.ClientConnectionError:
                    pass
            await asyncio.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the gateway did not become ready:\n{_tail(log_path)}")


async def _count(url: str, where: str, *args: Any) -> int:
    db = await open_database(url)
    try:
        async with db.read() as txn:
            row = await txn.fetchone(f"SELECT COUNT(*) AS n FROM posts WHERE {where}", *args)
        return int(row["n"]) if row else 0
    finally:
        await db.close()


async def _lags(url: str) -> tuple[list[float], list[float]]:
    """Seconds from due to published, and from due to claimed (the first ``post.publishing``
    entry), of every published post."""
    db = await open_database(url)
    try:
        async with db.read() as txn:
            rows = await txn.fetchall(
                "SELECT p.publish_at, p.updated_at, MIN(l.ts) AS claimed FROM posts p "
                "JOIN log_entries l ON l.post_id = p.id AND l.type = 'post.publishing' "
                "WHERE p.state = 'published' GROUP BY p.id, p.publish_at, p.updated_at"
            )
        return ([(int(r["updated_at"]) - int(r["publish_at"])) / _SECOND for r in rows],
                [(int(r["claimed"]) - int(r["publish_at"])) / _SECOND for r in rows])
    finally:
        await db.close()


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The gateway writing the posts in this process logs its warnings only; its caller's
    logging (a test's capture, say) is as it was afterwards."""
    saved = structlog.get_config()
    logs.configure(level="warning")
    try:
        yield
    finally:
        structlog.configure(**saved)


async def measure(*, posts: int, folder: Path, database_url: str | None = None,
                  spread: float = SPREAD_SECONDS, margin: float = 15.0, say: Callable[[str], None] = print,
                  wait_at_most: float | None = None) -> Outcome:
    """One run: write the posts, start the gateway, watch them go out. The minute (``spread``)
    starts ``margin`` seconds after the setup is expected to end: time for the gateway to start."""
    with _quiet_logs():
        return await _measure(posts=posts, folder=folder, database_url=database_url, spread=spread,
                              margin=margin, say=say, wait_at_most=wait_at_most)


async def _measure(*, posts: int, folder: Path, database_url: str | None, spread: float, margin: float,
                   say: Callable[[str], None], wait_at_most: float | None) -> Outcome:
    url = database_url or f"sqlite:///{folder / 'byline.db'}"
    if url.startswith(("postgresql", "postgres")):
        await _empty_postgres(url)
    policies = folder / "policies"
    policies.mkdir(exist_ok=True)
    for n in range(ACCOUNTS):
        (policies / f"sched{n:03d}.yaml").write_text(_policy(n))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(
        BYLINE_DATABASE_URL=url, BYLINE_POLICY_DIR=str(policies), BYLINE_PORT="0",
        BYLINE_LOG_KEY_FILE=str(folder / "log.key"), BYLINE_LOG_KEY_AUTOCREATE="true",
        BYLINE_LOG_FORMAT="json",
    )
    # The gateway that writes the posts runs none of its background ticks meanwhile: the posts
    # are all it does.
    settings = Settings(database_url=url, policy_dir=policies, port=0, log_key_file=folder / "log.key",
                        log_key_autocreate=True, log_level="warning", checkpoint_interval_seconds=3600,
                        notify_interval_seconds=3600, housekeeping_interval_seconds=3600,
                        policy_reload_seconds=3600)

    # The gateway's memory with nothing pending, to set that with every post pending beside.
    proc, _ = await _serve(env, folder / "serve-empty.log")
    try:
        await asyncio.sleep(2)
        rss_empty = rss_mb(proc.pid)
    finally:
        await _stop(proc)
    started = time.monotonic()
    first_due, _ = await _setup(settings, posts=posts, spread=spread, margin=margin, say=say)
    setup_seconds = time.monotonic() - started
    stored = await _count(url, "state = 'scheduled' AND publish_at <= ?",
                          int((first_due + timedelta(seconds=spread)).timestamp() * _SECOND))
    notes = []
    if stored != posts:
        notes.append(f"{posts - stored} of the {posts:,} posts sent were not stored (see the setup)")
        posts = stored
    say(f"  written in {setup_seconds:.1f} s ({posts / setup_seconds:,.0f} posts/s)")

    proc, _ = await _serve(env, folder / "serve.log")
    try:
        late_start = max(0.0, (datetime.now(UTC) - first_due).total_seconds())
        await asyncio.sleep(max(0.0, (first_due - datetime.now(UTC)).total_seconds() - 1))
        rss_before = rss_mb(proc.pid)
        say(f"  gateway up (pid {proc.pid}), {rss_before:.0f} MB with {posts:,} posts pending")
        peak = rss_before
        deadline = time.monotonic() + (wait_at_most if wait_at_most is not None else spread + 900)
        published, last_seen, last_say = 0, time.monotonic(), 0.0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if proc.poll() is not None:
                raise RuntimeError(f"the gateway stopped:\n{_tail(folder / 'serve.log')}")
            peak = max(peak, rss_mb(proc.pid))
            published = await _count(url, "state = 'published'")
            now = time.monotonic()
            if now - last_say > 10:
                say(f"  {published:,} published, {peak:.0f} MB at most so far")
                last_say = now
            if published >= posts:
                last_seen = now
                break
        publish_seconds = max(0.0, (datetime.now(UTC) - first_due).total_seconds())
        del last_seen
        await asyncio.sleep(2)
        rss_after = rss_mb(proc.pid)
    finally:
        await _stop(proc)
    lags, claim_lags = await _lags(url)
    if late_start > 0:
        notes.append(f"the setup ran {late_start:.1f} s into the minute: the first posts' lag includes it")
    return Outcome(posts=posts, published=len(lags), lags=lags, claim_lags=claim_lags, rss_empty=rss_empty,
                   rss_before=rss_before,
                   rss_peak=peak, rss_after=rss_after, publish_seconds=publish_seconds, setup_seconds=setup_seconds,
                   late_start=late_start, notes=notes)


def verdicts(outcome: Outcome, *, label: str) -> list[Verdict]:
    """The two targets of benchmark 2 for one run."""
    p50, p99 = _percentile(outcome.lags, 0.50), _percentile(outcome.lags, 0.99)
    lost = outcome.posts - outcome.published
    growth = outcome.rss_peak - outcome.rss_before
    pending = outcome.rss_before - outcome.rss_empty
    name = f"scheduler, {outcome.posts:,} posts due in one minute, {label}"
    return [
        Verdict(
            benchmark=f"{name}: publish lag",
            measured=(f"p99 {p99:.2f} s, p50 {p50:.2f} s ({outcome.published:,} of {outcome.posts:,} "
                      f"published; sandbox, no rate limit)"),
            target=f"p99 < {LAG_TARGET_SECONDS:.0f} s, every post published",
            met=lost == 0 and p99 < LAG_TARGET_SECONDS,
        ),
        Verdict(
            benchmark=f"{name}: gateway memory",
            measured=(f"{pending:+.0f} MB with every post pending, {growth:+.0f} MB more at peak "
                      f"({outcome.rss_empty:.0f} MB with none, {outcome.rss_before:.0f} MB with "
                      f"{outcome.posts:,} pending, {outcome.rss_peak:.0f} MB peak, {outcome.rss_after:.0f} MB after)"),
            target=f"pending < {PENDING_TARGET_MB:.0f} MB, peak < before + {MEMORY_TARGET_MB:.0f} MB",
            met=pending < PENDING_TARGET_MB and growth < MEMORY_TARGET_MB,
        ),
    ]


def report(outcome: Outcome, *, say: Callable[[str], None] = print) -> None:
    """The run's figures, printed."""
    lags = outcome.lags
    say(f"published {outcome.published:,} of {outcome.posts:,}; the last "
        f"{outcome.publish_seconds:.1f} s after the first was due "
        f"({outcome.published / max(outcome.publish_seconds, 1e-9):,.0f} posts/s over the run)")
    if lags:
        say(f"publish lag: p50 {_percentile(lags, 0.5):.3f} s, p90 {_percentile(lags, 0.9):.3f} s, "
            f"p99 {_percentile(lags, 0.99):.3f} s, max {max(lags):.3f} s, mean {statistics.fmean(lags):.3f} s")
    if outcome.claim_lags:
        claims = outcome.claim_lags
        say(f"of which due to claimed: p50 {_percentile(claims, 0.5):.3f} s, p99 {_percentile(claims, 0.99):.3f} s")
    say(f"gateway memory: {outcome.rss_empty:.0f} MB with nothing pending, {outcome.rss_before:.0f} MB "
        f"with every post pending, {outcome.rss_peak:.0f} MB at peak, {outcome.rss_after:.0f} MB after")
    for note in outcome.notes:
        say(f"note: {note}")




async def _runs(*, posts: int, database_url: str | None, databases: Sequence[str]) -> list[Verdict]:
    found: list[Verdict] = []
    if database_url is not None:
        databases = ["postgresql" if database_url.startswith("postgres") else "sqlite"]
    for kind in databases:
        label = "PostgreSQL" if kind == "postgresql" else "SQLite"
        print(f"-- {label}", flush=True)
        with tempfile.TemporaryDirectory(prefix="byline-bench-scheduler-") as tmp:
            if kind == "sqlite" or database_url is not None:
                outcome = await measure(posts=posts, folder=Path(tmp), database_url=database_url)
            else:
                async with scratch_database("bench_scheduler") as url:
                    if url is None:
                        found.append(Verdict(
                            benchmark=f"scheduler, {label}", measured=f"not run (no server at {POSTGRES_ADMIN})",
                            target="see the README", met=False, ran=False,
                        ))
                        continue
                    outcome = await measure(posts=posts, folder=Path(tmp), database_url=url)
        report(outcome)
        found += verdicts(outcome, label=label)
    return found


def run(*, posts: int = 100_000, quick: bool = False, database_url: str | None = None,
        databases: Sequence[str] = ("sqlite", "postgresql"), loop: str = "uvloop") -> list[Verdict]:
    """Benchmark 2 as ``python -m bench`` runs it, on SQLite then PostgreSQL (when a server
    answers): its verdicts. ``quick``: 10,000 posts at most."""
    if quick:
        posts = min(posts, 10_000)
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(_runs(posts=posts, database_url=database_url, databases=databases))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scheduler``."""
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000, help="delayed posts due in the minute")
    parser.add_argument("--database-url", help="a database of its own (emptied first), in place of --databases")
    parser.add_argument("--databases", default="sqlite,postgresql",
                        help="sqlite, postgresql (a database made at BYLINE_BENCH_POSTGRES and dropped), or both")
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    args = parser.parse_args(argv)
    found = run(posts=args.posts, database_url=args.database_url, loop=args.loop,
                databases=[d.strip() for d in args.databases.split(",") if d.strip()])
    print(summary(found))
    return 0 if all(v.met for v in found) else 1


if __name__ == "__main__":
    sys.exit(main())
