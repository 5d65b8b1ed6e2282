"""The scheduler benchmark (bench/scheduler.py) runs end to end at a tiny size, so it cannot rot.

No figure is checked: a benchmark's timings are not a test's business.
"""

from __future__ import annotations

from pathlib import Path

from bench.scheduler import measure, verdicts


async def test_scheduler_benchmark_runs(tmp_path: Path) -> None:
    """A hundred delayed posts due within a second go out through a real `byline serve`, and the
    run gives its two verdicts, lag and memory."""
    outcome = await measure(posts=100, folder=tmp_path, spread=1.0, margin=2.0, say=lambda _: None, wait_at_most=60)
    assert (outcome.posts, outcome.published, len(outcome.lags)) == (100, 100, 100)
    assert outcome.rss_before > 0 and outcome.rss_peak >= outcome.rss_before
    found = verdicts(outcome, label="SQLite")
    assert [v.benchmark.rsplit(": ", 1)[1] for v in found] == ["publish lag", "gateway memory"]
