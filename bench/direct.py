"""Benchmark 1: the direct tier, end to end, against a bare pass-through proxy in the same run.

``python -m bench.direct [--seconds S] [--connections 16,64,256] [--databases sqlite,postgresql]``

Each piece runs in its own process, as it would in production:

- a **platform stand-in**, Mastodon-shaped: ``POST /api/v1/statuses`` checks the bearer token
  (one per account), validates the status as Mastodon would (form or JSON, not blank, at most
  500 characters), and counts every post that reaches it; ``GET /count`` tells the count;
- (a) a **bare proxy**: a minimal aiohttp pass-through in front of the stand-in;
- (b) **Byline**: the real ``byline serve`` (uvloop, the settings an operator gives it, the log
  to a file) with 32 direct-tier accounts on ``platform: mastodon`` whose ``instance:`` is the
  stand-in and whose credential is a ``file:`` in the secrets directory, a hold rule and a block
  rule in each policy, real tokens bound to each account (made with ``Identity``, as ``byline
  token create --account`` makes them), the durable signed log; on SQLite and on PostgreSQL;
- the **load generator**: ``wrk -t1 -cN`` with a Lua script (``bench/direct.lua``), in its own
  process.

Both are driven through the same Mastodon API call, ``POST /api/v1/statuses`` with a form
body, the token of one of the 32 accounts in turn: the like-for-like comparison (a posting tool
pointed at Byline instead of at its instance). The posts/s compared are those that **reach the
stand-in** while the load runs; Byline answers before it publishes, so it also reports what it
accepted, and after each point waits until every accepted post has reached the stand-in (the
backlog is said, and a post accepted that never arrives is counted as lost).

Targets (issue 15): on SQLite at 64 connections at least 0.5 of the bare proxy's rate and at
most 10 ms added at p99; on PostgreSQL at least 0.3 of it.

``run(seconds=..., quick=...)`` gives the :class:`bench.report.Verdict` list to ``python -m
bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.postgres import POSTGRES_ADMIN, scratch_database
from bench.report import Verdict, summary

ACCOUNTS = 32
CONNECTIONS = (16, 64, 256)
TARGET_SQLITE = 0.5
TARGET_POSTGRES = 0.3
TARGET_P99_ADDED_MS = 10.0
LUA = Path(__file__).with_name("direct.lua")
WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
"""Byline's workers (``BYLINE_WORKERS``): one a core, as an operator would run it on this machine."""
MAX_CHARS = 500
SERVE = [sys.executable, "-m", "gateway"]
"""How ``byline serve`` is run."""

_RULES = """\
rules:
  - name: breaking-news
    action: hold
    any_words: [fired, scandal, resign]
    reason: Check the full story first
  - name: no-slurs
    action: block
    regex: "(?i)\\\\bexample-slur\\\\b"
    reason: Not okay to post
"""


# -- the platform stand-in and the bare proxy (each run in a process of its own) ------------------


def standin_app(tokens: dict[str, str]) -> web.Application:
    """A Mastodon-shaped platform: ``tokens`` maps each access token to its account's name."""
    count = 0
    ids = iter(range(110_000_000_000_000_001, 1 << 62))

    async def create_status(request: web.Request) -> web.Response:
        nonlocal count
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        account = tokens.get(token) if scheme.lower() == "bearer" else None
        if account is None:
            return web.json_response({"error": "The access token is invalid"}, status=401)
        if request.content_type == "application/json":
            params: Any = await request.json()
        else:
            params = await request.post()
        text = params.get("status") if isinstance(params, dict) or hasattr(params, "get") else None
        if not isinstance(text, str) or not text.strip():
            return web.json_response({"error": "Validation failed: Text can't be blank"}, status=422)
        if len(text) > MAX_CHARS:
            return web.json_response({"error": "Validation failed: Text character limit of 500 exceeded"},
                                     status=422)
        count += 1  # it reached the platform
        status_id = str(next(ids))
        url = f"https://standin.example/@{account}/{status_id}"
        return web.json_response({
            "id": status_id, "uri": url, "url": url, "content": f"<p>{text}</p>",
            "created_at": "2026-01-01T00:00:00.000Z", "visibility": "public", "sensitive": False,
            "spoiler_text": "", "media_attachments": [],
            "account": {"id": account, "username": account, "acct": account},
        })

    async def verify_credentials(request: web.Request) -> web.Response:
        _, _, token = request.headers.get("Authorization", "").partition(" ")
        account = tokens.get(token)
        if account is None:
            return web.json_response({"error": "The access token is invalid"}, status=401)
        return web.json_response({"id": account, "username": account, "acct": account,
                                  "url": f"https://standin.example/@{account}"})

    async def tell_count(request: web.Request) -> web.Response:
        return web.json_response({"count": count})

    app = web.Application()
    app.router.add_post("/api/v1/statuses", create_status)
    app.router.add_get("/api/v1/accounts/verify_credentials", verify_credentials)
    app.router.add_get("/count", tell_count)
    return app


