"""The offline auditor: rebuild the log from its entries and check everything it claims.

``verify`` reads the entries and signed checkpoints from a running gateway (its public read API)
or from an export file, and checks, naming the first bad entry when something fails:

- the latest checkpoint is signed by the log key the auditor was given;
- every entry is exactly its RFC 8785 canonical JSON, well formed, under 64 KiB, and (in an
  export) hashes to the leaf hash stored beside it;
- each entry's ``prev`` link names the previous entry of its chain (a post's events; an
  account's policy events), by index and leaf hash;
- the RFC 6962 root of the entries equals the root in every checkpoint seen: the latest, every
  older one in an export, and every one remembered in the local state file from earlier runs
  (so a log that was rolled back or rewritten since is caught);
- every committed text matches its salted hash (an erased text is counted, not failed);
- the rules replayed over the log hold (see :mod:`gateway.audit.replay`).

Entries are checked in runs of a few thousand, each on its own (parse, re-canonicalize, hash,
check texts, check the chain links inside the run, hash the run's perfect subtrees, pull the
facts the replay needs), in worker processes when asked; the caller's process joins the runs in
order: the tree's right edge, the links between runs, and the replay. When the roots do not
match and no entry was named yet, the log's stored leaf hashes (an export's, or the server's
level-0 tiles) name the entry that changed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gc
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gateway.audit import canonical, merkle, tiles
from gateway.audit.entry import ENTRY_VERSION, MAX_ENTRY_BYTES
from gateway.audit.note import Checkpoint, NoteError, Verifier, open_checkpoint
from gateway.audit.replay import Fact, Replay

EXPORT_FORMAT = "byline-log-export"
EXPORT_VERSION = 1

_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_KEYS = frozenset({"v", "type", "ts", "actor", "account", "post", "data", "prev"})
_LINK_KEYS = frozenset({"index", "leaf"})
_NO_LEAF = bytes(32)
_a2b = binascii.a2b_base64
_loads = canonical.fast_loads
_ORDER = ("account", "actor", "data", "post", "prev", "ts", "type", "v")  # sorted, as canonical
_PAGE = 1000
_BLOCK = 1 << 20  # bytes of an export a worker takes at a time


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
        if self.ok:
            lines.append(f"ok: {self.size} entries verified against {self.source}")
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
        )
        lines.append(f"{self.seconds:.2f} s, {rate:,.0f} entries/s")
        return "\n".join(lines)


def _order(finding: Finding) -> int:
    return -1 if finding.index is None else finding.index


# ---------------------------------------------------------------------------------------------
# Per-entry work: runs in worker processes, so it is plain functions over plain data.

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
    :data:`Fact` for each entry it needs (few objects to pass between processes)."""
    findings: list[tuple[int, str]]
    """(offset here, problem)."""
    texts_checked: int = 0
    texts_erased: int = 0
    texts_withheld: int = 0
    subtrees: list[tuple[int, bytes]] | None = None
    """The perfect subtrees covering the run, hashed here, when the run says where it starts."""


_REPLAYED = frozenset({
    "policy.loaded", "policy.changed", "policy.removed",
    "post.submitted", "post.edited", "post.approved", "post.published", "post.publishing",
    "post.redecided", "post.rejected", "post.cancelled", "post.adopted", "post.dismissed",
    "post.expired", "post.deferred", "post.failed", "post.retried",
})


def _str_list(value: Any) -> tuple[str, ...] | None:
    if type(value) is not list:
        return None
    for item in value:
        if type(item) is not str:
            return None
    return tuple(value)


def _int(value: Any) -> bool:
    return type(value) is int


def extract(body: dict[str, Any]) -> tuple[Fact | None, str | None]:
    """The replay's facts of one well-formed entry, or a problem."""
    kind = body["type"]
    extra, problem = _extra(kind, body["data"])
    if problem is not None:
        return None, problem
    return (kind, body["actor"], body["account"], body["post"], extra), None


def _sha(data: dict[str, Any]) -> str | None:
    sha = data.get("policy_sha256")
    return sha if type(sha) is str else None


