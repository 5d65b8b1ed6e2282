"""The run of a verification: read the checkpoints, have the runs of entries checked (in worker
processes when asked), join them in log order (the tree's right edge, the links between runs,
the rules replay), and compare the tree with every checkpoint seen."""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit import merkle, tiles
from gateway.audit.note import Checkpoint, NoteError, Verifier, open_checkpoint
from gateway.audit.replay import DUE_GRACE_SECONDS, POLICY_GRACE_SECONDS, Replay
from gateway.audit.verify.chunk import Chunk, link_problem
from gateway.audit.verify.pool import Workers
from gateway.audit.verify.report import Finding, Report, SourceError
from gateway.audit.verify.sources import Source, run_job
from gateway.audit.verify.state import read_state, write_state
from gateway.audit.verify.tree import Frontier, tile_level_above


def load_key(value: str) -> Verifier:
    """A verifier key given as text, or as the path of a file holding it."""
    text = value.strip()
    if "+" not in text or Path(text).exists():
        try:
            text = Path(text).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SourceError(f"cannot read the key file {value}: {exc.strerror}") from None
    try:
        return Verifier.from_text(text)
    except NoteError as exc:
        raise SourceError(f"not a verifier key: {exc}") from None


def verify(
    source: Source,
    key: Verifier,
    *,
    state_path: Path | None = None,
    workers: int = 1,
    progress: bool = False,
    max_findings: int = 100,
    policy_grace: float = POLICY_GRACE_SECONDS,
    due_grace: float = DUE_GRACE_SECONDS,
    require_signed: bool = False,
) -> Report:
    """Verify the log ``source`` offers against the log ``key``; update the state file if sound.
    ``policy_grace``: the seconds after a policy change during which an action may still name
    the policy replaced (see :data:`gateway.audit.replay.POLICY_GRACE_SECONDS`).
    ``due_grace``: how many seconds before the time the log last said a post was due its claim
    may be, and after its hold's deadline an approval (see
    :data:`gateway.audit.replay.DUE_GRACE_SECONDS`).
    ``require_signed``: entries after the latest checkpoint, which no signature covers yet, are
    a finding (otherwise they are counted, and the summary says so)."""
    # A run builds millions of small objects, many of which live until it ends (the replay's
    # state, the tree's leaves), and makes no reference cycles: the cyclic collector would only
    # walk them again and again (a third of the main process's time on a large log). The
    # worker processes, forked, inherit this.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _verify(source, key, state_path=state_path, workers=workers, progress=progress,
                       max_findings=max_findings, policy_grace=policy_grace, due_grace=due_grace,
                       require_signed=require_signed)
    finally:
        if collecting:
            gc.enable()


@dataclass
class _Seen:
    """A checkpoint the tree must match, its note, and where it was found (for findings)."""

    checkpoint: Checkpoint
    note: bytes
    where: str


def _verify(
    source: Source, key: Verifier, *, state_path: Path | None, workers: int, progress: bool, max_findings: int,
    policy_grace: float, require_signed: bool, due_grace: float = DUE_GRACE_SECONDS,
) -> Report:
    started = time.perf_counter()
    report = Report(source=source.name)
    seen, offered = _checkpoints(source, key, state_path, report)
    if not offered:
        if not report.findings:
            report.findings.append(Finding(None, "the log offers no signed checkpoint"))
        report.seconds = time.perf_counter() - started
        return report
    latest = max(offered, key=lambda s: s.checkpoint.size)
    report.checkpoint = latest.checkpoint
    before = max((s.checkpoint.size for s in seen), default=0)
    if latest.checkpoint.size < before:
        report.findings.append(Finding(
            None,
            f"the log's latest checkpoint has {latest.checkpoint.size} entries, fewer than the "
            f"{before} of a checkpoint seen before: the log was rolled back (an older copy restored?)",
        ))
    targets = seen + offered
    run = _InOrder(report, targets, max_findings, policy_grace, due_grace)
    _drive(source, run, latest.checkpoint.size, workers, progress)
    run.replay.finish()
    for index, message in run.replay.findings:
        run.bad(index, message)
    report.posts = run.replay.posts_seen
    tree_ok = _compare(run, targets, latest)
    if not tree_ok and not any(f.index is not None and "leaf hash" in f.message for f in report.findings):
        _locate(source, run, report.size)
    if tree_ok:
        _check_tiles(source, run, latest.checkpoint.size)
    report.unsigned = max(0, report.size - latest.checkpoint.size)
    if require_signed and report.unsigned:
        signed = latest.checkpoint.size
        report.findings.append(Finding(signed, (
            f"not signed: the latest checkpoint covers {signed} entries, and the {report.unsigned} after it "
            "no signature covers yet"
        )))
    if tree_ok and state_path is not None:
        notes = {s.checkpoint.size: s.note for s in seen}
        notes.update({s.checkpoint.size: s.note for s in offered})
        write_state(state_path, key, [notes[k] for k in sorted(notes)])
    report.seconds = time.perf_counter() - started
    return report


