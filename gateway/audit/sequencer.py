"""The sequencer: runs a batch's works in its write transaction and numbers what they log.

Every change of state in the gateway is a *work*: an async function that reads and writes
through a :class:`LogTxn` and appends its events. The sequencer runs the works of a batch one
after the other in one transaction, on a tree of known size: each entry gets the next index,
is linked to the last entry of its chain and hashed as a leaf. A work that fails (a conflict,
a refused transition) is noted and :class:`RunAgain` raised, so that the batch is rolled back
and run again without it, and one caller's error never leaks into another's result. Works
must therefore touch nothing outside the transaction.

What a batch logged goes to the log writer (``gateway.storage.logwriter``) as typed pending
entries and texts, when it asks (:meth:`LogTxn.logged`); the writer asks the sequencer to grow
the tree by them (:meth:`Sequencer.grow`) when it suits it, and stores the nodes it is given.

Committed texts are kept by the index of the entry that carries their hash, so they go in
at the end of their table as the entries do.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from gateway.audit import merkle
from gateway.audit.entry import (
    MAX_ENTRY_BYTES,
    EntryTooLarge,
    entry_bytes,
    link_raw,
    linked_size,
    new_salt,
    relink_raw,
    text_commitment,
)
from gateway.audit.queue import Batch
from gateway.clock import Clock, now_micros
from gateway.storage import log as log_sql
from gateway.storage.db import Txn
from gateway.storage.logwriter.base import (
    PendingEntries,
    PendingTexts,
    RunAgain,
    Sequenced,
    Tree,
    TreeGrowth,
)
from gateway.types import iso

T = TypeVar("T")
_MAX_HEADS = 100_000
_sha256 = hashlib.sha256
_b64 = binascii.b2a_base64

Head = tuple[int, bytes]
"""The last entry of a chain: its index and leaf hash."""


def post_chain(post: str) -> str:
    """The chain of a post's entries (``append`` links each to the post's last one)."""
    return f"post:{post}"


class _Heads:
    """The last entry of each chain a sequencer wrote, valid while the tree has exactly the size
    it left it at: any other writer (a replica) moves the size and empties it."""

    __slots__ = ("at", "last")

    def __init__(self) -> None:
        self.last: dict[str, Head] = {}
        self.at = -1  # the size of the tree they were noted on

    def on(self, size: int) -> dict[str, Head]:
        """The heads known for a batch on a tree of ``size`` entries: none unless it is the size
        they were noted on."""
        if size != self.at or len(self.last) > _MAX_HEADS:
            self.last.clear()
        return self.last

    def note(self, chains: Mapping[str, Head], *, size: int) -> None:
        """Note the last entries a batch wrote, which left the tree at ``size`` entries."""
        self.last.update(chains)
        self.at = size

    def forget(self) -> None:
        """The tree may have changed: know nothing."""
        self.last.clear()
        self.at = -1


class LooseText(ValueError):
    """A work committed to a text that none of its entries carries."""


class LogTxn:
    """What a work gets: the transaction, the time of this batch, and ``append``.

    The sequencer calls :meth:`work_done` after each work, and the log writer :meth:`logged`
    once all have run and the transaction under them is known to hold.
    """

    __slots__ = (
        "_chains", "_entries", "_heads", "_known", "_loose", "_next", "_read", "_texts", "_ts", "_unresolved", "now",
        "txn", "work",
    )

    def __init__(self, txn: Txn, now: int, *, first: int, heads: _Heads) -> None:
        self.txn = txn
        self.now = now
        self._next = first  # the index of the next entry
        self._ts = iso(now)  # ``now`` as the entries write it
        self._entries = PendingEntries(first, now)
        self._texts = PendingTexts()
        self._loose: dict[str, tuple[bytes, str]] = {}  # committed, not yet carried: (salt, text)
        self._chains: dict[str, Head] = {}  # the last entry of each chain in this batch
        self._heads = heads
        self._known = heads.on(first)  # the same before this batch, as far as the sequencer knows
        self._unresolved: set[str] = set()
        self._read: dict[str, Head | None] = {}  # chains' last entries a work read in this transaction
        self.work = 0
        """The number of the work running in its batch: the tag of what it holds (``Txn.defer``)."""

    async def append(
        self,
        type: str,
        *,
        actor: str,
        account: str | None,
        post: str | None = None,
        data: dict[str, Any] | None = None,
        chain: str | None = None,
    ) -> int:
        """Append one event; it commits with the rest of the work or not at all."""
        if chain is None and post:
            chain = f"post:{post}"  # post_chain(post), without a call an entry
        if data is None:
            data = {}
        idx = self._next
        link: dict[str, Any] | None = None
        if chain is not None:
            prev = self._chains.get(chain) or self._known.get(chain)
            read = prev is None and chain in self._read
            if read:
                prev = self._read[chain]
            if prev is not None:
                index, leaf = prev
                # link_value without its checks: the index and leaf hash are this log's own.
                link = {"index": index, "leaf": _b64(leaf, newline=False).decode("ascii")}
            else:
                # The chain's last entry is not known here (a new post, or one this sequencer
                # has not written since the tree last moved). It is taken to be new: the entry
                # goes unlinked, and the chain's next entries link to it. Its last entry is
                # looked up for the whole batch in one query when the batch is sealed, and the
                # few chains that turn out to have one are linked then (see ``_resolve``). The
                # size check is done now, with the longest link possible, so it fails this work
                # only. A chain a work read in this transaction is not looked up again (see
                # ``heads_read``).
                if not read:
                    self._unresolved.add(chain)
        raw = entry_bytes(type, self._ts, actor, account, post, data, link)
        if link is None and chain is not None and linked_size(raw, idx) > MAX_ENTRY_BYTES:
            raise EntryTooLarge(f"log entry of {linked_size(raw, idx)} bytes is over {MAX_ENTRY_BYTES}")
        leaf = _sha256(b"\x00" + raw).digest()
        entries = self._entries
        entries.leaf_hashes.append(leaf)
        entries.entries.append(raw)
        entries.details.append((type, chain, post, account, actor))
        if chain is not None:
            self._chains[chain] = (idx, leaf)
        self._next = idx + 1
        if self._loose:
            self._carry(idx, data)
        return idx

    def heads_read(self, heads: Mapping[str, Head | None]) -> None:
        """Chains' last entries a work read in this transaction (None: the chain has none, as a
        post's whose id the transaction has just taken), which the log writer then need not look
        up when the batch is sealed: on PostgreSQL that lookup is a round trip while the batch
        holds the tree's lock, and a batch of new posts and the outcomes of earlier ones can
        read them with statements it makes anyway. Read before this batch appended to them: an
        entry appended here since is the chain's last, whatever was read."""
        self._read.update(heads)

    def _carry(self, idx: int, data: dict[str, Any]) -> None:
        digest = data.get("text_hash")
        if digest.__class__ is str:
            committed = self._loose.pop(digest, None)
            if committed is not None:
                salt, text = committed
                self._texts.texts.append((idx, digest, salt, text))

    def commit_text(self, text: str) -> str:
        """Commit to a text: return its salted hash, for the data of the entry appended next.

        The text (and its fresh salt) is kept beside the log, keyed by the entry whose
        ``data["text_hash"]`` carries the hash; a work that commits to a text none of its
        entries carries fails (:class:`LooseText`).
        """
        salt = new_salt()
        digest = text_commitment(text, salt)
        self._loose[digest] = (salt, text)
        return digest

    def work_done(self) -> None:
        """For the sequencer, after each work: fail the work (:class:`LooseText`) if it
        committed to a text that none of its entries carries."""
        if self._loose:
            raise LooseText("the work committed to a text that none of its entries carries")

    async def logged(self) -> Sequenced:
        """For the log writer, once every work has run and the transaction under them is known
        to hold: link the entries of the chains that turned out to have a last entry already
        (one query), note the last entry of each chain this batch wrote, and give what the
        batch logged."""
        await self._resolve()
        self._heads.note(self._chains, size=self._next)
        return Sequenced(self._entries, self._texts)

    async def _resolve(self) -> None:
        """Look up the chains ``append`` took to be new, in one query, and link the entries of
        those that are not: the first to the chain's last entry, each next one to the first
        again (its leaf hash changed)."""
        if not self._unresolved:
            return
        heads = await log_sql.chain_heads(self.txn, sorted(self._unresolved))
        self._unresolved.clear()
        if not heads:
            return
        # chain -> (its last entry here, the leaf hash that entry had, the one it has now)
        moved: dict[str, tuple[int, bytes, bytes]] = {}
        first, raws, leaves = self._entries.first, self._entries.entries, self._entries.leaf_hashes
        for n, chain in enumerate(self._entries.chains):
            if chain is None or chain not in heads:
                continue
            last = moved.get(chain)
            if last is None:
                index, leaf = heads[chain]
                raw = link_raw(raws[n], index, leaf)
            else:
                index, old_leaf, new_leaf = last
                raw = relink_raw(raws[n], index, old_leaf, new_leaf)
            leaf = _sha256(b"\x00" + raw).digest()
            moved[chain] = (first + n, leaves[n], leaf)
            raws[n], leaves[n] = raw, leaf
        for chain, (index, _, leaf) in moved.items():
            self._chains[chain] = (index, leaf)


