"""The direct-tier benchmark (``bench/direct.py``) runs end to end at a tiny size, so that it
cannot rot between ``make bench`` runs: the stand-in, the bare proxy and ``byline serve`` start,
wrk posts through both, and every post Byline accepted reaches the stand-in. No figure is
asserted (a benchmark is not a test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench import direct


def test_direct_bench_runs_and_loses_nothing(tmp_path: Path) -> None:
    """Two accounts, two connections, one second a side on SQLite: posts reach the stand-in
    through the proxy and through Byline, none lost, and the two SQLite verdicts come out."""
    direct.ensure_wrk()  # `make test` installs it; a bare pytest run, here
    said: list[str] = []
    points = asyncio.run(direct.run_database(
        "SQLite", f"sqlite:///{tmp_path / 'byline.db'}", seconds=1, connections=[2], accounts=2,
        workdir=tmp_path, say=said.append,
    ))
    [point] = points
    assert (point.proxy.reached > 0, point.byline.accepted > 0, point.lost) == (True, True, 0), said
    assert point.byline.reached + point.byline.drained >= point.byline.accepted
    assert [v.benchmark for v in direct.verdicts(points)] == [
        "direct tier, SQLite, 2 connections", "direct tier, SQLite, 2 connections, p99 added"]
