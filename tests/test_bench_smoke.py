"""The benchmarks' code runs, at tiny sizes, so that it cannot rot between ``make bench`` runs.

No figure is asserted (benchmarks are not tests): only that each runs to its verdicts, that the
approvals benchmark finds nothing lost, and that ``python -m bench`` says a missing benchmark
was not run instead of met.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import append, approvals, verify
from bench.report import Verdict, summary


def test_append_runs(tmp_path: Path) -> None:
    """The append benchmark runs one small round and gives its one verdict."""
    with contextlib.redirect_stdout(io.StringIO()):
        found = append.run(["--events", "600", "--rounds", "1", "--in-flight", "16", "--dir", str(tmp_path)])
    assert [v.benchmark for v in found] == ["append, SQLite"]


def test_verify_runs(tmp_path: Path) -> None:
    """The verify benchmark builds, exports and verifies a small log, and its baseline reads
    every entry of the export (else its verdict would say it failed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        found = verify.run(["--events", "600", "--rounds", "1", "--dir", str(tmp_path)])
    assert len(found) == 1
    assert "failed" not in found[0].measured, out.getvalue()


def test_verify_baseline_counts_every_entry(tmp_path: Path) -> None:
    """The baseline parses and leaf-hashes every entry line of an export, on one process or two."""
    import asyncio

    export = asyncio.run(verify._build(300, tmp_path))
    assert verify.baseline(export, workers=1) == 300
    assert verify.baseline(export, workers=2) == 300


def test_approvals_runs_and_loses_nothing(db_url: str, tmp_path: Path) -> None:
    """Approvals of a few co-signed posts, racing, on each database: each counted once. On
    PostgreSQL in the test's own schema, emptied between rounds, rather than a database made
    and dropped: a dropped database waits for the server's checkpoint, a minute and more
    while the other tests write."""
    backend = "postgresql" if db_url.startswith("postgres") else "sqlite"
    argv = ["--posts", "30", "--concurrency", "8", "--on", backend, "--dir", str(tmp_path)]
    if backend == "postgresql":
        argv += ["--postgres-database", db_url]
    with contextlib.redirect_stdout(io.StringIO()):
        found = approvals.run(argv)
    lost = [v for v in found if v.benchmark.endswith("lost updates")]
    assert len(found) == 2
    assert lost[0].met, lost[0].measured


def test_missing_benchmark_is_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A benchmark whose module is not there is reported as not run, never as met."""
    monkeypatch.setattr(bench_main, "_module", lambda name: None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        found, failed = bench_main.run_all(argparse.Namespace(
            only=["direct"], quick=True, rounds=None, seconds=None))
    assert (failed, [(v.ran, v.met) for v in found]) == ([], [(False, False)])
    assert "0 of 1 targets met, 1 not run" in summary(found)
    assert "not run  direct" in summary(found)


def test_summary_counts_only_targets_met() -> None:
    """The summary says which targets were met, missed and not run."""
    said = summary([
        Verdict(benchmark="a", measured="1", target="x", met=True),
        Verdict(benchmark="b", measured="0", target="x", met=False),
        Verdict(benchmark="c", measured="not run", target="x", met=True, ran=False),
    ])
    assert said.splitlines()[-1] == "1 of 3 targets met, 1 not run"
