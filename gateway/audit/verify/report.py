"""What a verification found: its findings, its counts, and the summary people read."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from gateway.audit.note import Checkpoint


class SourceError(Exception):
    """The entries could not be read at all (no such file, server unreachable, bad format)."""


@dataclass(frozen=True, order=True)
class Finding:
    """One thing that does not hold; ``index`` is the entry it concerns, if any."""

    index: int | None
    message: str

    def __str__(self) -> str:
        return self.message if self.index is None else f"entry {self.index}: {self.message}"


@dataclass
class Report:
    """What ``verify`` found."""

    source: str
    size: int = 0
    checkpoint: Checkpoint | None = None
    checkpoints_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    texts_checked: int = 0
    texts_erased: int = 0
    texts_withheld: int = 0
    posts: int = 0
    unsigned: int = 0
    tiles_checked: int | None = None
    """Hash tiles compared with the entries; None when the source publishes none (an export)."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether everything held."""
        return not self.findings

    def first_bad_entry(self) -> Finding | None:
        """The finding about the lowest entry index, if any finding names an entry."""
        named = [f for f in self.findings if f.index is not None]
        # The first found among those about the lowest index: the most direct evidence.
        return min(named, key=lambda f: f.index or 0) if named else None

    def summary(self) -> str:
        """A few lines for people."""
        rate = self.size / self.seconds if self.seconds else 0.0
        cp = self.checkpoint
        lines = []
        if self.ok and self.unsigned and cp is not None:
            # Checked, but no signature covers them: an auditor reading a bare "ok" would take
            # every entry for signed. Normal between checkpoints, so not a failure by default.
            lines.append(
                f"ok, but {self.unsigned} {'entry is' if self.unsigned == 1 else 'entries are'} NOT yet signed: "
                f"the first {cp.size} verified against {self.source} are under its signed checkpoint; "
                f"{_entries(cp.size, self.size)} after it: checked, but no signature covers "
                f"{'it' if self.unsigned == 1 else 'them'} yet"
            )
            lines.append("  (normal between checkpoints: verify again after the next one, or pass "
                         "--require-signed to fail them)")
        elif self.ok:
            lines.append(f"ok: {self.size} entries verified against {self.source}, all under its signed checkpoint")
        else:
            first = self.first_bad_entry()
            head = f"first bad entry: {first}" if first else str(sorted(self.findings, key=_order)[0])
            lines.append(f"FAILED: {head}")
            for finding in sorted(self.findings, key=_order)[:20]:
                lines.append(f"  - {finding}")
            if len(self.findings) > 20:
                lines.append(f"  … and {len(self.findings) - 20} more")
        if cp is not None:
            root = base64.b64encode(cp.root_hash).decode()
            lines.append(f"checkpoint: {cp.origin} size {cp.size} root {root}")
        lines.append(
            f"{self.checkpoints_checked} checkpoint(s) checked; {self.posts} posts replayed; "
            f"{self.texts_checked} texts checked, {self.texts_erased} erased, "
            f"{self.texts_withheld} withheld from the public; "
            f"{self.unsigned} entries not yet under a checkpoint"
            + ("" if self.tiles_checked is None else f"; {self.tiles_checked} published tiles checked")
        )
        lines.append(f"{self.seconds:.2f} s, {rate:,.0f} entries/s")
        return "\n".join(lines)


def _entries(start: int, end: int) -> str:
    """Entries ``start <= index < end``, in words."""
    return f"entry {start} comes" if end - start == 1 else f"entries {start}–{end - 1} come"


def _order(finding: Finding) -> int:
    return -1 if finding.index is None else finding.index