def _checkpoints(
    source: Source, key: Verifier, state_path: Path | None, report: Report
) -> tuple[list[_Seen], list[_Seen]]:
    """The checkpoints remembered in the state file, and those the log offers, that open with
    ``key``; those that do not are findings."""
    seen: list[_Seen] = []
    for note in read_state(state_path, key):
        cp = _open(note, key, "remembered in the state file", report)
        if cp is not None:
            seen.append(_Seen(cp, note, "seen before (state file)"))
    offered: list[_Seen] = []
    for note in source.checkpoints():
        cp = _open(note, key, "offered by the log", report)
        if cp is not None:
            offered.append(_Seen(cp, note, "from the log"))
    return seen, offered


def _open(note: bytes, key: Verifier, where: str, report: Report) -> Checkpoint | None:
    try:
        checkpoint, _ = open_checkpoint(note, [key], origin=key.name)
    except NoteError as exc:
        report.findings.append(Finding(None, f"checkpoint {where}: {exc}"))
        return None
    return checkpoint


def _compare(run: _InOrder, targets: list[_Seen], latest: _Seen) -> bool:
    """Compare the tree of the entries read with every checkpoint seen; whether all matched."""
    report = run.report
    size = report.size
    tree_ok = True
    for target in sorted(targets, key=lambda s: s.checkpoint.size):
        cp = target.checkpoint
        if cp.size > size:
            tree_ok = False
            if target is latest or cp.size == latest.checkpoint.size:
                report.findings.append(Finding(
                    size, f"missing: the signed checkpoint covers {cp.size} entries but the log "
                    f"holds only {size}",
                ))
            else:
                report.findings.append(Finding(
                    None, f"a checkpoint of {cp.size} entries was {target.where}, but the log "
                    f"holds only {size}: entries were removed or an older copy restored",
                ))
            continue
        report.checkpoints_checked += 1
        if run.roots.get(cp.size) != cp.root_hash:
            tree_ok = False
            report.findings.append(Finding(
                None, f"the first {cp.size} entries do not give the root of the checkpoint "
                f"{target.where} (size {cp.size}): the log is not consistent with it",
            ))
    return tree_ok


def _locate(source: Source, run: _InOrder, size: int) -> None:
    """Name the first entry whose bytes do not hash to the leaf the log stored for it."""
    stored = source.stored_leaf_hashes(0, size)
    if not stored:
        return
    for index, leaf in enumerate(stored):
        mine = bytes(run.leaves[index * 32 : index * 32 + 32])
        if mine != leaf:
            run.report.findings.append(
                Finding(index, "leaf hash does not match entry bytes (the log stored another)")
            )
            return


def _check_tiles(source: Source, run: _InOrder, size: int) -> None:
    """Compare every hash tile the log publishes for its signed tree with the hashes of the
    entries read. The log's proofs (to readers' browsers, in tlog-proof bundles) are made of the
    same stored hashes as its tiles: entries that give the signed root say nothing of those."""
    published = source.hash_tiles(size)
    if published is None:
        return
    report = run.report
    report.tiles_checked = 0
    layers = [bytes(run.leaves[: size * 32])]
    for level, index, width, got in published:
        while len(layers) <= level:
            layers.append(tile_level_above(layers[-1]))
        url = tiles.tile_url(level, index, width)
        first = index * tiles.WIDTH
        want = layers[level][first * 32 : (first + width) * 32]
        report.tiles_checked += 1
        if isinstance(got, str):
            run.bad(None, f"the log publishes no tile {url} for its signed tree: {got}")
        elif len(got) != len(want):
            run.bad(None, f"the log's tile {url} holds {len(got)} bytes where its width says {width * 32}")
        elif got != want:
            k = next(k for k in range(width) if got[k * 32 : k * 32 + 32] != want[k * 32 : k * 32 + 32])
            if level == 0:
                run.bad(first + k, f"the log's tile {url} holds another leaf hash for this entry than its "
                        "bytes give: the log's proofs of it do not hold")
            else:
                span = 1 << (tiles.HEIGHT * level)
                start = (first + k) * span
                run.bad(None, f"the log's tile {url}: hash {k} is not that of entries {start}–{start + span - 1}: "
                        "the log's proofs through it do not lead to its signed root")