_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "host"})


def proxy_app(upstream: str) -> web.Application:
    """A bare pass-through proxy: each request forwarded to ``upstream`` as it came."""

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(upstream, connector=connector) as session:
            app[SESSION] = session
            yield

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with request.app[SESSION].request(
            request.method, request.rel_url, headers=headers, data=await request.read()
        ) as resp:
            body = await resp.read()
            return web.Response(status=resp.status, body=body, content_type=resp.content_type)

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


SESSION = web.AppKey("session", aiohttp.ClientSession)


def _serve_forever(app: web.Application) -> None:
    """Serve ``app`` on a free loopback port on uvloop; print ``port N`` once listening."""
    from gateway.loops import loop_factory

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = runner.addresses[0][1]
        print(f"port {port}", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    with asyncio.Runner(loop_factory=loop_factory("uvloop")) as runner:
        runner.run(main())


# -- processes --------------------------------------------------------------------------------------


class Process:
    """A child process that reports its port on a line of its own output."""

    def __init__(self, args: Sequence[str], *, log: Path, env: dict[str, str] | None = None,
                 port_pattern: str = r"^port (\d+)$") -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(list(args), stdout=self._out, stderr=subprocess.STDOUT, env=env)
        self._pattern = re.compile(port_pattern.encode(), re.M)
        self.port = 0

    async def started(self) -> int:
        """Wait for the port line (a minute at most); return the port."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.log.name} exited:\n{self.log.read_text()[-3000:]}")
            found = self._pattern.search(self.log.read_bytes())
            if found:
                self.port = int(found.group(1))
                return self.port
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.log.name} did not start:\n{self.log.read_text()[-3000:]}")

    @property
    def base(self) -> str:
        """Its address."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def _helper(kind: str, *args: str, log: Path) -> Process:
    return Process([sys.executable, "-m", "bench.direct", kind, *args], log=log)


async def _count(session: aiohttp.ClientSession, standin: Process) -> int:
    async with session.get(standin.base + "/count") as resp:
        return int((await resp.json())["count"])


# -- Byline's setup -----------------------------------------------------------------------------------


def _account(n: int) -> str:
    return f"bench-{n:02d}"


def write_policies(policy_dir: Path, *, accounts: int, instance: str) -> dict[str, str]:
    """Direct-tier policies for ``accounts`` Mastodon accounts on ``instance``, each with its
    platform token in the secrets directory; return the stand-in's tokens (token -> account)."""
    secrets = policy_dir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    tokens = {}
    for n in range(accounts):
        name = _account(n)
        token = f"standin-token-{n:02d}"
        tokens[token] = name
        (secrets / f"{name}.token").write_text(token + "\n")
        (secrets / f"{name}.token").chmod(0o600)
        (policy_dir / f"{name}.yaml").write_text(
            f"account: {name}\nplatform: mastodon\nhandle: \"@{name}\"\ninstance: {instance}\n"
            f"credentials: file:secrets/{name}.token\ntier: direct\nowner: writer\n" + _RULES
        )
    return tokens


async def make_tokens(database_url: str, accounts: int) -> list[str]:
    """A Byline token for the writer, bound to each account in turn (as ``byline token create
    --user writer --account A`` makes them)."""
    from gateway.clock import SystemClock
    from gateway.services.identity import Identity
    from gateway.storage.db import open_database

    db = await open_database(database_url)
    try:
        identity = Identity(db, SystemClock())
        return [await identity.create(user="writer", account=_account(n), label="bench")
                for n in range(accounts)]
    finally:
        await db.close()


def byline_env(workdir: Path, *, database_url: str, policy_dir: Path, workers: int = 1) -> dict[str, str]:
    """The settings ``byline serve`` runs with here: the defaults an operator has, but the
    database, the loopback platform, a port of its own, no per-address connection cap (the
    load comes from one address, as through a reverse proxy), and ``workers`` processes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(
        BYLINE_DATABASE_URL=database_url, BYLINE_POLICY_DIR=str(policy_dir), BYLINE_PORT="0",
        BYLINE_LOG_KEY_FILE=str(workdir / "log.key"), BYLINE_LOG_FORMAT="json",
        BYLINE_ALLOW_INSECURE_PLATFORMS="true", BYLINE_CONNECTIONS_PER_ADDRESS="0",
        BYLINE_WORKERS=str(workers),
    )
    return env


BYLINE_STARTED = r'^\{.*"port": ?(\d+).*"event": ?"gateway_started"'
"""The log line by which ``byline serve`` says it listens, and on which port."""


async def prepare_byline(workdir: Path, *, database_url: str, policy_dir: Path, accounts: int,
                         workers: int) -> tuple[dict[str, str], list[str]]:
    """What ``byline serve`` needs before it starts: its settings (``byline_env``), a signing
    key for its log, and a token for each account; the settings and the tokens."""
    env = byline_env(workdir, database_url=database_url, policy_dir=policy_dir, workers=workers)
    keygen = await asyncio.create_subprocess_exec(
        *SERVE, "log", "keygen", env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, problem = await keygen.communicate()
    if keygen.returncode:
        raise RuntimeError(f"byline log keygen failed: {problem.decode()}")
    return env, await make_tokens(database_url, accounts)


def token_files(workdir: Path, instance_tokens: dict[str, str], byline_tokens: list[str]) -> tuple[Path, Path]:
    """The tokens wrk sends, one a line: the stand-in's (through the proxy) and Byline's."""
    proxy_file = workdir / "proxy-tokens.txt"
    proxy_file.write_text("\n".join(instance_tokens) + "\n")
    byline_file = workdir / "byline-tokens.txt"
    byline_file.write_text("\n".join(byline_tokens) + "\n")
    return proxy_file, byline_file


# -- the load ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Load:
    """One run of wrk against one target."""

    requests: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    seconds: float
    reached: int
    """Posts that reached the stand-in while the load ran."""
    drained: int = 0
    """Posts that reached it after the load stopped (Byline's backlog)."""
    drain_seconds: float = 0.0
    cpu_seconds: float | None = None
    """CPU time the target's process used meanwhile (until the backlog was through), if known."""

    @property
    def cpu_ms_per_post(self) -> float | None:
        """The target's CPU milliseconds a post that reached the stand-in: steadier than rates
        when others share the machine."""
        posts = self.reached + self.drained
        return self.cpu_seconds * 1000 / posts if self.cpu_seconds is not None and posts else None

    @property
    def accepted(self) -> int:
        """Requests answered 2xx."""
        return self.requests - self.non_2xx

    @property
    def rate(self) -> float:
        """Posts a second that reached the stand-in while the load ran."""
        return self.reached / self.seconds if self.seconds else 0.0

    def line(self, label: str) -> str:
        """The load as one line of the report."""
        extra = ""
        if self.drained:
            extra = f"; {self.drained} more reached it within {self.drain_seconds:.1f} s after"
        bad = f", {self.non_2xx} non-2xx" if self.non_2xx else ""
        bad += f", {self.socket_errors} socket errors" if self.socket_errors else ""
        cpu = f"  CPU {self.cpu_ms_per_post:.2f} ms a post" if self.cpu_ms_per_post is not None else ""
        return (f"    {label:<10} {self.rate:8,.0f} posts/s reached  ({self.accepted / self.seconds:,.0f}/s "
                f"accepted{bad})  p50 {self.p50_ms:6.1f} ms  p99 {self.p99_ms:6.1f} ms{cpu}{extra}")


def ensure_wrk() -> str:
    """The wrk binary (installed from Debian's packages when missing, as root or with sudo)."""
    found = shutil.which("wrk")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], env=env, check=False,
                   stdout=subprocess.DEVNULL)
    found = shutil.which("wrk")
    if found is None:
        subprocess.run([*sudo, "apt-get", "update", "-q"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "wrk"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    assert found, "wrk could not be installed"
    return found


async def run_wrk(base: str, tokens_file: Path, *, connections: int, seconds: float) -> dict[str, float]:
    """``wrk -t1 -cN`` posting statuses to ``base``, each request with the next token."""
    env = dict(os.environ, BENCH_TOKENS=str(tokens_file))
    proc = await asyncio.create_subprocess_exec(
        ensure_wrk(), "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
        "-s", str(LUA), base, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    found = re.search(rb"^BENCH (.*)$", out, re.M)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed: {out.decode()[-2000:]} {err.decode()[-2000:]}")
    result: dict[str, float] = json.loads(found.group(1))
    return result


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time a process and its children (every thread of each: the workers
    of a ``byline serve`` with several) have used, from /proc; None where there is no /proc."""
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            with open(f"/proc/{current}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            if current == pid:
                return None
            continue  # a child that ended meanwhile
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
        try:
            with open(f"/proc/{current}/task/{current}/children") as children:
                pids += [int(p) for p in children.read().split()]
        except OSError:
            pass
    return total


async def measure(session: aiohttp.ClientSession, standin: Process, target: str, tokens_file: Path, *,
                  connections: int, seconds: float, wait_drain: int | None = None, pid: int | None = None) -> Load:
    """One point: wrk against ``target``; what reached the stand-in meanwhile, then what followed.
    ``pid``: the target's process, whose CPU time is taken too."""
    cpu_before = cpu_seconds(pid) if pid is not None else None
    before = await _count(session, standin)
    w = await run_wrk(target, tokens_file, connections=connections, seconds=seconds)
    during = await _count(session, standin) - before
    accepted = int(w["requests"] - w["non_2xx"])
    drained, drain_seconds = 0, 0.0
    if wait_drain is not None:
        # Byline publishes after it answers: wait until all it accepted has reached the stand-in
        # (or nothing more arrives for a while).
        start = last_change = time.monotonic()
        seen = during
        while seen < accepted and time.monotonic() - last_change < wait_drain:
            await asyncio.sleep(0.1)
            now = await _count(session, standin) - before
            if now != seen:
                seen, last_change = now, time.monotonic()
        drained, drain_seconds = seen - during, time.monotonic() - start
    cpu_after = cpu_seconds(pid) if pid is not None else None
    return Load(requests=int(w["requests"]), non_2xx=int(w["non_2xx"]), socket_errors=int(w["socket_errors"]),
                p50_ms=w["p50_us"] / 1000, p99_ms=w["p99_us"] / 1000, seconds=w["seconds"],
                reached=during, drained=drained, drain_seconds=drain_seconds,
                cpu_seconds=cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None)


# -- one database --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Point:
    """The proxy and Byline at one number of connections."""

    database: str
    connections: int
    proxy: Load
    byline: Load

    @property
    def ratio(self) -> float:
        """Byline's rate as a share of the bare proxy's."""
        return self.byline.rate / self.proxy.rate if self.proxy.rate else 0.0

    @property
    def lost(self) -> int:
        """Posts Byline accepted that never reached the stand-in."""
        # wrk does not count the requests still in flight when it stops, which may have reached it.
        return max(0, self.byline.accepted - self.byline.reached - self.byline.drained)


async def run_database(database: str, database_url: str, *, seconds: float, connections: Sequence[int],
                       accounts: int, workdir: Path, profile: Path | None = None, on_cpu: bool = False,
                       workers: int = 1, say: Any = print) -> list[Point]:
    """Stand-in, proxy and Byline on one database; each number of connections, proxy then Byline."""
    policy_dir = workdir / "policies"
    standin: Process | None = None
    proxy: Process | None = None
    byline: Process | None = None
    spy: subprocess.Popen[bytes] | None = None
    points: list[Point] = []
    try:
        tokens_path = workdir / "standin-tokens.json"
        instance_tokens = write_policies(policy_dir, accounts=accounts, instance="http://127.0.0.1:1")
        tokens_path.write_text(json.dumps(instance_tokens))
        standin = _helper("standin", str(tokens_path), log=workdir / "standin.log")
        await standin.started()
        # The policies name the stand-in, now that its port is known.
        write_policies(policy_dir, accounts=accounts, instance=standin.base)
        proxy = _helper("proxy", standin.base, log=workdir / "proxy.log")
        await proxy.started()

        env, byline_tokens = await prepare_byline(workdir, database_url=database_url, policy_dir=policy_dir,
                                                  accounts=accounts, workers=workers)
        byline = Process([*SERVE, "serve"], log=workdir / "serve.log", env=env, port_pattern=BYLINE_STARTED)
        await byline.started()

        proxy_file, byline_file = token_files(workdir, instance_tokens, byline_tokens)
        async with aiohttp.ClientSession() as session:
            # Warm both up (connections, the policies' first use) before anything is timed.
            await measure(session, standin, proxy.base, proxy_file, connections=4, seconds=1)
            await measure(session, standin, byline.base, byline_file, connections=4, seconds=1, wait_drain=10)
            for n in connections:
                p = await measure(session, standin, proxy.base, proxy_file, connections=n, seconds=seconds,
                                  pid=proxy.proc.pid)
                if profile is not None and n == max(connections):
                    spy = subprocess.Popen(  # noqa: ASYNC220 - it runs beside the load, waited for after
                        ["py-spy", "record", "--native" if on_cpu else "--idle", "--threads", "--subprocesses",
                         "--rate", "200",
                         "-d", str(max(1, round(seconds))),
                         "-f", "flamegraph" if profile.suffix == ".svg" else "raw",
                         "-o", str(profile), "--pid", str(byline.proc.pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    )
                b = await measure(session, standin, byline.base, byline_file, connections=n, seconds=seconds,
                                  wait_drain=30, pid=byline.proc.pid)
                if spy is not None:
                    spy.wait()
                    spy = None
                point = Point(database=database, connections=n, proxy=p, byline=b)
                points.append(point)
                say(f"  {database}, {n} connections: ratio {point.ratio:.2f}, p99 added "
                    f"{b.p99_ms - p.p99_ms:+.1f} ms" + (f", {point.lost} LOST" if point.lost else ""))
                say(p.line("bare proxy"))
                say(b.line("Byline"))
    finally:
        if spy is not None:
            spy.kill()
        for process in (byline, proxy, standin):
            if process is not None:
                process.stop()
    return points


def verdicts(points: Sequence[Point]) -> list[Verdict]:
    """The targets: on SQLite at 64 connections (or the nearest measured), ratio and p99 added;
    on PostgreSQL, ratio."""
    out = []
    for database, target in (("SQLite", TARGET_SQLITE), ("PostgreSQL", TARGET_POSTGRES)):
        mine = [p for p in points if p.database == database]
        if not mine:
            continue
        point = min(mine, key=lambda p: abs(p.connections - 64))
        name = f"direct tier, {database}, {point.connections} connections"
        measured = (f"{point.ratio:.2f} (Byline {point.byline.rate:,.0f} posts/s reaching the platform; "
                    f"bare proxy {point.proxy.rate:,.0f}/s)")
        out.append(Verdict(benchmark=name, measured=measured, target=f"ratio >= {target}",
                           met=point.ratio >= target and point.lost == 0))
        if database == "SQLite":
            added = point.byline.p99_ms - point.proxy.p99_ms
            out.append(Verdict(
                benchmark=f"{name}, p99 added",
                measured=(f"{added:.1f} ms (Byline {point.byline.p99_ms:.1f} ms; "
                          f"bare proxy {point.proxy.p99_ms:.1f} ms)"),
                # A Byline that accepted nothing answered only refusals, quickly: no latency met.
                target=f"<= {TARGET_P99_ADDED_MS:.0f} ms",
                met=added <= TARGET_P99_ADDED_MS and point.byline.accepted > 0 and point.lost == 0,
            ))
    return out


async def bench(*, seconds: float, connections: Sequence[int] = CONNECTIONS, accounts: int = ACCOUNTS,
                databases: Sequence[str] = ("sqlite", "postgresql"), profile: Path | None = None,
                on_cpu: bool = False, workers: int = WORKERS, say: Any = print) -> list[Verdict]:
    """Every point on every database asked for; the verdicts."""
    points: list[Point] = []
    ensure_wrk()
    for database in databases:
        with tempfile.TemporaryDirectory(prefix="byline-bench-direct-") as tmp:
            workdir = Path(tmp)
            if database == "sqlite":
                say(f"direct tier on SQLite: {accounts} accounts, {seconds:g} s a point, Byline with "
                    f"BYLINE_WORKERS={workers}")
                points += await run_database("SQLite", f"sqlite:///{workdir / 'byline.db'}", seconds=seconds,
                                             connections=connections, accounts=accounts, workdir=workdir,
                                             profile=profile, on_cpu=on_cpu, workers=workers, say=say)
            else:
                async with scratch_database("bench_direct") as url:
                    if url is None:
                        say(f"direct tier on PostgreSQL: skipped, none answers at {POSTGRES_ADMIN}")
                        continue
                    say(f"direct tier on PostgreSQL: {accounts} accounts, {seconds:g} s a point, Byline with "
                        f"BYLINE_WORKERS={workers}")
                    points += await run_database(
                        "PostgreSQL", url, seconds=seconds, connections=connections, accounts=accounts,
                        workdir=workdir, workers=workers, on_cpu=on_cpu,
                        profile=profile.with_stem(profile.stem + "-postgres") if profile else None, say=say)
    return verdicts(points)


def run(*, seconds: float | None = None, quick: bool = False) -> list[Verdict]:
    """Benchmark 1 for ``python -m bench``: 16, 64 and 256 connections, ``seconds`` each
    (default 10), on SQLite and on PostgreSQL; ``quick``: 64 connections, 3 s."""
    if quick:
        return asyncio.run(bench(seconds=seconds or 3.0, connections=(64,)))
    return asyncio.run(bench(seconds=seconds or 10.0))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.direct``: see the module's docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["standin"]:
        _serve_forever(standin_app(json.loads(Path(argv[1]).read_text())))
        return 0
    if argv[:1] == ["proxy"]:
        _serve_forever(proxy_app(argv[1]))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.direct", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each point runs (default 10)")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--profile", type=Path, help="py-spy --idle flame graph of Byline at the most connections")
    parser.add_argument("--on-cpu", action="store_true",
                        help="profile only what runs on a CPU, native frames included (not --idle): where "
                             "the CPU a post goes, gc and system calls with it")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help=f"BYLINE_WORKERS for Byline (default {WORKERS}: this machine's cores)")
    args = parser.parse_args(argv)
    found = asyncio.run(bench(
        seconds=args.seconds, connections=[int(c) for c in args.connections.split(",")],
        accounts=args.accounts, databases=[d.strip() for d in args.databases.split(",")], profile=args.profile,
        on_cpu=args.on_cpu, workers=args.workers,
    ))
    print(summary(found))
    return 0 if all(v.met for v in found) else 1


if __name__ == "__main__":
    sys.exit(main())
