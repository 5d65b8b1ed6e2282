"""The public side of the log: an account's voice history, its posts that went out with their
bylines, and the audit page's searches, as frozen view models.

Everything here is what anyone may read without signing in, and only that: the words of posts
that went out (published, or published and then deleted), never those of held, cancelled or
refused posts, and nothing about tokens or credentials. Each byline names the log entries it
comes from, so a reader's browser can check them against the signed checkpoint
(``gateway/http/static/verify.js``) instead of taking the gateway's word for them.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from gateway.audit.gates import gate_words, gates_in_words, sent_gates_problem
from gateway.errors import BylineError, Code
from gateway.policy.announce import PROMISE
from gateway.policy.loader import PolicyRegistry
from gateway.services.checkpoints import CheckpointRefused, CheckpointService
from gateway.services.reply_targets import web_link
from gateway.storage import log as log_sql
from gateway.storage import posts as posts_sql
from gateway.storage import transparency as sql
from gateway.storage.db import Database, Txn
from gateway.types import LogIndex, PostId, spoken

PAGE_SIZE: Final = 20
"""Posts on one page of an account's transparency page."""
SEARCH_LIMIT: Final = 50
"""The most posts one search of the audit page shows."""


def _when(ts: str | None) -> str:
    """``2026-11-10T09:30:00.000000Z`` as ``10 Nov 2026, 09:30 UTC``."""
    if not ts:
        return ""
    try:
        moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return ts
    return spoken(moment)


