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
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.audit.entry import MAX_ENTRY_BYTES, NO_STAMP, STAMP
from gateway.audit.replay import MALFORMED_CONTENT
from gateway.audit.verify.entries import REPLAYED, SHA256, a_stamp, fact_extra, parse_entry
from gateway.audit.verify.tree import subtree_nodes

_NO_LEAF = bytes(32)
_a2b = binascii.a2b_base64

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
    words: dict[int, str]
    """The words of the entries here that commit to a post's words (:data:`_WORDS`), where the
    text was given and matches its hash, by offset here: for the replay to compare what went
    out with what was written and approved."""
    contents: dict[int, str]
    """What the entries here that record it (:data:`_WORDS`) say a post carries besides its
    words (``data.content_sha256``; "" for nothing), by offset here: for the replay to compare
    what a claim sent with its version (see ``gateway.services.content``)."""
    dues: dict[int, str]
    """The time the entries here that schedule a post (:data:`_DUES`) say it is due
    (``data.publish_at``; "" for none: held, or waiting for approvals), by offset here: for the
    replay to name a claim that sent a post before it was due."""
    deadlines: dict[int, str]
    """The deadline of its hold the entries here that set or clear one (:data:`_DEADLINES`)
    record (``data.expires_at``; "" for none: not held, or held with no policy in force), by
    offset here: for the replay to name an approval given after the post's hold expired."""
    stamps: str
    """Each entry's time (``ts``), :data:`STAMP` characters each (spaces where unreadable), one
    string for the run: the replay reads the few it needs (how long after a policy change an
    action still named the policy replaced)."""
    findings: list[tuple[int, str]]
    """(offset here, problem)."""
    texts_checked: int = 0
    texts_erased: int = 0
    texts_withheld: int = 0
    subtrees: list[tuple[int, bytes]] | None = None
    """The perfect subtrees covering the run, hashed here, when the run says where it starts."""


@dataclass(slots=True)
class _Span:
    """One chain's entries within a run, as far as the run has been read."""

    first: int
    """The offset here of the chain's first entry."""
    link: tuple[int, bytes] | None
    """What that first entry's prev link names: (index, leaf hash), or None."""
    last: int
    """The offset here of the chain's last entry so far."""
    last_leaf: bytes
    """That entry's leaf hash: what the chain's next entry must link to."""
    last_index: int | None
    """The index that entry says it has."""


@dataclass(slots=True)
class _TextCount:
    """The committed texts of a run: how many were checked, erased, withheld."""

    checked: int = 0
    erased: int = 0
    withheld: int = 0

    def check(self, digest: Any, known: tuple[str, str | None] | None) -> str | None:
        """Count the text an entry commits to (``known``: its salt and text); a problem, if any."""
        if known is None:
            return f"the text it commits to ({str(digest)[:16]}…) is missing"
        salt_hex, text = known
        if text is None:
            if salt_hex == WITHHELD:
                self.withheld += 1
            else:
                self.erased += 1
            return None
        self.checked += 1
        if not _SALT.fullmatch(salt_hex):
            # The salt keeps words that are withheld or erased later from being guessed and
            # hashed: one that is not the 16 random bytes Byline draws is named, not read as none.
            return "the salt of the text it commits to is not 16 bytes in hex"
        salt = bytes.fromhex(salt_hex)
        if hashlib.sha256(salt + text.encode("utf-8", "surrogatepass")).hexdigest() != digest:
            return "text does not match its hash"
        return None


_WORDS = frozenset({"post.submitted", "post.edited", "post.revising", "post.revised", "post.publishing"})
"""The entries whose committed text the replay reads: a post's words, and what went out (or is
going out: a revision sent to the platform before its record)."""
_DUES = frozenset({"post.submitted", "post.edited", "post.approved"})
"""The entries that record when their post is due to go out (``data.publish_at``): its
submission, an edit (a cooling-off started again, or the post held anew), the approval that
schedules it."""
_DEADLINES = frozenset({"post.submitted", "post.edited", "post.approved", "post.redecided"})
"""The entries that record the deadline of their post's hold (``data.expires_at``): its
submission, an edit (the post held anew), the approval that releases it (none), a decision
again (held anew, or parked with no policy in force). Every entry of :data:`_DUES` is one."""
assert _DUES <= _DEADLINES

_SALT = re.compile(r"[0-9a-f]{32}")
"""A text's salt as the log keeps it: 16 bytes, in lowercase hex."""


