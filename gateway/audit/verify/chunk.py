"""The check of a run of entries on its own (a chunk): everything about each entry that does not
need the entries before the run, done in worker processes.

Per entry: its leaf hash (and the stored one, when given), its size, its canonical form and
shape (:func:`~gateway.audit.verify.entries.parse_entry`), its text against the salted hash it
commits to, the replay's facts; per chain with entries in the run: the links between them. What
needs the entries before the run (the links into it, the tree, the replay) is left to the
in-order part (:mod:`gateway.audit.verify.run`), in a :class:`Chunk` of few, flat objects, which
travel between processes cheaply.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.audit import canonical
from gateway.audit.entry import ENTRY_VERSION, MAX_ENTRY_BYTES
from gateway.audit.verify.entries import _LINK_KEYS, _ORDER, _TS, REPLAYED, fact_extra, parse
from gateway.audit.verify.tree import subtree_nodes

_NO_LEAF = bytes(32)

Texts = dict[str, tuple[str, str | None]]
"""Committed texts by hex hash: (hex salt, text or None once erased)."""

WITHHELD = "withheld"
"""The salt given for a text the server withholds from the public (never valid hex)."""

Item = tuple[int | None, bytes | None, bytes | None, str | None, tuple[str, str | None] | None]
"""(claimed index, entry bytes, stored leaf hash, problem reading it, its text as (hex salt,
text or None) when given with it) for one entry."""


@dataclass
class Chunk:
    """What the per-entry checks of a run of entries hand to the in-order part."""

    count: int
    """How many entries the run holds."""
    start: int | None
    """The index its first entry says it has (an export's line), or None if unreadable."""
    claimed: list[int | None] | None
    """The index each entry says it has, or None if unreadable; left out (None) when they are
    ``start``, ``start + 1``, … as they should be."""
    leaves: bytes
    """The leaf hashes, 32 bytes each, in order."""
    chains: list[str]
    """The chains with entries here. Links between entries of a chain within the run are
    checked with the run; the in-order part checks the link of each one's first entry here."""
    spans: list[int]
    """Two numbers for each chain of ``chains``: its first and its last entry's offset here."""
    named: list[int | None]
    """For each chain of ``chains``: the index its first entry's prev link names, or None."""
    link_leaves: bytes
    """For each chain of ``chains``: the leaf hash its first entry's prev link names (zeros for
    no link), 32 bytes each."""
    facts: list[Any]
    """What the rules replay needs, flat: the offset here and the five parts of its
    :data:`~gateway.audit.replay.Fact` for each entry it needs (few objects to pass between
    processes)."""
    findings: list[tuple[int, str]]
    """(offset here, problem)."""
    texts_checked: int = 0
    texts_erased: int = 0
    texts_withheld: int = 0
    subtrees: list[tuple[int, bytes]] | None = None
    """The perfect subtrees covering the run, hashed here, when the run says where it starts."""


def check_chunk(items: list[Item], texts: Texts) -> Chunk:
    """Check a run of entries on their own: canonical form, shape, hashes, texts, the chain
    links within the run; pull the facts the replay needs."""
    claimed_all: list[int | None] = []
    leaves = bytearray()
    facts: list[Any] = []
    findings: list[tuple[int, str]] = []
    # chain -> [first offset, first link, last offset, last leaf, last claimed index]
    chains: dict[str, list[Any]] = {}
    checked = erased = withheld = 0
    sha256 = hashlib.sha256
    loads, dumps, needs_reference = canonical.fast_loads, canonical.fast_dumps, canonical.needs_reference
    a2b = binascii.a2b_base64
    replayed = REPLAYED
    same: Callable[[Any, Any], Any] = {}.setdefault
    ts_seen: str | None = None
    for offset, (claimed, raw, stored, problem, given) in enumerate(items):
        claimed_all.append(claimed)
        if raw is None:
            leaves += bytes(32)
            findings.append((offset, problem or "unreadable"))
            continue
        leaf = sha256(b"\x00" + raw).digest()
        leaves += leaf
        if stored is not None and stored != leaf:
            findings.append((offset, "leaf hash does not match entry bytes"))
        if len(raw) > MAX_ENTRY_BYTES:
            findings.append((offset, f"is {len(raw)} bytes, over the {MAX_ENTRY_BYTES}-byte limit"))
        # The fast paths of parse and structure, inline: they run for every entry. The keys of
        # a canonical entry are in sorted order, so its values unpack in that order.
        try:
            body = loads(raw)
            fast = dumps(body) == raw and type(body) is dict and tuple(body) == _ORDER
        except (ValueError, TypeError, RecursionError, UnicodeError):
            fast = False
        if fast:
            account, actor, data, post, prev, ts, kind, v = body.values()
            fast = (
                type(v) is int and v == ENTRY_VERSION and type(kind) is str and kind != ""
                and type(actor) is str and type(data) is dict
                and (account is None or type(account) is str) and (post is None or type(post) is str)
                and type(ts) is str and (ts == ts_seen or _TS.fullmatch(ts) is not None)
                and (prev is None or (
                    type(prev) is dict and prev.keys() == _LINK_KEYS
                    and type(prev["index"]) is int and type(prev["leaf"]) is str
                ))
                and not needs_reference(data, not raw.isascii())
            )
        if not fast:
            body, problem, shape = parse(raw)
            if problem is not None:
                findings.append((offset, problem))
            if shape is not None:
                if problem is None:
                    findings.append((offset, shape))
                continue
            account, actor, data, post, prev, ts, kind = (
                body["account"], body["actor"], body["data"], body["post"], body["prev"], body["ts"], body["type"]
            )
        ts_seen = ts
        if kind in replayed:
            extra, problem = fact_extra(kind, data)
            if problem is not None:
                findings.append((offset, problem))
            else:
                # Equal values as one object, so that they travel (pickled) once per run.
                try:  # noqa: SIM105 - a try costs nothing; contextlib.suppress, an object per entry
                    extra = same(extra, extra)
                except TypeError:
                    pass  # it holds a policy, or what a forged entry put there: sent as it is
                facts += (
                    offset, same(kind, kind), same(actor, actor), same(account, account), same(post, post), extra,
                )
        link: tuple[int, bytes] | None = None
        if prev is not None:
            try:
                link = (prev["index"], a2b(prev["leaf"], strict_mode=True))
            except (binascii.Error, ValueError):
                findings.append((offset, "prev link has a malformed leaf hash"))
        if kind.startswith("policy."):
            chain: str | None = f"policy:{account}"
        else:
            chain = None if post is None else "post:" + post
        if chain is None:
            if prev is not None:
                findings.append((offset, "links to a previous entry but belongs to no chain"))
        else:
            seen = chains.get(chain)
            if seen is None:
                chains[chain] = [offset, link, offset, leaf, claimed]
            else:
                if link is None or link[0] != seen[4] or link[1] != seen[3]:
                    findings.append((offset, link_problem(chain, (seen[4], seen[3]), link)))
                seen[2], seen[3], seen[4] = offset, leaf, claimed
        digest = data.get("text_hash")
        if digest is not None:
            known = given if given is not None else texts.get(digest) if type(digest) is str else None
            if known is None:
                findings.append((offset, f"the text it commits to ({str(digest)[:16]}…) is missing"))
            elif known[1] is None:
                if known[0] == WITHHELD:
                    withheld += 1
                else:
                    erased += 1
            else:
                checked += 1
                try:
                    salt = bytes.fromhex(known[0])
                except ValueError:
                    salt = b""
                if sha256(salt + known[1].encode("utf-8", "surrogatepass")).hexdigest() != digest:
                    findings.append((offset, "text does not match its hash"))
    start = claimed_all[0] if claimed_all else None
    contiguous = start is not None and claimed_all == list(range(start, start + len(claimed_all)))
    return Chunk(
        subtrees=subtree_nodes(start, bytes(leaves)) if contiguous and start is not None else None,
        count=len(claimed_all),
        start=start,
        claimed=None if contiguous else claimed_all,
        leaves=bytes(leaves),
        chains=list(chains),
        spans=[n for v in chains.values() for n in (v[0], v[2])],
        named=[None if v[1] is None else v[1][0] for v in chains.values()],
        link_leaves=b"".join(_NO_LEAF if v[1] is None else v[1][1] for v in chains.values()),
        facts=facts,
        findings=findings,
        texts_checked=checked,
        texts_erased=erased,
        texts_withheld=withheld,
    )


def link_problem(chain: str, before: tuple[int, bytes] | None, link: tuple[int, bytes] | None) -> str:
    """What is wrong with an entry's prev link, given the previous entry of its chain (if any)."""
    what = chain.replace(":", " ", 1)
    if before is None:
        assert link is not None
        return f"links to entry {link[0]} but is the first entry of {what}"
    if link is None:
        return f"has no prev link but entry {before[0]} came before it in {what}"
    if link[0] != before[0]:
        return f"links to entry {link[0]} but the previous entry of {what} is {before[0]}"
    return f"links to entry {link[0]} with a leaf hash that entry does not have"