def _extra(kind: str, data: dict[str, Any]) -> tuple[Any, str | None]:
    """The part of an entry's fact that depends on its type (see :data:`Fact`), or a problem."""
    if kind == "post.publishing":
        return _sha(data), None
    if kind == "post.approved":
        version = data.get("version")
        if not _int(version):
            return None, "post.approved lacks data.version"
        return (version, data.get("state"), _sha(data)), None
    if kind == "post.submitted":
        version, approvers, required = data.get("version"), _str_list(data.get("approvers")), data.get("required")
        state, sha = data.get("state"), data.get("policy_sha256")
        if not (_int(version) and type(state) is str and approvers is not None and _int(required)
                and (sha is None or type(sha) is str)):
            return None, "post.submitted lacks data.version, state, approvers or required"
        suggested_by = data.get("suggested_by")
        if suggested_by is not None and type(suggested_by) is not str:
            return None, "post.submitted has a malformed data.suggested_by"
        if suggested_by is None:
            return (version, state, approvers, required, sha), None
        return (version, state, approvers, required, sha, suggested_by), None
    if kind == "post.published":
        version = data.get("version")
        if not _int(version):
            return None, "post.published lacks data.version"
        return (version,), None
    if kind == "post.edited" or kind == "post.redecided":
        version, state = data.get("version"), data.get("state")
        if not _int(version) or type(state) is not str:
            return None, f"{kind} lacks data.version or data.state"
        required = data.get("required")
        return (version, state, _str_list(data.get("approvers")), required if _int(required) else None,
                _sha(data)), None
    if kind == "policy.loaded" or kind == "policy.changed":
        sha, summary = data.get("sha256"), data.get("policy")
        if type(sha) is not str or type(summary) is not dict:
            return None, f"{kind} lacks data.sha256 or data.policy"
        return (sha, summary), None
    if kind == "policy.removed":
        return None, None
    state, version = data.get("state"), data.get("version")
    return (state if type(state) is str else None, version if _int(version) else None, _sha(data)), None


def _structure(body: Any) -> str | None:
    """What is wrong with the shape of a parsed entry, if anything. Every top-level value is
    checked to be of its exact type, so only ``data`` can hold a float."""
    if type(body) is not dict:
        return "is not a JSON object"
    if body.keys() != _KEYS:
        missing = sorted(_KEYS - body.keys())
        extra = sorted(body.keys() - _KEYS)
        return f"has the wrong fields (missing {missing}, unexpected {extra})"
    if body["v"] != ENTRY_VERSION or type(body["v"]) is not int:
        return f"has version {body['v']!r}, expected {ENTRY_VERSION}"
    kind, ts = body["type"], body["ts"]
    if type(kind) is not str or not kind:
        return "has no type"
    if type(ts) is not str or not _TS.fullmatch(ts):
        return "has a malformed ts"
    if type(body["actor"]) is not str:
        return "has no actor"
    account, post = body["account"], body["post"]
    if not (account is None or type(account) is str) or not (post is None or type(post) is str):
        return "has a malformed account or post"
    if type(body["data"]) is not dict:
        return "has data that is not an object"
    prev = body["prev"]
    if prev is not None and (
        type(prev) is not dict or prev.keys() != {"index", "leaf"}
        or type(prev["index"]) is not int or type(prev["leaf"]) is not str
    ):
        return "has a malformed prev link"
    return None


def _parse(raw: bytes) -> tuple[Any, str | None, str | None]:
    """Parse an entry and check that it is exactly RFC 8785 (see :mod:`gateway.audit.canonical`).

    The fast path checks the shape first: every top-level value then has an exact type and
    only ``data`` needs the walk for floats and keys outside ASCII. Returns the parsed entry,
    what is wrong with its encoding, and what is wrong with its shape.
    """
    try:
        body = canonical.fast_loads(raw)
        same = canonical.fast_dumps(body) == raw
    except (ValueError, TypeError, RecursionError, UnicodeError):
        same = False
    if same and _structure(body) is None and not canonical.needs_reference(body["data"], not raw.isascii()):
        return body, None, None
    body, problem = canonical.slow_check(raw)
    return body, problem, _structure(body) if body is not None else "is not JSON"