def _drive(source: Source, run: _InOrder, size: int, workers: int, progress: bool) -> None:
    """Have every run of entries checked, in this process or on ``workers``, and joined in order."""
    bar: Any = None
    if progress and size >= 50_000:  # a bar only where it is worth watching
        from tqdm import tqdm

        bar = tqdm(total=size or None, unit=" entries", unit_scale=True, file=sys.stderr,
                   mininterval=0.5, desc="verifying")
    tick: Callable[[int], None] = bar.update if bar is not None else (lambda _: None)
    try:
        if workers <= 1:
            for job in source.jobs(size):
                chunk = run_job(job)
                run.take(chunk)
                tick(chunk.count)
            return
        with Workers(workers) as pool:
            for chunk in pool.map(source.jobs(size), ahead=2):
                run.take(chunk)
                tick(chunk.count)
    finally:
        if bar is not None:
            bar.close()


class _InOrder:
    """The in-order part of a verification: tree, chains, replay."""

    def __init__(
        self, report: Report, targets: list[_Seen], max_findings: int, policy_grace: float,
        due_grace: float = DUE_GRACE_SECONDS,
    ) -> None:
        self.report = report
        self.tree = Frontier()
        self.leaves = bytearray()
        self.chains: dict[str, int] = {}  # the index of each chain's last entry so far
        self.replay = Replay(policy_grace=policy_grace, due_grace=due_grace)
        self.roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        self.wanted = {s.checkpoint.size for s in targets}
        self.max_findings = max_findings
        self.entry_findings = 0
        self.misplaced = False

    def bad(self, index: int | None, message: str) -> None:
        """Report a finding, up to ``max_findings`` of them (all are counted)."""
        if self.entry_findings < self.max_findings:
            self.report.findings.append(Finding(index, message))
        self.entry_findings += 1

    def take(self, chunk: Chunk) -> None:
        """Take the next run of entries, in log order."""
        report = self.report
        first = report.size
        for offset, message in chunk.findings:
            self.bad(first + offset, message)
        report.texts_checked += chunk.texts_checked
        report.texts_erased += chunk.texts_erased
        report.texts_withheld += chunk.texts_withheld
        claimed = chunk.claimed
        if not self.misplaced and chunk.count and (claimed is not None or chunk.start != first):
            if claimed is None:
                assert chunk.start is not None
                claimed = list(range(chunk.start, chunk.start + chunk.count))
            for offset, index in enumerate(claimed):
                if index != first + offset:
                    # Reported once: after one missing or moved entry, every later one is off too.
                    self.misplaced = True
                    self.bad(first + offset, f"out of order or missing: the entry in this place "
                             f"says it is entry {index}")
                    break
        self._grow(chunk, first)
        leaves = self.leaves
        leaves += chunk.leaves
        chains = self.chains
        spans, link_leaves = chunk.spans, chunk.link_leaves
        for n, (chain, first_at, last_at, named) in enumerate(
            zip(chunk.chains, spans[0::2], spans[1::2], chunk.named, strict=True)
        ):
            before = chains.get(chain)  # the index of the chain's last entry so far
            if before != named or (
                before is not None and link_leaves[32 * n : 32 * n + 32] != leaves[32 * before : 32 * before + 32]
            ):
                self.bad(first + first_at, link_problem(
                    chain,
                    None if before is None else (before, bytes(leaves[32 * before : 32 * before + 32])),
                    None if named is None else (named, link_leaves[32 * n : 32 * n + 32]),
                ))
            chains[chain] = first + last_at
        self.replay.feed_flat(first, chunk.facts, chunk.words, chunk.stamps, chunk.contents, chunk.dues,
                               chunk.deadlines)
        report.size = first + chunk.count

    def _grow(self, chunk: Chunk, first: int) -> None:
        leaves = chunk.leaves
        end = first + len(leaves) // 32
        cuts = sorted(s for s in self.wanted if first < s <= end)
        if not cuts and chunk.subtrees is not None and chunk.start == first:
            for level, node in chunk.subtrees:
                self.tree.add(level, node)
            return
        done = first
        for cut in cuts:
            self.tree.add_leaves(leaves[(done - first) * 32 : (cut - first) * 32])
            self.roots[cut] = self.tree.root()
            done = cut
        self.tree.add_leaves(leaves[(done - first) * 32 :])
