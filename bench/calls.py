"""What a post costs, counted rather than timed: function calls a post, Byline against the proxy.

``python -m bench.calls [--seconds S] [--connections N] [--database sqlite|postgresql] [--top K]
[--functions N]``

Benchmark 1 (``bench/direct.py``) times Byline against a bare pass-through proxy, and its
figures drift with whatever else the machine runs: other work on the cores moves both sides,
and not by the same amount. What limits Byline there is its CPU a post, spread thin over every
part of a post. This says what that CPU is made of in a figure that does not drift: the calls
of Python and C functions the process makes for each post that reaches the platform.

The same stand-in and proxy as benchmark 1, and ``byline serve`` with one worker, each run under
the standard library's deterministic profiler (``cProfile``, ``python -m bench.calls child``).
After a warm-up each is told (SIGUSR1) to write what it has counted so far; then the same wrk
load as benchmark 1, until Byline's backlog has reached the stand-in, and each writes again.
The difference between the two, over the posts that reached the stand-in meanwhile, is the
calls a post: startup and first use (imports, compiled patterns, policies read) fall out, as do
the profiler's own timings, which are inflated and drift as any timing does. Batch sizes vary
with the load, so the figure varies a little from run to run; it does not vary with the
machine. It prints the two figures, their ratio, and where Byline's calls go, by package;
with ``--functions N``, also the N functions Byline called most a post (``file:line name`` for
Python's, the name alone for C's), to see which of them a change should take out.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import pstats
import runpy
import signal
import sys
import sysconfig
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import aiohttp

from bench import direct
from bench.postgres import POSTGRES_ADMIN, scratch_database

SNAPSHOT_SECONDS = 30.0
"""How long a process has to write what it has counted once told to."""


# -- in the profiled process --------------------------------------------------------------------------


def child(prefix: str, module: str, args: Sequence[str]) -> None:
    """Run ``module`` as ``python -m module args`` under cProfile; on each SIGUSR1, write the
    counts so far to ``prefix.0``, ``prefix.1``, … and go on counting."""
    profiler = cProfile.Profile()
    snapshots = itertools.count()

    def snapshot(signum: int, frame: FrameType | None) -> None:
        profiler.disable()
        try:
            path = Path(f"{prefix}.{next(snapshots)}")
            profiler.dump_stats(f"{path}.part")
            Path(f"{path}.part").rename(path)  # whole, or not there: the parent waits for the name
        finally:
            profiler.enable()

    signal.signal(signal.SIGUSR1, snapshot)
    sys.argv = [module, *args]
    profiler.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        profiler.disable()


# -- counting --------------------------------------------------------------------------------------


def _package(filename: str) -> str:
    """Who a function belongs to: Byline's own (``gateway/services``, ``adapters``), a
    library's (its top-level package), the standard library, or ``C`` for functions written in
    C (built-ins and extension modules' methods, which the profiler names without a file)."""
    if filename == "~" or filename.startswith("<"):
        return "C" if filename == "~" else "standard library"
    path = Path(filename)
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            rest = parts[parts.index(marker) + 1:]
            return rest[0].removesuffix(".py").split("-")[0] if rest else marker
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if path.is_relative_to(stdlib):
        return "standard library"
    root = Path(__file__).resolve().parent.parent
    if path.is_relative_to(root):
        mine = path.relative_to(root).parts
        return "/".join(mine[:2]) if mine[0] == "gateway" and len(mine) > 2 else mine[0]
    return str(path.parent)


def _function(filename: str, line: int, name: str) -> str:
    """A function as the list names it: ``gateway/services/posts.py:120 submit`` for Byline's,
    ``aiohttp/web_protocol.py:330 data_received`` for a library's (the path from its package
    on), the path within the standard library for the standard library's, and the profiler's
    own name for a C function (``<method 'get' of 'dict' objects>``), which has no file."""
    if filename == "~":
        return name
    path = Path(filename)
    parts = path.parts
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return f"{'/'.join(parts[parts.index(marker) + 1:])}:{line} {name}"
    for root in (Path(__file__).resolve().parent.parent, Path(sysconfig.get_paths()["stdlib"])):
        if path.is_relative_to(root):
            return f"{path.relative_to(root).as_posix()}:{line} {name}"
    return f"{filename}:{line} {name}"


Function = tuple[str, int, str]
"""A function as the profiler keys it: its file (``~`` for C), its first line, its name."""


def counted(before: Path, after: Path) -> Counter[Function]:
    """Calls by function made between two snapshots of one process."""
    then = pstats.Stats(str(before)).stats  # type: ignore[attr-defined]
    now = pstats.Stats(str(after)).stats  # type: ignore[attr-defined]
    calls: Counter[Function] = Counter()
    for key, (_, ncalls, *_rest) in now.items():
        old = then.get(key)
        calls[key] = ncalls - (old[1] if old is not None else 0)
    return +calls  # those called meanwhile


@dataclass(frozen=True, kw_only=True)
class Side:
    """One target's calls over one load."""

    functions: Counter[Function]
    posts: int

    @property
    def calls(self) -> Counter[str]:
        """Its calls by whose function was called (``_package``)."""
        packages: Counter[str] = Counter()
        for (filename, _, _), n in self.functions.items():
            packages[_package(filename)] += n
        return packages

    @property
    def per_post(self) -> float:
        """All its calls, over the posts that reached the stand-in."""
        return self.functions.total() / self.posts if self.posts else 0.0


class _Profiled(direct.Process):
    """A child process run under ``child``, told to write its counts on demand."""

    def __init__(self, module_args: Sequence[str], *, log: Path, prefix: Path, env: dict[str, str] | None = None,
                 port_pattern: str = r"^port (\d+)$") -> None:
        super().__init__([sys.executable, "-m", "bench.calls", "child", str(prefix), *module_args],
                         log=log, env=env, port_pattern=port_pattern)
        self._prefix = prefix
        self._taken = 0

    async def snapshot(self) -> Path:
        """Tell it to write its counts; the file, once written whole."""
        path = Path(f"{self._prefix}.{self._taken}")
        self._taken += 1
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + SNAPSHOT_SECONDS
        while not await asyncio.to_thread(path.exists):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.log.name}: no counts written:\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.05)
        return path


