"""What every benchmark reports: each target it has, what it measured against it, and whether
it was met. ``python -m bench`` prints them together at the end of a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One target of one benchmark, as measured in this run."""

    benchmark: str
    """Which benchmark and which case: ``direct tier, SQLite, 64 connections``."""
    measured: str
    """The figure, with what it is a ratio of: ``0.62 (Byline 2,480 posts/s; bare proxy 4,000/s)``."""
    target: str
    """The target in words: ``ratio >= 0.5``."""
    met: bool
    ran: bool = True
    """False when the benchmark could not run here (its module not written yet, no PostgreSQL):
    then ``measured`` says why, and the target counts as neither met nor missed."""


def summary(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as a table, and how many targets were met."""
    lines = ["", "targets:"]
    width = max((len(v.benchmark) for v in verdicts), default=0)
    for v in verdicts:
        said = "not run" if not v.ran else "met    " if v.met else "NOT met"
        lines.append(f"  {said}  {v.benchmark:<{width}}  {v.measured}  (target {v.target})")
    met = sum(v.met and v.ran for v in verdicts)
    skipped = sum(not v.ran for v in verdicts)
    lines.append(f"{met} of {len(verdicts)} targets met" + (f", {skipped} not run" if skipped else ""))
    return "\n".join(lines)