def process(items: list[Item], texts: Texts) -> Chunk:
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
    replayed = _REPLAYED
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
        # The fast paths of _parse and _structure, inline: they run for every entry. The keys of
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
            body, problem, shape = _parse(raw)
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
            extra, problem = _extra(kind, data)
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
                    findings.append((offset, _link_problem(chain, (seen[4], seen[3]), link)))
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


def _link_problem(chain: str, before: tuple[int, bytes] | None, link: tuple[int, bytes] | None) -> str:
    what = chain.replace(":", " ", 1)
    if before is None:
        assert link is not None
        return f"links to entry {link[0]} but is the first entry of {what}"
    if link is None:
        return f"has no prev link but entry {before[0]} came before it in {what}"
    if link[0] != before[0]:
        return f"links to entry {link[0]} but the previous entry of {what} is {before[0]}"
    return f"links to entry {link[0]} with a leaf hash that entry does not have"


_NOT_A_RECORD: Item = (None, None, None, "export line is not an entry record", None)


def parse_export_line(line: bytes) -> Item:
    """One entry line of an export (see :mod:`gateway.audit.export`): (index, entry bytes,
    stored leaf hash, problem, text)."""
    parts = line.rstrip(b"\n").split(b"\t", 4)
    if len(parts) != 5:
        return _NOT_A_RECORD
    index_text, stored_text, salt, text_json, entry = parts
    try:
        index = int(index_text)
        stored = _a2b(stored_text, strict_mode=True)
        if entry[:1] == b"{":
            raw = entry
        elif entry[:1] == b"=":
            raw = _a2b(entry[1:], strict_mode=True)
        else:
            return _NOT_A_RECORD
        if salt == b"-":
            return index, raw, stored, None, None
        body = _loads(text_json)
        if not (body is None or type(body) is str):
            return _NOT_A_RECORD
        return index, raw, stored, None, (salt.decode("ascii"), body)
    except (ValueError, TypeError, binascii.Error, UnicodeError):
        return _NOT_A_RECORD


def _export_job(path: str, start: int, end: int, first: bool) -> Chunk:
    """Check the entry lines of an export that begin at ``start <= byte < end``: each job
    finds its own lines, so the caller's process need not read the file at all."""
    with open(path, "rb") as f:
        f.seek(start if first else start - 1)
        block = f.read(end - start + (0 if first else 1))
        if not first:
            # A line that began before ``start`` belongs to the job before this one.
            block = block[block.find(b"\n") + 1 :] if b"\n" in block else b""
        if block and not block.endswith(b"\n"):
            block += f.readline()  # the last line began here: read it to its end
    lines = block.splitlines()
    if lines and not block.endswith(b"\n") and not lines[-1].strip():
        lines.pop()  # blanks after the last line break: not an entry
    return process([parse_export_line(line) for line in lines], {})


Job = tuple[str, Any]


def run_job(job: Job) -> Chunk:
    """Run one unit of per-entry work (the function worker processes are given)."""
    kind, args = job
    if kind == "export":
        return _export_job(*args)
    items, texts = args
    return process(items, texts)


# ---------------------------------------------------------------------------------------------
# Sources


class Source(Protocol):
    """Where the entries and checkpoints come from."""

    name: str

    def checkpoints(self) -> list[bytes]:
        """Signed checkpoint notes offered by the source; the one of the largest size is latest."""
        ...

    def jobs(self, size: int) -> Iterator[Job]:
        """Units of work covering entries 0, 1, … (up to ``size`` if the source is paged)."""
        ...

    def stored_leaf_hashes(self, start: int, end: int) -> list[bytes] | None:
        """Leaf hashes as the log stores them, to find a tampered entry; None if unknown."""
        ...