Work = Callable[[LogTxn], Awaitable[T]]


class Sequencer:
    """Runs batches of works and numbers what they log; remembers the last entry of the chains
    it wrote, for as long as the tree is the size it left it at."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heads = _Heads()

    async def sequence(self, batch: Batch[Work[Any]], txn: Txn, tree: Tree) -> LogTxn:
        """Run the works of a batch (but those failed before) on a tree of ``tree.size`` entries;
        what they logged is the returned LogTxn's :meth:`~LogTxn.logged`.

        A work that fails may have written before failing: it is noted in ``batch.failed`` and
        :class:`RunAgain` raised, so that the batch is rolled back and run again without it.
        What a work held for later (``Txn.defer``: its new post, made with the next works'
        before the next statement) and was then refused fails that work, not the one whose
        statement made it, nor one that met the transaction aborted by it.
        """
        ltx = LogTxn(txn, now_micros(self._clock), first=tree.size, heads=self._heads)
        jobs, failed = batch.jobs, batch.failed
        results: list[Any] = [None] * len(jobs)
        for n, (work, _) in enumerate(jobs):
            if n in failed:
                continue
            ltx.work = n
            try:
                results[n] = await work(ltx)
                ltx.work_done()
            except Exception as exc:
                if not txn.refused:
                    failed[n] = exc
                failed.update(txn.refused)
                raise RunAgain from None
            if txn.refused:
                failed.update(txn.refused)
                raise RunAgain
        await txn.settle()
        if txn.refused:
            failed.update(txn.refused)
            raise RunAgain
        batch.results = results
        return ltx

    def grow(self, tree: Tree, entries: PendingEntries) -> TreeGrowth:
        """The tree extended by the entries' leaves: with its new nodes on the levels storage
        keeps (``log_sql.NODE_STRIDE``), and its root."""
        compact = merkle.CompactRange.from_bytes(tree.size, tree.frontier)
        compact, nodes, root = compact.append(entries.leaf_hashes, stride=log_sql.NODE_STRIDE)
        return TreeGrowth(Tree(compact.size, compact.to_bytes()), root, nodes)

    def restart(self, batch: Batch[Work[Any]]) -> None:
        """The batch runs again from the start, on a tree that changed: every work in it."""
        batch.failed.clear()

    def forget(self) -> None:
        """The tree may not be what this sequencer last left: forget the chains it knew."""
        self._heads.forget()