def check_chunk(items: list[Item], texts: Texts) -> Chunk:
    """Check a run of entries on their own: canonical form, shape, hashes, texts, the chain
    links within the run; pull the facts the replay needs."""
    leaves: list[bytes] = []
    facts: list[Any] = []
    findings: list[tuple[int, str]] = []
    spans: dict[str, _Span] = {}
    counted = _TextCount()
    words: dict[int, str] = {}
    contents: dict[int, str] = {}
    dues: dict[int, str] = {}
    deadlines: dict[int, str] = {}
    stamps: list[str] = []
    sha256 = hashlib.sha256
    # Equal values as one object, so that they travel (pickled) once per run.
    same: Callable[[Any, Any], Any] = {}.setdefault
    ts: str | None = None
    for offset, (claimed, raw, stored, problem, given) in enumerate(items):
        if raw is None:
            leaves.append(_NO_LEAF)
            stamps.append(NO_STAMP)
            findings.append((offset, problem or "unreadable"))
            continue
        leaf = sha256(b"\x00" + raw).digest()
        leaves.append(leaf)
        if stored is not None and stored != leaf:
            findings.append((offset, "leaf hash does not match entry bytes"))
        if len(raw) > MAX_ENTRY_BYTES:
            findings.append((offset, f"is {len(raw)} bytes, over the {MAX_ENTRY_BYTES}-byte limit"))
        fields, problem = parse_entry(raw, ts)
        if problem is not None:
            findings.append((offset, problem))
        if fields is None:
            stamps.append(NO_STAMP)
            continue
        account, actor, data, post, prev, ts, kind = fields
        stamps.append(ts if len(ts) == STAMP else NO_STAMP)
        if kind in REPLAYED:
            extra, problem = fact_extra(kind, data)
            if problem is not None:
                findings.append((offset, problem))
            else:
                try:  # noqa: SIM105 - a try costs nothing; contextlib.suppress, an object per entry
                    extra = same(extra, extra)
                except TypeError:
                    pass  # it holds a policy, or what a forged entry put there: sent as it is
                facts += (
                    offset, same(kind, kind), same(actor, actor), same(account, account), same(post, post), extra,
                )
        _follow(spans, findings, kind, account, post, prev, offset, leaf, claimed)
        if kind in _WORDS and "content_sha256" in data:
            content = data["content_sha256"]
            if content is None:
                contents[offset] = ""
            elif type(content) is str and SHA256.fullmatch(content):
                contents[offset] = content
            else:
                contents[offset] = MALFORMED_CONTENT  # named here, once: not as left out as well
                findings.append((offset, "has a malformed data.content_sha256"))
            if "text_hash" not in data:
                # Its words unsaid, a claim could send any: the replay compares only words given.
                findings.append((offset, "records what the post carries besides its words (data.content_sha256) "
                                         "but commits to no words (data.text_hash)"))
        if kind in _DEADLINES:  # every kind that may record a due time records a deadline too
            for kinds, name, times in ((_DUES, "publish_at", dues), (_DEADLINES, "expires_at", deadlines)):
                if kind in kinds and name in data:
                    moment = data[name]
                    if moment is None:
                        times[offset] = ""
                    elif a_stamp(moment):
                        times[offset] = moment
                    else:
                        findings.append((offset, f"has a malformed data.{name}"))
        digest = data.get("text_hash")
        if digest is not None:
            known = given if given is not None else texts.get(digest) if type(digest) is str else None
            problem = counted.check(digest, known)
            if problem is not None:
                findings.append((offset, problem))
            elif kind in _WORDS and known is not None and known[1] is not None:
                words[offset] = known[1]
    return _chunk([item[0] for item in items], b"".join(leaves), spans, facts, findings, counted, words,
                  contents, dues, deadlines, "".join(stamps))


def _follow(
    spans: dict[str, _Span], findings: list[tuple[int, str]], kind: str, account: str | None, post: str | None,
    prev: dict[str, Any] | None, offset: int, leaf: bytes, claimed: int | None,
) -> None:
    """Follow an entry along its chain (a post's events; an account's policy events) within the
    run, and name what is wrong with its prev link as far as the run can tell."""
    link: tuple[int, bytes] | None = None
    if prev is not None:
        try:
            link = (prev["index"], _a2b(prev["leaf"], strict_mode=True))
        except (binascii.Error, ValueError):
            findings.append((offset, "prev link has a malformed leaf hash"))
    if kind.startswith("policy."):
        chain = f"policy:{account}"
    elif post is not None:
        chain = "post:" + post
    else:
        if prev is not None:
            findings.append((offset, "links to a previous entry but belongs to no chain"))
        return
    span = spans.get(chain)
    if span is None:
        spans[chain] = _Span(offset, link, offset, leaf, claimed)
        return
    if link is None or link[0] != span.last_index or link[1] != span.last_leaf:
        findings.append((offset, link_problem(chain, (span.last_index, span.last_leaf), link)))
    span.last, span.last_leaf, span.last_index = offset, leaf, claimed


def _chunk(
    claimed: list[int | None], leaves: bytes, spans: dict[str, _Span], facts: list[Any],
    findings: list[tuple[int, str]], counted: _TextCount, words: dict[int, str], contents: dict[int, str],
    dues: dict[int, str], deadlines: dict[int, str], stamps: str,
) -> Chunk:
    start = claimed[0] if claimed else None
    contiguous = start is not None and claimed == list(range(start, start + len(claimed)))
    return Chunk(
        subtrees=subtree_nodes(start, leaves) if contiguous and start is not None else None,
        count=len(claimed),
        start=start,
        claimed=None if contiguous else claimed,
        leaves=leaves,
        chains=list(spans),
        spans=[n for s in spans.values() for n in (s.first, s.last)],
        named=[None if s.link is None else s.link[0] for s in spans.values()],
        link_leaves=b"".join(_NO_LEAF if s.link is None else s.link[1] for s in spans.values()),
        facts=facts,
        words=words,
        contents=contents,
        dues=dues,
        deadlines=deadlines,
        stamps=stamps,
        findings=findings,
        texts_checked=counted.checked,
        texts_erased=counted.erased,
        texts_withheld=counted.withheld,
    )


def link_problem(chain: str, before: tuple[int | None, bytes] | None, link: tuple[int, bytes] | None) -> str:
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
