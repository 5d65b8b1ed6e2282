"""What the log writer stores, and what it asks of the appender's sequencer.

A batch's works, run by the sequencer (``gateway.audit.sequencer``), come out as
:class:`Sequenced`: the rows their entries and committed texts add to ``log_entries`` and
``log_texts``, numbered from the tree's size. The tree's new nodes are hashed by the sequencer
too (:class:`TreeGrowth`); storage only stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class PendingEntry(NamedTuple):
    """A log entry sequenced but not yet stored: a row of ``log_entries``, its columns in order.

    A named tuple rather than a frozen dataclass: one is built for every entry appended, and
    the SQLite writer binds it as the row it is, with no copy (building a frozen slots
    dataclass of eight fields costs about 1.5 µs against 0.5 µs, on an append of about 10 µs).
    """

    idx: int
    leaf_hash: bytes
    entry: bytes
    type: str
    chain: str | None
    post_id: str | None
    account: str | None
    ts: int


class PendingText(NamedTuple):
    """A committed text kept beside the log: a row of ``log_texts``, its columns in order."""

    idx: int
    """The index of the entry whose ``data["text_hash"]`` carries the commitment."""
    text_hash: str
    salt: bytes
    text: str


@dataclass(frozen=True, slots=True)
class Tree:
    """The tree as stored: its size, and its right edge (``merkle.CompactRange.to_bytes``)."""

    size: int
    frontier: bytes


@dataclass(frozen=True, slots=True)
class TreeGrowth:
    """The tree after a batch's entries: what the log writer stores for it."""

    tree: Tree
    root: bytes
    nodes: list[tuple[int, int, bytes]]
    """The perfect subtrees the batch completed on the stored levels: (level, index, hash)."""


@dataclass(frozen=True, slots=True)
class Sequenced:
    """A batch's works, run: what they logged, numbered from the size of the tree they ran on."""

    entries: list[PendingEntry]
    texts: list[PendingText]


class RunAgain(Exception):
    """Raised by the sequencer when a work of the batch failed (it noted which): the batch is
    rolled back and run again without that work."""