def _day(ts: str | None) -> str:
    """``2026-11-10T09:30:00.000000Z`` as ``10 Nov 2026``."""
    return _when(ts).split(",")[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """One fact on a page and the log entry it comes from: the browser checks that entry's
    ``type`` and, at ``field`` (``actor``, ``ts`` or a key of its ``data``), the value shown."""

    index: LogIndex
    type: str
    field: str
    value: str
    ts: str
    """The entry's time (RFC 3339)."""

    @property
    def when(self) -> str:
        """The entry's time, for people."""
        return _when(self.ts)


GATES_SHOWN: Final = 3
"""The changes of who may reply or quote that a post's card lists on a page of many posts; a
long run of them (up to ``CHANGES_PER_HOUR`` an hour) would bury the post under its settings."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GatesChange:
    """A change of who may reply to or quote a post once it was out: who made it and when (the
    ``post.gates_changed`` entry's actor and time, checked in the browser), and the new
    settings in plain words ("Replies: only people mentioned", "Quotes: off"), checked in the
    browser against the entry's settings (``said``)."""

    by: Mark
    said: Mark

    @property
    def words(self) -> str:
        """The new settings in plain words."""
        return self.said.value


@dataclass(frozen=True, slots=True, kw_only=True)
class GateSent:
    """Who might reply to or quote a post as it went out, one gate in words; ``mark``: the claim's
    ``post.publishing`` entry whose ``gates`` the browser checks the words against (None for a
    post sent before claims recorded its gates: then the words are the gateway's record's)."""

    words: str
    mark: Mark | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VoicePeriod:
    """One recorded policy of an account: who spoke for it from then on."""

    index: LogIndex
    type: str
    ts: str
    until: str | None
    removed: bool
    tier: str
    owner: str
    writers: tuple[str, ...]
    approvers: tuple[str, ...]
    required: int
    suggesters: tuple[str, ...]
    delay_seconds: int
    speaks_as: str
    """The platform account it published as ("" where the summary does not say: the sandbox, an earlier Byline's)."""
    changed: tuple[str, ...]
    headline: str
    """The voice in a few words: "written by its owner", "managed by a team", …"""

    @property
    def since_day(self) -> str:
        """The day it came into force."""
        return _day(self.ts)

    @property
    def until_day(self) -> str:
        """The day it ended, or empty while in force."""
        return _day(self.until)

    @property
    def when(self) -> str:
        """The moment it came into force."""
        return _when(self.ts)


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceSpan:
    """Consecutive policies with the same headline: one clause of the voice sentence."""

    headline: str
    since: str
    until: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicPost:
    """One post that went out, with its byline, as the public sees it."""

    id: PostId
    account: str
    deleted: Mark | None
    text: str | None
    """The words as they went out; None once erased, or for a deleted post."""
    text_mark: Mark | None
    """The entry committing to ``text`` (its ``text_hash``), when the words are shown."""
    erased: bool
    written_by: Mark
    suggested_by: Mark | None
    edited_by: tuple[Mark, ...]
    approved_by: tuple[Mark, ...]
    published: Mark
    """The ``post.published`` entry; its value is the platform URL (empty when none)."""
    entries: tuple[LogIndex, ...]
    policy: Mark | None = None
    """The policy it went out under: the hash its ``post.publishing`` entry names."""
    policy_version: int | None = None
    """That policy's version number, from the account's policy entries."""
    announces: Mark | None = None
    """For the policy file's announcement of a change of voice: the version it announces."""
    announced: tuple[str, ...] = ()
    """What that announcement says of the version (its ``data.announces.changed``): the parts
    of the voice it changed, and ``announce`` where it ended the announcements."""
    gates_sent: tuple[GateSent, ...] = ()
    """Who might reply to or quote it as it went out (its threadgate, then its postgate), in
    plain words ("Replies: only people mentioned", "Quotes: off"); none for a post that went
    out without them, or was deleted since."""
    gates_changed: tuple[GatesChange, ...] = ()
    """Each change of who may reply to or quote it once it was out, oldest first."""

    @property
    def latest_gates(self) -> tuple[GatesChange, ...]:
        """The last ``GATES_SHOWN`` changes of who may reply or quote, oldest first: what a card
        among many shows (the post's own record shows them all)."""
        return self.gates_changed[-GATES_SHOWN:]

    @property
    def earlier_gates(self) -> int:
        """How many changes come before ``latest_gates``."""
        return len(self.gates_changed) - len(self.latest_gates)

    @property
    def announcement(self) -> str:
        """What the policy file's announcement announces, in words: a change of voice, the end
        of the announcements (a policy that stopped asking for them), or both."""
        ended = PROMISE in self.announced
        if ended and len(self.announced) == 1:
            return "the end of the announcements of changes of voice"
        if ended:
            return "a change of voice and the end of the announcements of changes of voice"
        return "a change of voice"

    @property
    def url(self) -> str:
        """Where the post went out on its platform, if the platform gave a web link (a link of
        any other scheme is not shown: a page never links to ``javascript:``)."""
        return web_link(self.published.value) or ""

    def credits(self, person: str) -> list[str]:
        """The parts ``person`` had in this post, in words."""
        out = []
        if self.suggested_by is not None and self.suggested_by.value == person:
            out.append("suggested")
        if self.written_by.value == person:
            out.append("adopted and wrote" if self.suggested_by is not None else "wrote")
        if any(m.value == person for m in self.edited_by):
            out.append("edited")
        if any(m.value == person for m in self.approved_by):
            out.append("approved")
        if any(g.by.value == person for g in self.gates_changed):
            out.append("changed who may reply or quote")
        if self.deleted is not None and self.deleted.value == person:
            out.append("deleted")
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointView:
    """The latest signed checkpoint and the key to check it with."""

    size: int
    root: str
    note: str
    key: str
    """The verifier key, ``name+keyid+base64(0x01 ‖ public key)``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountPage:
    """An account's public page: its voice, its posts (newest first), and where to check them."""

    account: str
    in_force: bool
    voice: tuple[VoicePeriod, ...]
    spans: tuple[VoiceSpan, ...]
    posts: tuple[PublicPost, ...]
    older: PostId | None
    """The id to ask ``before`` for the next page, when there is one."""
    checkpoint: CheckpointView | None
    key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchResult:
    """What one search of the audit page found."""

    kind: str
    query: str
    posts: tuple[PublicPost, ...]
    accounts: tuple[str, ...]
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditPage:
    """The audit page: a search (when one was asked for) and the latest checkpoint."""

    kind: str
    query: str
    result: SearchResult | None
    problem: BylineError | None
    """Why the search could not be made, if it could not."""
    checkpoint: CheckpointView | None
    key: str


SEARCH_KINDS: Final = ("post", "person", "account", "url")


def _headline(policy: dict[str, Any]) -> str:
    tier = policy.get("tier")
    if tier == "direct":
        return "written by its owner"
    if tier == "delayed":
        return "written by its owner, with a cooling-off delay"
    if tier == "co-signed":
        return "co-signed by others before each post goes out"
    if tier == "managed":
        return "managed by a team"
    return f"on the {tier} tier"


def _strings(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _load(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) and isinstance(body.get("data"), dict) else None


def voice_history(rows: Sequence[Any]) -> tuple[VoicePeriod, ...]:
    """The policy events of one account as periods, oldest first."""
    bodies = [(LogIndex(int(r["idx"])), b) for r in rows if (b := _load(bytes(r["entry"]))) is not None]
    periods: list[VoicePeriod] = []
    for n, (index, body) in enumerate(bodies):
        data = body["data"]
        removed = body.get("type") == "policy.removed"
        policy = data.get("previous") if removed else data.get("policy")
        policy = policy if isinstance(policy, dict) else {}
        until = str(bodies[n + 1][1].get("ts")) if n + 1 < len(bodies) else None
        periods.append(VoicePeriod(
            index=index, type=str(body.get("type")), ts=str(body.get("ts")), until=until, removed=removed,
            tier=str(policy.get("tier", "")), owner=str(policy.get("owner", "")),
            writers=_strings(policy.get("writers")), approvers=_strings(policy.get("approvers")),
            required=int(policy.get("required") or 0), suggesters=_strings(policy.get("suggesters")),
            delay_seconds=int(policy.get("delay_seconds") or 0), speaks_as=str(policy.get("speaks_as") or ""),
            changed=_strings(data.get("changed")),
            headline="no longer carried by this gateway" if removed else _headline(policy),
        ))
    return tuple(periods)


def voice_spans(periods: Sequence[VoicePeriod]) -> tuple[VoiceSpan, ...]:
    """Consecutive periods with the same headline, joined: "written by its owner until 10 Nov,
    managed by a team since"."""
    spans: list[VoiceSpan] = []
    for period in periods:
        if spans and spans[-1].headline == period.headline:
            spans[-1] = VoiceSpan(headline=period.headline, since=spans[-1].since, until=period.until_day or None)
        else:
            spans.append(VoiceSpan(headline=period.headline, since=period.since_day, until=period.until_day or None))
    return tuple(spans)


def _mark(index: int, body: dict[str, Any], field: str) -> Mark:
    value = body.get(field) if field in ("actor", "ts") else body["data"].get(field)
    if "." in field:  # a key inside a key of data (verify.js reads it the same way)
        outer, inner = field.split(".", 1)
        value = (body["data"].get(outer) or {}).get(inner)
    return Mark(index=LogIndex(index), type=str(body.get("type")), field=field,
                value="" if value is None else str(value), ts=str(body.get("ts")))


def public_post(
    record: posts_sql.PostRecord, entries: Sequence[tuple[int, dict[str, Any]]], texts: dict[int, str | None]
) -> PublicPost | None:
    """A post that went out, as its log entries tell it; None when the log does not show it
    going out (then the public sees nothing of it). ``texts`` holds the committed text of its
    entries (None once erased)."""
    mine = [(i, b) for i, b in entries if b.get("post") == record.id and b.get("account") == record.account]
    submitted = next(((i, b) for i, b in mine if b.get("type") == "post.submitted"), None)
    published = [(i, b) for i, b in mine if b.get("type") == "post.published"]
    if submitted is None or not published:
        return None
    pub_index, pub_body = published[-1]
    version = pub_body["data"].get("version")
    sending = [(i, b) for i, b in mine if b.get("type") == "post.publishing" and i < pub_index
               and b["data"].get("version") == version]
    revised = [(i, b) for i, b in mine if b.get("type") == "post.revised" and i > pub_index]
    deleted = [(i, b) for i, b in mine if b.get("type") == "post.deleted"]
    text: str | None = None
    text_mark: Mark | None = None
    erased = False
    if not deleted:
        # The words shown are those of the last entry that committed to what the platform shows.
        source = revised[-1] if revised else (sending[-1] if sending else None)
        if source is not None:
            if texts.get(source[0]) is None:
                erased = True  # a lawful erasure: the words go from every page, the entries stay
            else:
                # What the gateway says went out; the browser checks it against the commitment.
                # A revision's entry commits to the words without the disclosure line.
                text = record.text if revised else record.published_text
                text_mark = _mark(source[0], source[1], "text_hash")
    author = str(submitted[1].get("actor"))
    editors: dict[str, Mark] = {}
    for i, b in mine:
        if b.get("type") in ("post.edited", "post.revised") and b.get("actor") != author:
            editors.setdefault(str(b.get("actor")), _mark(i, b, "actor"))
    approvers: dict[str, Mark] = {}
    for i, b in mine:
        if b.get("type") == "post.approved" and b["data"].get("version") == version and i < pub_index:
            approvers.setdefault(str(b.get("actor")), _mark(i, b, "actor"))
    suggester = submitted[1]["data"].get("suggested_by")
    announces = submitted[1]["data"].get("announces")
    changed = announces.get("changed") if isinstance(announces, dict) else None
    return PublicPost(
        id=record.id, account=record.account,
        deleted=_mark(deleted[-1][0], deleted[-1][1], "actor") if deleted else None,
        text=text, text_mark=text_mark, erased=erased,
        written_by=_mark(submitted[0], submitted[1], "actor"),
        suggested_by=_mark(submitted[0], submitted[1], "suggested_by") if isinstance(suggester, str) else None,
        edited_by=tuple(editors.values()), approved_by=tuple(approvers.values()),
        published=_mark(pub_index, pub_body, "url"),
        entries=tuple(LogIndex(i) for i, _ in mine),
        policy=_mark(sending[-1][0], sending[-1][1], "policy_sha256")
        if sending and isinstance(sending[-1][1]["data"].get("policy_sha256"), str) else None,
        announces=_mark(submitted[0], submitted[1], "announces.version") if isinstance(announces, dict) else None,
        announced=tuple(str(c) for c in changed) if isinstance(changed, list) else (),
        gates_sent=() if deleted else _gates_sent(record.options.get("gates"), sending[-1] if sending else None),
        gates_changed=tuple(
            GatesChange(by=_mark(i, b, "actor"), said=_gate_mark(i, b, "settings", b["data"]))
            for i, b in mine if b.get("type") == "post.gates_changed"
        ),
    )


def _gates_sent(gates: Any, sent: tuple[int, dict[str, Any]] | None) -> tuple[GateSent, ...]:
    """The gates a post went out with, in words: from the claim that sent it (``sent``), marked
    for the browser to check, when it recorded them; else from the gateway's record
    (``PostOptions.gates``), unmarked. The settings only, never the addresses a gate may list
    (the replies it hides are other people's)."""
    recorded = sent[1]["data"].get("gates") if sent is not None else None
    if sent is not None and isinstance(recorded, list) and sent_gates_problem(recorded) is None:
        marks = [_gate_mark(sent[0], sent[1], f"gates.{n}.settings", gate) for n, gate in enumerate(recorded)]
        return tuple(GateSent(words=mark.value, mark=mark) for mark in marks)
    return tuple(GateSent(words=words, mark=None) for words, _lists in gates_in_words(gates))


def _gate_mark(index: int, body: dict[str, Any], field: str, holder: dict[str, Any]) -> Mark:
    """A gate's settings in words, as a fact the browser checks: ``holder`` (the entry's ``data``
    or one of its ``gates``) holds the ``gate`` and its ``settings``, at ``field``."""
    return Mark(index=LogIndex(index), type=str(body.get("type")), field=field,
                value=gate_words(holder.get("gate"), holder.get("settings")), ts=str(body.get("ts")))


def _with_version(post: PublicPost, versions: Sequence[tuple[int, str, int]]) -> PublicPost:
    """The post with the number of the policy version it went out under: the last version
    recorded with that file before it went out (``versions``: index, hash, number)."""
    if post.policy is None:
        return post
    found = [number for index, sha, number in versions if sha == post.policy.value and index < post.policy.index]
    return replace(post, policy_version=found[-1]) if found else post


_RKEY = r"([A-Za-z0-9._:~-]{1,512})"
_AT_POST = re.compile(rf"at://[^/\s]+/app\.bsky\.feed\.post/{_RKEY}")
_BSKY_POST = re.compile(rf"/profile/[^/]+/post/{_RKEY}/?")
_X_HOSTS = frozenset({"x.com", "www.x.com", "mobile.x.com", "twitter.com", "www.twitter.com", "mobile.twitter.com"})
_X_STATUS = re.compile(r"/(?:[A-Za-z0-9_]{1,15}|i/web|i)/status(?:es)?/([0-9]{1,20})/?")
_MASTODON_STATUS = re.compile(r"/(?:@[^/]+|users/[^/]+/statuses)/([0-9]{1,20})/?")


async def _by_address(txn: Txn, query: str) -> list[str]:
    """The posts that went out at a platform address, as a follower would paste it: the
    address as recorded or its id there, and failing that the same post by another form of
    its address (without its query, fragment or trailing slash; Bluesky's at:// URI or an app's
    URL by handle or DID; x.com or twitter.com by any user name; a Mastodon status by either of
    its paths), or the link to its public record that a Bluesky post carries."""
    ids = await sql.public_post_by_url(txn, query)  # its address, or its id there
    if ids:
        return ids
    if match := _AT_POST.fullmatch(query):
        return await sql.public_post_by_remote(txn, id_suffix=f"/app.bsky.feed.post/{match.group(1)}")
    try:
        parts = urlsplit(query)
        host = (parts.hostname or "").lower()
    except ValueError:
        return []
    if parts.scheme not in ("http", "https") or not host:
        return []
    cleaned = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    for candidate in dict.fromkeys((cleaned, cleaned + "/")):
        if candidate != query and (ids := await sql.public_post_by_url(txn, candidate)):
            return ids
    asked = parse_qs(parts.query)
    if parts.path.rstrip("/").endswith("/audit") and asked.get("kind") == ["post"]:
        wanted = asked.get("q", [""])[0]
        return await sql.public_post(txn, wanted) if _post_id(wanted) else []
    if match := _BSKY_POST.fullmatch(parts.path):
        return await sql.public_post_by_remote(txn, id_suffix=f"/app.bsky.feed.post/{match.group(1)}")
    if host in _X_HOSTS and (match := _X_STATUS.fullmatch(parts.path)):
        return await sql.public_post_by_remote(txn, remote_id=match.group(1), url_prefix="https://x.com/")
    if match := _MASTODON_STATUS.fullmatch(parts.path):
        return await sql.public_post_by_remote(txn, remote_id=match.group(1),
                                               url_prefix=f"{parts.scheme}://{parts.netloc}/")
    return []


_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _known_name(account: str) -> None:
    """A name no policy file can have is no account: 404 before any query."""
    if not _ACCOUNT.fullmatch(account):
        raise BylineError(Code.UNKNOWN_ACCOUNT, "This gateway carries no account by that name.")


def _post_id(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and len(raw) <= 24


@dataclass(frozen=True, kw_only=True)
class Transparency:
    """Reads what the public may see of accounts and their posts, from the log and the posts."""

    db: Database
    checkpoints: CheckpointService
    policies: PolicyRegistry

    async def account(self, account: str, *, before: str | None = None) -> AccountPage:
        """An account's public page; 404 when the log has never recorded a policy for it."""
        _known_name(account)
        if before is not None and not _post_id(before):
            raise BylineError(Code.VALIDATION, "“before” must be a post id (digits only).", field="before")
        async with self.db.read() as txn:
            rows = await sql.policy_entries(txn, account)
            if not rows:
                raise BylineError(Code.UNKNOWN_ACCOUNT, f"This gateway carries no account named “{account}”.")
            ids = await sql.public_post_ids(txn, account, limit=PAGE_SIZE + 1, before=before)
            posts = await self._posts(txn, ids[:PAGE_SIZE])
        voice = voice_history(rows)
        shown = [i for p in posts for i in p.entries] + [p.index for p in voice]
        checkpoint = await self._checkpoint(max(shown, default=-1))
        return AccountPage(
            account=account, in_force=self.policies.get(account) is not None and not voice[-1].removed,
            voice=voice, spans=voice_spans(voice),
            posts=tuple(posts), older=PostId(ids[PAGE_SIZE - 1]) if len(ids) > PAGE_SIZE else None,
            checkpoint=checkpoint, key=self.checkpoints.verifier_key(),
        )

    async def voice(self, account: str) -> tuple[VoicePeriod, ...]:
        """An account's voice history, oldest first; 404 for an account the log never saw."""
        _known_name(account)
        async with self.db.read() as txn:
            rows = await sql.policy_entries(txn, account)
        if not rows:
            raise BylineError(Code.UNKNOWN_ACCOUNT, f"This gateway carries no account named “{account}”.")
        return voice_history(rows)

    async def search(self, kind: str, query: str) -> SearchResult:
        """Posts that went out, found by post id, person, account or platform URL."""
        query = query.strip()
        if kind not in SEARCH_KINDS:
            raise BylineError(Code.VALIDATION, "Choose what to search by: post, person, account or platform URL.",
                              field="kind")
        if not query:
            raise BylineError(Code.VALIDATION, "Enter something to search for.", field="q")
        if len(query) > 2048 or any(ord(c) < 0x20 or ord(c) == 0x7F for c in query):
            raise BylineError(Code.VALIDATION, "That search is too long or holds control characters.", field="q")
        accounts: tuple[str, ...] = ()
        async with self.db.read() as txn:
            if kind == "post":
                if not _post_id(query):
                    raise BylineError(Code.VALIDATION, "A post id is made of digits only.", field="q")
                ids = await sql.public_post(txn, query)
            elif kind == "url":
                ids = await _by_address(txn, query)
            elif kind == "account":
                name = query.removeprefix("@")
                if not _ACCOUNT.fullmatch(name):
                    raise BylineError(Code.VALIDATION, "An account name is letters, digits, “.”, “_” and “-”.",
                                      field="q")
                accounts = (name,) if await sql.known_accounts(txn, name) else ()
                ids = await sql.public_post_ids(txn, name, limit=SEARCH_LIMIT, before=None) if accounts else []
            else:
                ids = await sql.public_posts_of_person(txn, query, limit=SEARCH_LIMIT)
            posts = await self._posts(txn, ids)
        if kind == "person":
            posts = [p for p in posts if p.credits(query)]
        found = len(posts) + len(accounts)
        note = "Nothing that went out matches." if not found else ""
        return SearchResult(kind=kind, query=query, posts=tuple(posts), accounts=accounts, note=note)

    async def audit(self, kind: str | None, query: str | None) -> AuditPage:
        """The audit page: the search asked for (or its problem), and the latest checkpoint."""
        kind = kind or "post"
        result: SearchResult | None = None
        problem: BylineError | None = None
        if query is not None:
            try:
                result = await self.search(kind, query)
            except BylineError as exc:
                problem = exc
        return AuditPage(
            kind=kind if kind in SEARCH_KINDS else "post", query=(query or "")[:2048], result=result,
            problem=problem, key=self.checkpoints.verifier_key(),
            checkpoint=await self._checkpoint(max((i for p in result.posts for i in p.entries), default=-1)
                                              if result is not None else -1),
        )

    async def _posts(self, txn: Txn, ids: Sequence[str]) -> list[PublicPost]:
        records = [r for i in ids if (r := await posts_sql.get_post(txn, i)) is not None]
        rows = await sql.post_entries(txn, [r.id for r in records])
        bodies = [(int(r["idx"]), b) for r in rows if (b := _load(bytes(r["entry"]))) is not None]
        texts = await sql.committed_texts(
            txn, [i for i, b in bodies if b.get("type") in ("post.publishing", "post.revised")]
        )
        by_post: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for index, body in bodies:
            by_post.setdefault(str(body.get("post")), []).append((index, body))
        versions: dict[str, list[tuple[int, str, int]]] = {}
        for account in {r.account for r in records}:
            versions[account] = [
                (int(row["idx"]), str(b["data"].get("sha256")), b["data"]["version"])
                for row in await sql.policy_entries(txn, account)
                if (b := _load(bytes(row["entry"]))) is not None and type(b["data"].get("version")) is int
            ]
        out = []
        for record in records:
            post = public_post(record, by_post.get(record.id, []), texts)
            if post is not None:
                out.append(_with_version(post, versions.get(record.account, [])))
        return out

    async def _checkpoint(self, newest: int) -> CheckpointView | None:
        """The latest checkpoint, signed now when the newest entry shown is not in it yet (it
        signs only when the tree grew: a page cannot make the gateway sign more than the log grows)."""
        async with self.db.read() as txn:
            row = await log_sql.latest_checkpoint(txn)
        note = bytes(row["note"]) if row is not None else None
        if newest >= 0 and (row is None or int(row["size"]) <= newest):
            # When refused, the latest is shown as it is: the entries past it say they are not in it yet.
            with contextlib.suppress(CheckpointRefused):
                note = await self.checkpoints.sign_now()
        if note is None:
            return None
        lines = note.decode("utf-8", "replace").split("\n")
        return CheckpointView(size=int(lines[1]), root=lines[2], note=note.decode("utf-8", "replace"),
                              key=self.checkpoints.verifier_key())