async def _side(session: aiohttp.ClientSession, standin: direct.Process, target: _Profiled, tokens: Path, *,
                connections: int, seconds: float, drain: bool) -> Side:
    await direct.measure(session, standin, target.base, tokens, connections=4, seconds=1,
                         wait_drain=10 if drain else None)
    before = await target.snapshot()
    start = await direct._count(session, standin)
    await direct.measure(session, standin, target.base, tokens, connections=connections, seconds=seconds,
                         wait_drain=30 if drain else None)
    posts = await direct._count(session, standin) - start
    return Side(functions=counted(before, await target.snapshot()), posts=posts)


async def measure(database_url: str, workdir: Path, *, seconds: float, connections: int,
                  accounts: int = direct.ACCOUNTS) -> tuple[Side, Side]:
    """The proxy's calls a request and Byline's calls a post, under the same load."""
    policy_dir = workdir / "policies"
    processes: list[direct.Process] = []
    try:
        instance_tokens = direct.write_policies(policy_dir, accounts=accounts, instance="http://127.0.0.1:1")
        tokens_path = workdir / "standin-tokens.json"
        tokens_path.write_text(json.dumps(instance_tokens))
        standin = direct._helper("standin", str(tokens_path), log=workdir / "standin.log")
        processes.append(standin)
        await standin.started()
        direct.write_policies(policy_dir, accounts=accounts, instance=standin.base)
        proxy = _Profiled(["bench.direct", "proxy", standin.base], log=workdir / "proxy.log",
                          prefix=workdir / "proxy.prof")
        processes.append(proxy)
        await proxy.started()

        env, byline_tokens = await direct.prepare_byline(workdir, database_url=database_url, policy_dir=policy_dir,
                                                         accounts=accounts, workers=1)
        byline = _Profiled(["gateway", "serve"], log=workdir / "serve.log", prefix=workdir / "byline.prof",
                           env=env, port_pattern=direct.BYLINE_STARTED)
        processes.append(byline)
        await byline.started()

        proxy_file, byline_file = direct.token_files(workdir, instance_tokens, byline_tokens)
        async with aiohttp.ClientSession() as session:
            bare = await _side(session, standin, proxy, proxy_file, connections=connections, seconds=seconds,
                               drain=False)
            mine = await _side(session, standin, byline, byline_file, connections=connections, seconds=seconds,
                               drain=True)
        return bare, mine
    finally:
        for process in reversed(processes):
            process.stop()


def report(bare: Side, mine: Side, *, top: int, functions: int = 0) -> list[str]:
    """The two figures, their ratio, and where Byline's calls go: by package (the ``top`` with
    half a call a post or more), and the ``functions`` it called most a post."""
    lines = [
        f"  bare proxy  {bare.per_post:7,.0f} calls a request  ({bare.posts:,} posts reached the stand-in)",
        f"  Byline      {mine.per_post:7,.0f} calls a post     ({mine.posts:,} posts reached the stand-in)",
        f"  Byline / proxy: {mine.per_post / bare.per_post:.1f}" if bare.per_post else "  (the proxy carried nothing)",
        "  Byline's calls a post, by whose function was called:",
    ]
    for package, calls in mine.calls.most_common(top):
        if mine.posts and calls / mine.posts >= 0.5:
            lines.append(f"    {calls / mine.posts:7,.1f}  {package}")
    if functions and mine.posts:
        lines.append(f"  Byline's {functions} functions called most a post:")
        for key, calls in mine.functions.most_common(functions):
            lines.append(f"    {calls / mine.posts:7,.1f}  {_function(*key)}")
    return lines


async def bench(*, database: str, seconds: float, connections: int, top: int, functions: int = 0) -> list[str]:
    """One measurement on ``database``; the report's lines."""
    direct.ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="byline-bench-calls-") as tmp:
        workdir = Path(tmp)
        if database == "sqlite":
            bare, mine = await measure(f"sqlite:///{workdir / 'byline.db'}", workdir, seconds=seconds,
                                       connections=connections)
        else:
            async with scratch_database("bench_calls") as url:
                if url is None:
                    return [f"calls a post on PostgreSQL: skipped, none answers at {POSTGRES_ADMIN}"]
                bare, mine = await measure(url, workdir, seconds=seconds, connections=connections)
    head = f"calls a post on {'SQLite' if database == 'sqlite' else 'PostgreSQL'}, {connections} connections, " \
           f"{seconds:g} s, Byline with one worker:"
    return [head, *report(bare, mine, top=top, functions=functions)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.calls``: see the module's docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["child"]:
        child(argv[1], argv[2], argv[3:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the load runs (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk's connections (default 64)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--top", type=int, default=25, help="packages listed (default 25)")
    parser.add_argument("--functions", type=int, default=0, metavar="N",
                        help="also list the N functions Byline called most a post (default none)")
    args = parser.parse_args(argv)
    for line in asyncio.run(bench(database=args.database, seconds=args.seconds, connections=args.connections,
                                  top=args.top, functions=args.functions)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