class ExportSource:
    """An export file: a header line, checkpoint lines, then entry lines (see ``export``)."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.path = path
        self.origin: str | None = None
        self._notes: list[bytes] = []
        self._entries_at = 0
        self._read_head()

    def _read_head(self) -> None:
        try:
            f = self.path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        with f:
            try:
                header = json.loads(f.readline())
            except ValueError:
                header = None
            if not isinstance(header, dict) or header.get(EXPORT_FORMAT) != EXPORT_VERSION:
                raise SourceError(f"{self.path} is not a Byline log export (version {EXPORT_VERSION})")
            self.origin = header.get("origin")
            while True:
                at = f.tell()
                line = f.readline()
                if not line or line[:1].isdigit():
                    self._entries_at = at
                    break
                try:
                    record = json.loads(line)
                except ValueError:
                    raise SourceError(f"export: line at byte {at} is not JSON") from None
                if isinstance(record, dict) and isinstance(record.get("checkpoint"), str):
                    self._notes.append(record["checkpoint"].encode("utf-8"))
                else:
                    raise SourceError(f"export: unknown record at byte {at}")

    def checkpoints(self) -> list[bytes]:
        return list(self._notes)

    def jobs(self, size: int) -> Iterator[Job]:
        try:
            end = self.path.stat().st_size
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror}") from None
        for start in range(self._entries_at, end, _BLOCK):
            yield "export", (str(self.path), start, min(start + _BLOCK, end), start == self._entries_at)

    def stored_leaf_hashes(self, start: int, end: int) -> list[bytes] | None:
        return None  # each entry line carries its stored hash; compared as it is read


class UrlSource:
    """A running gateway's public read API."""

    def __init__(self, url: str, *, timeout: float = 60.0) -> None:
        self.name = url.rstrip("/")
        self._timeout = timeout

    def _get(self, path: str) -> bytes:
        url = self.name + path
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as resp:
                body: bytes = resp.read()
                return body
        except urllib.error.HTTPError as exc:
            raise SourceError(f"GET {url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"GET {url}: {getattr(exc, 'reason', exc)}") from None

    def _json(self, path: str) -> Any:
        try:
            return json.loads(self._get(path))
        except ValueError:
            raise SourceError(f"GET {self.name}{path}: not JSON") from None

    def verifier_key(self) -> str:
        """The key the server publishes (an auditor should compare it with the one they trust)."""
        return self._get("/log/key").decode().strip()

    def checkpoints(self) -> list[bytes]:
        return [self._get("/log/checkpoint")]

    def _page(self, start: int, end: int) -> Job:
        page = self._json(f"/log/entries?start={start}&end={end}")
        texts_page = self._json(f"/log/texts?start={start}&end={end}")
        items: list[Item] = []
        for record in page.get("entries", []) if isinstance(page, dict) else []:
            try:
                items.append((int(record["index"]), base64.b64decode(record["leaf"], validate=True), None, None, None))
            except (KeyError, TypeError, ValueError, binascii.Error):
                items.append((None, None, None, "the server sent a malformed entry", None))
        texts: Texts = {}
        for t in texts_page.get("texts", []) if isinstance(texts_page, dict) else []:
            if not isinstance(t, dict) or not isinstance(t.get("hash"), str):
                continue
            if t.get("withheld") is True and t.get("text") is None:
                # The words of a post that never went out, kept from the public with their salt:
                # neither checked nor erased (an auditor's token sees them).
                texts[t["hash"]] = (WITHHELD, None)
            elif isinstance(t.get("salt"), str):
                texts[t["hash"]] = (t["salt"], t.get("text") if isinstance(t.get("text"), str) else None)
        return ("items", (items, texts))

    def jobs(self, size: int) -> Iterator[Job]:
        from concurrent.futures import ThreadPoolExecutor

        starts = list(range(0, size, _PAGE))
        with ThreadPoolExecutor(max_workers=4) as pool:
            ahead: deque[Any] = deque()
            for start in starts:
                ahead.append(pool.submit(self._page, start, min(start + _PAGE, size)))
                if len(ahead) > 8:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()

    def stored_leaf_hashes(self, start: int, end: int) -> list[bytes] | None:
        out: list[bytes] = []
        for tile in range(start // tiles.WIDTH, (end + tiles.WIDTH - 1) // tiles.WIDTH):
            try:
                data = self._get("/log/" + tiles.tile_url(0, tile, min(tiles.WIDTH, end - tile * tiles.WIDTH)))
            except SourceError:
                return None
            out.extend(data[i : i + 32] for i in range(0, len(data), 32))
        return out[start % tiles.WIDTH :][: end - start] if out else None


# ---------------------------------------------------------------------------------------------
# State file: the checkpoints this auditor has seen before


def default_state_path() -> Path:
    """``$XDG_STATE_HOME/byline/audit-state.json`` (``~/.local/state`` when unset)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "byline" / "audit-state.json"


def _read_state(path: Path | None, key: Verifier) -> list[bytes]:
    if path is None or not path.exists():
        return []
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        notes = state["logs"].get(key.to_text(), [])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise SourceError(f"the state file {path} is unreadable; move it away to start afresh") from None
    return [n.encode("utf-8") for n in notes if isinstance(n, str)]


def _write_state(path: Path, key: Verifier, notes: list[bytes]) -> None:
    state: dict[str, Any] = {"logs": {}}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and isinstance(loaded.get("logs"), dict):
                state = loaded
        except (OSError, ValueError):
            pass
    state["logs"][key.to_text()] = [n.decode("utf-8") for n in notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# The verifier


@dataclass
class _Seen:
    checkpoint: Checkpoint
    note: bytes
    where: str


class _Frontier:
    """The right edge of the tree being rebuilt: one hash per set bit of its size.

    Appends leaves, or whole perfect subtrees hashed elsewhere (a worker's run), so the
    in-order part does a few hashes a run instead of one a leaf.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def add(self, level: int, node: bytes) -> None:
        """Append the perfect subtree of ``2**level`` leaves whose hash is ``node``."""
        assert self.size % (1 << level) == 0, "a subtree must start at a multiple of its size"
        stack = self._stack
        n = self.size >> level
        while n & 1:
            node = merkle.node_hash(stack.pop(), node)
            n >>= 1
        stack.append(node)
        self.size += 1 << level

    def add_leaves(self, leaves: bytes) -> None:
        """Append leaf hashes (32 bytes each, concatenated)."""
        stack = self._stack
        pop, push = stack.pop, stack.append
        sha = hashlib.sha256
        size = self.size
        for i in range(0, len(leaves), 32):
            h = leaves[i : i + 32]
            n = size
            while n & 1:
                h = sha(b"\x01" + pop() + h).digest()
                n >>= 1
            push(h)
            size += 1
        self.size = size

    def root(self) -> bytes:
        """The RFC 6962 root of the tree so far."""
        if not self._stack:
            return merkle.EMPTY_ROOT
        acc = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            acc = merkle.node_hash(h, acc)
        return acc


def subtree_nodes(start: int, leaves: bytes) -> list[tuple[int, bytes]]:
    """The perfect subtrees exactly covering leaves ``[start, start + n)``, as (level, hash)."""
    out = []
    sha = hashlib.sha256
    for level, index in merkle.range_nodes(start, start + len(leaves) // 32):
        first = (index << level) - start
        layer = leaves[first * 32 : (first + (1 << level)) * 32]  # hashes of one level, 32 bytes each
        while len(layer) > 32:
            layer = b"".join([sha(b"\x01" + layer[i : i + 64]).digest() for i in range(0, len(layer), 64)])
        out.append((level, layer))
    return out


class _Run:
    """The in-order part of a verification: tree, chains, replay."""

    def __init__(self, report: Report, targets: list[_Seen], max_findings: int) -> None:
        self.report = report
        self.tree = _Frontier()
        self.leaves = bytearray()
        self.chains: dict[str, int] = {}  # the index of each chain's last entry so far
        self.replay = Replay()
        self.targets = sorted(targets, key=lambda s: s.checkpoint.size)
        self.roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT}
        self.wanted = {s.checkpoint.size for s in targets}
        self.max_findings = max_findings
        self.entry_findings = 0
        self.misplaced = False

    def bad(self, index: int | None, message: str) -> None:
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
                self.bad(first + first_at, _link_problem(
                    chain,
                    None if before is None else (before, bytes(leaves[32 * before : 32 * before + 32])),
                    None if named is None else (named, link_leaves[32 * n : 32 * n + 32]),
                ))
            chains[chain] = first + last_at
        self.replay.feed_flat(first, chunk.facts)
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


def _open(note: bytes, key: Verifier, where: str, report: Report) -> Checkpoint | None:
    try:
        checkpoint, _ = open_checkpoint(note, [key], origin=key.name)
    except NoteError as exc:
        report.findings.append(Finding(None, f"checkpoint {where}: {exc}"))
        return None
    return checkpoint


def verify(
    source: Source,
    key: Verifier,
    *,
    state_path: Path | None = None,
    workers: int = 1,
    progress: bool = False,
    max_findings: int = 100,
) -> Report:
    """Verify the log ``source`` offers against the log ``key``; update the state file if sound."""
    # A run builds millions of small objects, many of which live until it ends (the replay's
    # state, the tree's leaves), and makes no reference cycles: the cyclic collector would only
    # walk them again and again (a third of the main process's time on a large log). The
    # worker processes, forked, inherit this.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _verify(source, key, state_path=state_path, workers=workers, progress=progress,
                       max_findings=max_findings)
    finally:
        if collecting:
            gc.enable()


def _verify(
    source: Source, key: Verifier, *, state_path: Path | None, workers: int, progress: bool, max_findings: int
) -> Report:
    started = time.perf_counter()
    report = Report(source=source.name)
    remembered = _read_state(state_path, key)
    seen: list[_Seen] = []
    for note in remembered:
        cp = _open(note, key, "remembered in the state file", report)
        if cp is not None:
            seen.append(_Seen(cp, note, "seen before (state file)"))
    offered: list[_Seen] = []
    for note in source.checkpoints():
        cp = _open(note, key, "offered by the log", report)
        if cp is not None:
            offered.append(_Seen(cp, note, "from the log"))
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
    run = _Run(report, targets, max_findings)
    _drive(source, run, latest.checkpoint.size, workers, progress)
    run.replay.finish()
    for index, message in run.replay.findings:
        run.bad(index, message)
    report.posts = run.replay.posts_seen
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
    if not tree_ok and not any(f.index is not None and "leaf hash" in f.message for f in report.findings):
        _locate(source, run, size)
    report.unsigned = max(0, size - latest.checkpoint.size)
    if tree_ok and state_path is not None:
        notes = {s.checkpoint.size: s.note for s in seen}
        notes.update({s.checkpoint.size: s.note for s in offered})
        _write_state(state_path, key, [notes[k] for k in sorted(notes)])
    report.seconds = time.perf_counter() - started
    return report


def _locate(source: Source, run: _Run, size: int) -> None:
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


def _drive(source: Source, run: _Run, size: int, workers: int, progress: bool) -> None:
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
        with _Workers(workers) as pool:
            for chunk in pool.map(source.jobs(size), ahead=2):
                run.take(chunk)
                tick(chunk.count)
    finally:
        if bar is not None:
            bar.close()


class _Workers:
    """Worker processes, forked at once, taking jobs in turn; results come back in job order.

    multiprocessing.Pool would do, but its worker-handler thread wakes up each time a result
    is waiting in the pipe, and with results coming back all the time it spins: nearly a CPU
    second on a million entries, in the process that has the in-order part to do as well.
    """

    def __init__(self, count: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        for _ in range(count):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(theirs,), daemon=True)
            proc.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(proc)

    def __enter__(self) -> _Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()

    def map(self, jobs: Iterator[Job], *, ahead: int) -> Iterator[Chunk]:
        """Run each job on the workers in turn (``ahead`` queued on each); yield the results in order."""
        conns = self._conns
        sent = received = 0
        for job in jobs:
            if sent - received >= ahead * len(conns):
                yield self._result(conns[received % len(conns)])
                received += 1
            conns[sent % len(conns)].send(job)
            sent += 1
        while received < sent:
            yield self._result(conns[received % len(conns)])
            received += 1

    @staticmethod
    def _result(conn: Any) -> Chunk:
        try:
            ok, value = conn.recv()
        except EOFError:
            raise RuntimeError("a verification worker process died") from None
        if not ok:
            raise RuntimeError(f"a verification worker failed: {value}")
        chunk: Chunk = value
        return chunk


def _serve(conn: Any) -> None:
    """A worker process: run jobs until told to stop."""
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            result: tuple[bool, Any] = (True, run_job(job))
        except Exception as exc:  # told back to the caller's process, which raises it
            result = (False, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(result)
        except OSError:  # the caller's process stopped listening (it failed, or was stopped)
            return


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
