"""The log writer's interface: what it stores, and what it asks of the queue and the sequencer.

A :class:`LogWriter` runs the appender's batches in write transactions, one implementation
per database. It takes a batch from a :class:`BatchQueue`, has a :class:`BatchSequencer` run
its works in the transaction (``gateway.audit.sequencer``), and then asks the :class:`Run` for
what they logged, :class:`Sequenced`: the rows the batch's entries and committed texts add to
``log_entries`` and ``log_texts``, numbered from the tree's size. The sequencer also hashes the
tree's new nodes (:class:`TreeGrowth`); storage only stores them. Once the transaction is known to have
committed, or to have failed, the writer has the queue answer the batch's callers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from gateway.storage.db import Row, Txn

INSERT_ENTRIES = (
    "INSERT INTO log_entries (idx, leaf_hash, entry, type, chain, post_id, account, actor, ts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_TEXTS = "INSERT INTO log_texts (idx, text_hash, salt, text) VALUES (?, ?, ?, ?)"
INSERT_NODES = "INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)"
SAVE_STATE = "UPDATE log_state SET size = ?, root = ?, frontier = ? WHERE id = 1"


EntryRow = tuple[int, bytes, bytes, str, str | None, str | None, str | None, str, int]
"""A row of ``log_entries``: idx, leaf_hash, entry, type, chain, post_id, account, actor, ts."""
TextRow = tuple[int, str, bytes, str]
"""A row of ``log_texts``: idx, text_hash, salt, text."""


EntryDetails = tuple[str, str | None, str | None, str | None, str]
"""What one entry records besides its bytes, as ``log_entries`` keeps it beside them: type,
chain, post_id, account, actor."""


@dataclass(frozen=True, slots=True)
class PendingEntries:
    """Log entries sequenced but not yet stored: the rows a batch adds to ``log_entries``.
    They are numbered from ``first`` on, and share the batch's time ``ts``.

    Each entry's leaf hash and bytes in a column of their own (the sequencer links entries in
    place, and the tree grows by the leaves), the rest in a tuple an entry (``details``): one
    append an entry where it was one a column, and the columns are made once a batch. Plain
    tuples rather than an object an entry: such an object (a dataclass, a named tuple) stays
    tracked by the garbage collector, which walks it at every collection while its batch
    lives, where a tuple of plain values is let go at the first; measured on the appender's
    hot path, an object an entry cost about 0.5 µs of an append's 6 µs, the tuples nothing.
    """

    first: int
    ts: int
    leaf_hashes: list[bytes] = field(default_factory=list)
    entries: list[bytes] = field(default_factory=list)
    """Each entry's bytes, as logged."""
    details: list[EntryDetails] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.leaf_hashes)

    def _column(self, n: int) -> list[Any]:
        return [d[n] for d in self.details]

    @property
    def types(self) -> list[str]:
        """Each entry's type."""
        return self._column(0)

    @property
    def chains(self) -> list[str | None]:
        """Each entry's chain (``sequencer.post_chain`` for a post's)."""
        return self._column(1)

    @property
    def post_ids(self) -> list[str | None]:
        """Each entry's post."""
        return self._column(2)

    @property
    def accounts(self) -> list[str | None]:
        """Each entry's account."""
        return self._column(3)

    @property
    def actors(self) -> list[str]:
        """Who did what each entry records (its ``actor``): the audit page finds a person's acts by it."""
        return self._column(4)

    def rows(self) -> list[EntryRow]:
        """The rows, their columns in the order of ``INSERT_ENTRIES``."""
        n = len(self.leaf_hashes)
        return [(idx, leaf, entry, *details, self.ts) for idx, leaf, entry, details in
                zip(range(self.first, self.first + n), self.leaf_hashes, self.entries, self.details, strict=True)]


@dataclass(frozen=True, slots=True)
class PendingTexts:
    """Committed texts to keep beside the log: the rows a batch adds to ``log_texts``, a tuple
    a text (see :class:`PendingEntries`)."""

    texts: list[TextRow] = field(default_factory=list)
    """Each text's row: the index of the entry whose ``data["text_hash"]`` carries its
    commitment, the commitment, its salt and the text."""

    def __len__(self) -> int:
        return len(self.texts)

    def columns(self) -> tuple[list[int], list[str], list[bytes], list[str]]:
        """The rows' columns, in the order of ``INSERT_TEXTS``."""
        return ([t[0] for t in self.texts], [t[1] for t in self.texts], [t[2] for t in self.texts],
                [t[3] for t in self.texts])

    def rows(self) -> list[TextRow]:
        """The rows, their columns in the order of ``INSERT_TEXTS``."""
        return list(self.texts)


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

    entries: PendingEntries
    texts: PendingTexts


def tree_of(rows: list[Row]) -> Tree:
    """The tree in the state row a writer read (``log_sql.STATE``)."""
    assert rows, "log_state row missing: migrations did not run"
    return Tree(int(rows[0]["size"]), bytes(rows[0]["frontier"]))


class RunAgain(Exception):
    """Raised by the sequencer when a work of the batch failed (it noted which): the batch is
    rolled back and run again without that work."""


B = TypeVar("B")
B_contra = TypeVar("B_contra", contravariant=True)


class BatchQueue(Protocol[B]):
    """Where a log writer takes its batches of works from, and whom it tells how each went."""

    def waiting(self) -> bool:
        """Whether works are waiting (then a writer may go on to the next batch at once)."""
        ...

    def take(self) -> B:
        """The next batch of works."""
        ...

    def answer(self, batch: B) -> None:
        """The batch has committed: answer its callers."""
        ...

    def fail(self, batch: B, exc: BaseException) -> None:
        """The batch did not commit (or the gateway is stopping): tell its callers."""
        ...


class Run(Protocol):
    """A batch's works, run in the writer's transaction (:meth:`BatchSequencer.sequence`)."""

    async def logged(self) -> Sequenced:
        """What they logged. It takes one more query in the transaction (the last entries of the
        chains the batch continues), so a writer asks once it knows the transaction holds."""
        ...


class BatchSequencer(Protocol[B_contra]):
    """What runs a batch's works in the writer's transaction and hashes the tree."""

    async def sequence(self, batch: B_contra, txn: Txn, tree: Tree) -> Run:
        """Run the batch's works (but those that failed before) in ``txn`` on ``tree``; raise
        :class:`RunAgain` when one fails."""
        ...

    def grow(self, tree: Tree, entries: PendingEntries) -> TreeGrowth:
        """The tree extended by the entries: its new nodes to store, its root."""
        ...

    def restart(self, batch: B_contra) -> None:
        """The batch is to run again from the start, the tree under it having changed."""
        ...

    def forget(self) -> None:
        """The tree may not be what the sequencer last saw: drop what it remembers of it."""
        ...


class LogWriter(Protocol):
    """Stores the log: runs batches of works in write transactions and writes what they logged;
    one implementation per database (``log_writer`` chooses)."""

    async def run(self, queue: BatchQueue[B], sequencer: BatchSequencer[B]) -> None:
        """Write at least one batch from ``queue`` (which has works waiting), and have each
        answered once its transaction is known to have committed or failed. A failed batch
        is the queue's to report; only what is no ``Exception`` (cancellation) is raised."""
        ...
