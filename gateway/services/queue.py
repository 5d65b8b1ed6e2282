"""What the people's pages show: a person's queue, one post's history, one account's policy.

Built on ``PostService`` (which decides who may see and do what, exactly as for the JSON API) and
the authorization rules; this module only gathers and shapes. Every answer is a frozen view
model the templates render; nothing here changes state.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal

from adapters.bluesky import POST_COLLECTION, blob_digest
from gateway.audit.gates import gate_words, gates_in_words
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.lifecycle import Action, State, allowed
from gateway.policy.credit import contributors
from gateway.policy.engine import Act, Role, gate_for, may, owner_confirms, roles
from gateway.policy.loader import LoadedPolicy, PolicyRegistry
from gateway.services.authorization import visible_accounts
from gateway.services.content import as_carried
from gateway.services.platforms import Platforms
from gateway.services.posts import (
    ADOPTIONS_FOLLOWED,
    Caller,
    DecisionView,
    PostService,
    PostView,
    VersionView,
    options_by_version,
    unchanged_between,
)
from gateway.services.reply_targets import web_link
from gateway.storage import log as log_sql
from gateway.storage import media as media_sql
from gateway.storage import queue as sql
from gateway.storage.db import Database

QUEUE_LIMIT: Final = 200
"""The most posts of one kind the queue lists: more than anyone reviews in one sitting."""
HISTORY_LIMIT: Final = 50
"""The most policy changes an account page lists."""

_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One run of a word-level difference: words kept, taken out or put in."""

    kind: Literal["same", "del", "ins"]
    text: str


def word_diff(before: str, after: str) -> tuple[Change, ...]:
    """The difference between two texts, word by word (spaces and punctuation are words of
    their own, so a changed comma shows as one)."""
    old, new = _WORDS.findall(before), _WORDS.findall(after)
    out: list[Change] = []

    def add(kind: Literal["same", "del", "ins"], words: Sequence[str]) -> None:
        if not words:
            return
        text = "".join(words)
        if out and out[-1].kind == kind:
            out[-1] = Change(kind=kind, text=out[-1].text + text)
        else:
            out.append(Change(kind=kind, text=text))

    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        if op == "equal":
            add("same", old[i1:i2])
        else:
            add("del", old[i1:i2])
            add("ins", new[j1:j2])
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shown:
    """One thing besides its words that goes out with a post (its content warning, who sees it,
    what it replies to or quotes, a link under its words…), as its approvers read it."""

    label: str
    value: str
    link: str | None = None
    """A page of this gateway to follow (the post a reply waits for)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionChange:
    """One thing besides its words that a version changed (its content warning, who sees it, its
    pictures, an alt text…): what it was and what it is, None where there was none."""

    label: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Picture:
    """One upload that goes out with a post: the file itself, its alt text, and its focal point."""

    url: str
    description: str | None
    focus: str | None = None
    """Where previews crop it, as its approvers read it ("left of centre, near the top"); None
    for none set (the centre)."""


@dataclass(frozen=True, kw_only=True)
class Revises:
    """The published post a pending revision would edit, as its approvers must weigh it: the
    words its platform shows now, and what the revision changes of them."""

    post_id: str
    url: str | None
    """Where its platform shows it; None where it is not known."""
    shown: str
    """Its words as they went out (with their disclosure line)."""
    diff: tuple[Change, ...]
    """From the words it shows to those the revision would put out."""


@dataclass(frozen=True, kw_only=True)
class PostCard:
    """One post as a person's queue or its own page shows it, with what that person may do."""

    post: PostView
    diff: tuple[Change, ...]
    """From the version before to this one; empty for a first version."""
    diff_from: int | None
    approved_by: tuple[str, ...]
    """Others whose approval of the version shown counts: given for the text shown."""
    my_decision: str | None
    """What the viewer decided on the version shown, if anything."""
    mine_counts: bool = True
    """Whether the viewer's approval of the version shown, if they gave one, counts (given for
    the text shown, by one of its approvers still): one given for other words does not."""
    actions: frozenset[str]
    """The forms to show: approve, reject, edit, cancel, adopt, dismiss."""
    seconds_left: int | None
    """Until a scheduled post goes out (its cooling-off window); None for others."""
    wrote_it: bool
    """Whether the viewer put words into it (and so, where the policy names approvers, does
    not approve it)."""
    shown: tuple[Shown, ...] = ()
    """What else goes out with the version shown: an approval is for all of it, not the words alone."""
    pictures: tuple[Picture, ...] = ()
    """The uploads that go out with it, in order, each with its alt text."""
    changed: tuple[OptionChange, ...] = ()
    """What else the version shown changed from the one before (``diff_from``)."""
    revises: Revises | None = None
    """For a pending revision, the published post it would edit; None for any other post."""
    diff_from_mine: bool = False
    """Whether ``diff_from`` is the version the viewer approved (an approval later versions set
    aside), rather than the one before."""


@dataclass(frozen=True, kw_only=True)
class AccountLink:
    """An account the person has a role on."""

    name: str
    tier: str
    roles: tuple[str, ...]
    problem: str | None


@dataclass(frozen=True, kw_only=True)
class Queue:
    """What waits for one person."""

    person: str
    to_approve: tuple[PostCard, ...]
    suggestions: tuple[PostCard, ...]
    cooling: tuple[PostCard, ...]
    waiting: tuple[PostCard, ...]
    """Their own posts waiting on others: held for approval, or suggested."""
    accounts: tuple[AccountLink, ...]


@dataclass(frozen=True, kw_only=True)
class VersionStep:
    """One version of a post in its history, with the difference from the one before and the
    decisions taken on it."""

    version: VersionView
    diff: tuple[Change, ...]
    decisions: tuple[DecisionView, ...]
    changed: tuple[OptionChange, ...] = ()
    """What else it changed from the one before: content warning, visibility, pictures, alt texts…"""


@dataclass(frozen=True, kw_only=True)
class EventLine:
    """One log entry about a post, for people: what happened, and where to check it."""

    index: int
    type: str
    what: str
    actor: str
    ts: str
    version: int | None
    state: str | None
    reason: str | None
    note: str | None
    """A count worth saying: how many approvals an approval made."""
    proof_size: int | None
    """The signed tree size its inclusion proof is asked for, or None while none covers it."""


@dataclass(frozen=True, kw_only=True)
class PostPage:
    """One post's whole history."""

    card: PostCard
    versions: tuple[VersionStep, ...]
    events: tuple[EventLine, ...]
    checkpoint_size: int | None


@dataclass(frozen=True, kw_only=True)
class RuleLine:
    """One rule of a policy, readably."""

    name: str
    action: str
    matches: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class PolicyChange:
    """One entry of an account's policy history."""

    index: int
    type: str
    ts: str
    changed: tuple[str, ...]
    tier: str | None
    writers: tuple[str, ...]
    approvers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AccountPage:
    """One account as its people and admins see it."""

    name: str
    platform: str
    handle: str
    tier: str
    owner: str
    writers: tuple[str, ...]
    approvers: tuple[str, ...]
    required: int
    expire_after: int | None
    delay: int
    suggesters: tuple[str, ...]
    disclosure: str | None
    rules: tuple[RuleLine, ...]
    text_limit: int
    rate_limit: tuple[int, int] | None
    """At most this many posts in this many seconds."""
    file: str
    sha256: str
    my_roles: tuple[str, ...]
    admin: bool
    problem: str | None
    refused: tuple[str, ...]
    history: tuple[PolicyChange, ...]
    counts: tuple[tuple[str, int], ...]
    profile_problem: str | None = None
    """Why the profile byline could not be set (the account's posts still go out), or None."""
    scope_warning: str | None = None
    """What the account's credential cannot do though its posts go out (a Mastodon scope a
    recovery needs), or None."""


_WHAT = {
    "post.submitted": "submitted", "post.edited": "edited", "post.approved": "approved",
    "post.rejected": "rejected", "post.cancelled": "cancelled", "post.adopted": "adopted",
    "post.dismissed": "dismissed", "post.published": "published", "post.failed": "failed",
    "post.deleted": "deleted", "post.revising": "new words sent to the platform", "post.revised": "revised",
    "post.revision_failed": "revision not made",
    "post.gates_changed": "who may reply or quote changed", "post.redecided": "decided again",
    "post.expired": "expired", "post.retried": "retried", "post.deferred": "deferred",
    "post.claimed": "taken by the publisher", "post.refused": "refused",
}


@dataclass(kw_only=True)
class QueueService:
    """Answers what a person's pages show."""

    db: Database
    posts: PostService
    policies: PolicyRegistry
    platforms: Platforms
    clock: Clock
    admins: frozenset[str] = frozenset()

    # -- the queue ------------------------------------------------------------------------

    async def _candidates(self, caller: Caller) -> tuple[list[PostView], list[PostView], list[PostView]]:
        """Held, suggested and scheduled posts of the accounts the caller may see."""
        lists = []
        for state in (State.HELD, State.SUGGESTED, State.SCHEDULED):
            lists.append(await self.posts.list(caller, account=None, state=state.value, limit=QUEUE_LIMIT))
        return lists[0], lists[1], lists[2]

    async def fingerprint(self, caller: Caller) -> str:
        """A short digest of what the queue would show: it changes when the queue does."""
        held, suggested, scheduled = await self._candidates(caller)
        marks = sorted((p.id, p.version, p.state, p.updated_at) for p in (*held, *suggested, *scheduled))
        accounts = sorted(visible_accounts(self.policies, caller).items())
        raw = json.dumps([marks, [(a, sorted(r)) for a, r in accounts]])
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    async def queue(self, caller: Caller) -> Queue:
        """Everything waiting for ``caller``: posts to approve, suggestions to take up or decline,
        their own posts in their cooling-off window, and their own posts waiting on others."""
        held, suggested, scheduled = await self._candidates(caller)
        now = now_micros(self.clock)
        user = caller.user
        to_approve, suggestions, cooling, waiting = [], [], [], []
        for post in held:
            loaded = self.policies.get(post.account)
            if loaded is None:
                continue
            if may(loaded.policy, user, Act.APPROVE, author=post.author, approvers=post.approvers):
                to_approve.append(await self._card(caller, post.id, now))
            elif post.author == user:
                waiting.append(await self._card(caller, post.id, now))
        for post in suggested:
            loaded = self.policies.get(post.account)
            if loaded is None:
                continue
            if Role.WRITER in roles(loaded.policy, user):
                suggestions.append(await self._card(caller, post.id, now))
            elif post.author == user:
                waiting.append(await self._card(caller, post.id, now))
        for post in scheduled:
            if post.author == user:
                cooling.append(await self._card(caller, post.id, now))
        accounts = tuple(
            AccountLink(name=name, tier=self.policies.policies[name].policy.tier.value,
                        roles=tuple(sorted(r.value for r in held_by)),
                        problem=self.platforms.unhealthy.get(name))
            for name, held_by in visible_accounts(self.policies, caller).items()
        )
        return Queue(person=user, to_approve=tuple(to_approve), suggestions=tuple(suggestions),
                     cooling=tuple(sorted(cooling, key=lambda c: c.post.publish_at or 0)),
                     waiting=tuple(waiting), accounts=accounts)

    async def _card(self, caller: Caller, post_id: str, now: int) -> PostCard:
        return await self._card_of(caller, await self.posts.view(caller, post_id), now)

    async def card(self, caller: Caller, post_id: str, *, since: int | None = None) -> PostCard:
        """One post's card as ``caller``'s queue shows it now, with what changed since version
        ``since`` (the one they read, when a decision on it came too late)."""
        post = await self.posts.view(caller, post_id)
        return await self._card_of(caller, post, now_micros(self.clock), since=since)

    async def _card_of(self, caller: Caller, post: PostView, now: int, *, since: int | None = None) -> PostCard:
        """``post``'s card for ``caller``, with what it carries from elsewhere: its pictures, the
        published post it would edit, the words it replies to."""
        return card_of(post, self.policies.get, caller.user, now, pictures=await self._pictures(post), since=since,
                       revises=await self._revises(caller, post), replied=await self._replied(caller, post))

    async def _replied(self, caller: Caller, post: PostView) -> tuple[Shown, ...] | None:
        """What the card of ``post``, a reply to a post of the account's not out yet, shows of
        the words it answers (after "Replies to"): those of the version its approvals answer
        (``PostOptions.answers_post``/``answers_version``), since the publisher sends the reply
        only if its parent goes out with them; where the parent has other words since (edited,
        or a suggestion adopted with other words), that said plainly, with its words now. A
        suggestion adopted since is the post it was adopted into, which the reply waits for
        (``gateway.services.publisher``), not the suggestion, whose words never go out. For a
        reply stored before the version was kept, its parent's words now. None for any other
        post, or a parent out of the caller's reach."""
        parent = post.options.get("reply_to_post")
        if not isinstance(parent, str):
            return None
        answers, version = post.options.get("answers_post"), post.options.get("answers_version")
        try:
            found = await self.posts.view(caller, parent, history=False)
            for _ in range(ADOPTIONS_FOLLOWED):
                if found.state != State.ADOPTED.value or found.adopted_into is None:
                    break
                found = await self.posts.view(caller, found.adopted_into, history=False)
            if not isinstance(answers, str) or type(version) is not int:
                return (Shown(label=ANSWERED, value=found.display_text or "(no words)"),)
            history = (await self.posts.view(caller, answers)).versions or ()
        except BylineError:
            return None
        kept = {v.version: v for v in history}
        if answers == found.id and _same_since(history, version, found.version):
            return (Shown(label=ANSWERED, value=found.display_text or "(no words)"),)
        then = kept.get(version)
        words = (then.text or "(no words)") if then is not None else f"Not known: version {version} was not kept."
        where = f"version {found.version}" if found.id == answers else f"post {found.id}, version {found.version}"
        return (Shown(label=ANSWERED, value=words),
                Shown(label=CHANGED, value=f"The post it answers has changed since (now {where}): this reply "
                                           "will not go out unless its author edits it."),
                Shown(label="Its words now", value=found.display_text or "(no words)", link=f"/posts/{found.id}"))

    async def _revises(self, caller: Caller, post: PostView) -> Revises | None:
        """For a pending revision, the published post it would edit, as its card shows it: an
        approver approves a change of words the world has read, and must see both."""
        if post.revises is None:
            return None
        published = await self.posts.view(caller, post.revises, history=False)
        url = published.remote_url
        # A link only to a web address: the platform gave it, and a page never links elsewhere.
        linked = url if url is not None and url.startswith(("https://", "http://")) else None
        return Revises(post_id=published.id, url=linked, shown=published.display_text,
                       diff=word_diff(published.display_text, post.display_text))

    async def _pictures(self, post: PostView) -> tuple[Picture, ...]:
        """The uploads ``post`` goes out with, as its card shows them."""
        media_ids = [str(m) for m in post.options.get("media_ids", ())]
        if not media_ids:
            return ()
        async with self.db.read() as txn:
            # A pending revision's pictures as they would go out: with the alt text it holds.
            rows = {r["id"]: r for r in as_carried(post.options, await media_sql.info(txn, media_ids))}
        # A post written as a Bluesky record sends each picture's alt text in its embed, never
        # its upload's (which may have some of its own, given through the Mastodon API).
        embed = post.options.get("embed")
        alts = _embed_alts(embed) if isinstance(embed, Mapping) else None
        return tuple(Picture(url=f"/media/{rows[m]['id']}/{rows[m]['digest']}",
                             description=rows[m]["description"] if alts is None else alts.get(rows[m]["digest"]),
                             focus=focus_words(rows[m]["focus"]))
                     for m in media_ids if m in rows)

    # -- one post ---------------------------------------------------------------------------

    async def post_page(self, caller: Caller, post_id: str) -> PostPage:
        """One post the caller may see, with every version, decision and log entry."""
        post = await self.posts.view(caller, post_id)
        async with self.db.read() as txn:
            latest = await log_sql.latest_checkpoint(txn)
        size = int(latest["size"]) if latest is not None else None
        versions = post.versions or ()
        decisions = post.approvals or ()
        options = options_by_version(post)
        steps = []
        for i, version in enumerate(versions):
            before = versions[i - 1].text if i > 0 else None
            steps.append(VersionStep(
                version=version,
                diff=word_diff(before, version.text) if before is not None else (),
                decisions=tuple(d for d in decisions if d.version == version.version),
                changed=_version_changes(versions[i - 1], version, options) if i > 0 else (),
            ))
        events = tuple(_event_line(e.index, e.type, e.actor, e.ts, e.data, size) for e in post.events or ())
        card = await self._card_of(caller, post, now_micros(self.clock))
        return PostPage(card=card,
                        versions=tuple(reversed(steps)), events=events, checkpoint_size=size)

    # -- one account ------------------------------------------------------------------------

    async def account_page(self, caller: Caller, account: str) -> AccountPage:
        """The policy in force for an account, readably, with its history, health and posts by
        state: for the people with a role on it, and for admins."""
        loaded = self.policies.get(account)
        if loaded is None:
            raise BylineError(Code.UNKNOWN_ACCOUNT, f"no account named {account!r}")
        admin = caller.user in self.admins and caller.account is None
        held_by = visible_accounts(self.policies, caller).get(account)
        if held_by is None and not admin:
            raise BylineError(Code.FORBIDDEN, f"{caller.user} has no role on {account}")
        async with self.db.read() as txn:
            counts = await sql.posts_by_state(txn, account)
            entries = await sql.policy_entries(txn, account, limit=HISTORY_LIMIT)
        return account_page(
            loaded, my_roles=held_by or frozenset(), admin=admin, problem=self.platforms.unhealthy.get(account),
            refused=tuple(str(issue) for issue in self.policies.errors.get(loaded.path.name, [])),
            history=tuple(_policy_change(int(r["idx"]), json.loads(bytes(r["entry"]))) for r in entries),
            counts=counts, profile_problem=self.platforms.profile_problems.get(account),
            scope_warning=self.platforms.scope_warnings.get(account),
        )


def card_of(
    post: PostView, policy_of: Callable[[str], LoadedPolicy | None], user: str, now: int,
    *, pictures: tuple[Picture, ...] = (), since: int | None = None, revises: Revises | None = None,
    replied: tuple[Shown, ...] | None = None,
) -> PostCard:
    """A post's card for ``user``: the difference from the version before (from version
    ``since``, where the person last read that one; else from the last version they approved,
    where a later one set their approval aside), who else approved the version shown, what
    else goes out with it (with the words it ``replied`` to, of a post of the account's), and
    the forms the policy in force lets them use now."""
    loaded = policy_of(post.account)
    versions = post.versions or ()
    diff: tuple[Change, ...] = ()
    diff_from = None
    changed: tuple[OptionChange, ...] = ()
    # An approver whose approval a later version set aside read the version they approved: what
    # they must read before approving again is all that changed since, not the last step alone.
    approved = max((d.version for d in post.approvals or ()
                    if d.approver == user and d.decision == "approve" and not d.current), default=None)
    read = next((v for v in versions[:-1] if v.version == (since if since is not None else approved)), None)
    before = read or (versions[-2] if len(versions) >= 2 else None)
    if before is not None:
        diff_from = before.version
        diff = word_diff(before.text, versions[-1].text)
        changed = _version_changes(before, versions[-1], options_by_version(post))
    current = [d for d in post.approvals or () if d.current]
    mine = next((d.decision for d in current if d.approver == user), None)
    # Only the approvals that count for the text shown, as the count beside them (``approved_by``).
    others = tuple(a for a in post.approved_by if a != user)
    seconds = None
    if post.state == State.SCHEDULED.value and post.publish_at is not None:
        seconds = max(0, (post.publish_at - now) // 1_000_000)
    wrote = user in contributors(author=post.author, editors=post.editors, suggested_by=post.suggested_by)
    counts = mine != "approve" or user in post.approved_by
    # An approval that does not count (given for other words than go out now) does not stand in
    # the way of a decision on these: the post service replaces it (``posts._decide``).
    return PostCard(post=post, diff=diff, diff_from=diff_from, approved_by=others, my_decision=mine,
                    mine_counts=counts,
                    actions=_actions(post, loaded, user, decided=mine is not None and counts), seconds_left=seconds,
                    wrote_it=wrote, shown=_with_replied(what_else(post.options), replied), pictures=pictures,
                    changed=changed, revises=revises, diff_from_mine=read is not None and since is None)


def _version_changes(
    before: VersionView, after: VersionView, options: Mapping[int, Mapping[str, Any]],
) -> tuple[OptionChange, ...]:
    """What ``after`` changed from ``before`` besides its words, ``options`` giving each one's
    (:func:`options_by_version`)."""
    return option_changes(options.get(before.version, {}), before.media, options.get(after.version, {}), after.media)


def option_changes(
    before: Mapping[str, Any], before_media: Sequence[Mapping[str, Any]] | None,
    after: Mapping[str, Any], after_media: Sequence[Mapping[str, Any]] | None,
) -> tuple[OptionChange, ...]:
    """What changed between two versions besides their words: each thing :func:`what_else` names
    (content warning, who sees it, a link card…), the pictures (which are new, which were taken
    out) and the alt text of each picture both have, where both versions kept theirs (``*_media``:
    their uploads as ``VersionView.media`` holds them, None for a version that did not keep them)."""
    out: list[OptionChange] = []
    old, new = _by_label(what_else(before)), _by_label(what_else(after))
    for label in dict.fromkeys([*old, *new]):
        was, now = old.get(label), new.get(label)
        if was != now:
            out.append(OptionChange(label=label, before="; ".join(was) if was else None,
                                    after="; ".join(now) if now else None))
    old_ids = [str(m) for m in before.get("media_ids", ())]
    new_ids = [str(m) for m in after.get("media_ids", ())]
    if old_ids != new_ids:
        out.append(OptionChange(
            label="Pictures",
            before=", ".join(f"picture {n}" + ("" if m in new_ids else " (taken out)")
                             for n, m in enumerate(old_ids, 1)) or None,
            after=", ".join(f"picture {n}" + ("" if m in old_ids else " (new)")
                            for n, m in enumerate(new_ids, 1)) or None,
        ))
    if before_media is not None and after_media is not None:
        was_alt = {str(m.get("id")): m.get("description") for m in before_media}
        now_alt = {str(m.get("id")): m.get("description") for m in after_media}
        # A version kept before focal points were names none: its crop is not known, not changed.
        was_focus = {str(m.get("id")): m.get("focus") for m in before_media if "focus" in m}
        now_focus = {str(m.get("id")): m.get("focus") for m in after_media if "focus" in m}
        for n, m in enumerate(new_ids, 1):
            if m in now_alt and m in was_alt and was_alt[m] != now_alt[m]:
                out.append(OptionChange(label=f"Alt text of picture {n}", before=was_alt[m] or "none",
                                        after=now_alt[m] or "none"))
            if m in now_focus and m in was_focus and was_focus[m] != now_focus[m]:
                out.append(OptionChange(label=f"Focal point of picture {n}", before=focus_words(was_focus[m]),
                                        after=focus_words(now_focus[m])))
    return tuple(out)


def focus_words(focus: str | None) -> str:
    """A focal point ("x,y" from -1 to 1, y up, as Mastodon has it) as an approver reads it:
    where previews crop the picture, in words and in figures."""
    if not focus:
        return "centre (none set)"
    try:
        x, y = (float(n) for n in focus.split(","))
    except ValueError:
        return focus
    across = "centre" if abs(x) < 0.2 else ("right" if x > 0 else "left")
    up = "middle" if abs(y) < 0.2 else ("top" if y > 0 else "bottom")
    return f"{up} {across} (x {x:g}, y {y:g})"


def _by_label(shown: Sequence[Shown]) -> dict[str, list[str]]:
    """What :func:`what_else` names, its values grouped by label, in order."""
    grouped: dict[str, list[str]] = {}
    for line in shown:
        grouped.setdefault(line.label, []).append(line.value)
    return grouped


_VISIBILITY: Final = {
    "public": "public", "unlisted": "unlisted (public, but not in public timelines)",
    "private": "followers only", "direct": "direct: only the people it mentions",
}


def what_else(options: Mapping[str, Any]) -> tuple[Shown, ...]:
    """Everything a post's options send out besides its words and uploads, as its approvers
    read it: the words are not all an approval is for."""
    out: list[Shown] = []
    if spoiler := options.get("spoiler_text"):
        out.append(Shown(label="Content warning", value=str(spoiler)))
    if options.get("sensitive"):
        out.append(Shown(label="Media", value="marked sensitive (hidden until opened)"))
    if visibility := options.get("visibility"):
        out.append(Shown(label="Who sees it", value=_VISIBILITY.get(str(visibility), str(visibility))))
    if language := options.get("language"):
        out.append(Shown(label="Language", value=str(language)))
    if parent := options.get("reply_to_post"):
        out.append(Shown(label="Replies to", value=f"post {parent}", link=f"/posts/{parent}"))
    elif parent := options.get("reply_to"):
        out.append(_replies_to(str(parent), options.get("reply_to_url"), options.get("reply_to_account"),
                               options.get("reply_to_boost")))
        out += _replied_words(options)
    if isinstance(embed := options.get("embed"), Mapping):
        out += _embed_shown(embed, options)
    if isinstance(labels := options.get("self_labels"), Mapping):
        values = [str(v.get("val")) for v in labels.get("values", ()) if isinstance(v, Mapping)]
        out.append(Shown(label="Labels", value=", ".join(values) or "none"))
    if isinstance(kept := options.get("facets"), Mapping):
        for facet in kept.get("facets", ()):
            for feature in facet.get("features", ()) if isinstance(facet, Mapping) else ():
                if isinstance(feature, Mapping) and isinstance(target := feature.get("uri") or feature.get("did"), str):
                    out.append(Shown(label="Link under its words", value=target))
                elif isinstance(feature, Mapping) and isinstance(tag := feature.get("tag"), str):
                    # The feed a hashtag opens is its tag, which need not be the words it is under.
                    out.append(Shown(label="Hashtag under its words", value=f"#{tag}"))
    if isinstance(gates := options.get("gates"), Mapping):
        out += _gates_shown(gates)
    return tuple(out)


def _with_replied(shown: tuple[Shown, ...], replied: tuple[Shown, ...] | None) -> tuple[Shown, ...]:
    """``shown``, with what a reply answers (``replied``) after what it replies to."""
    if not replied:
        return shown
    out: list[Shown] = []
    for item in shown:
        out.append(item)
        if item.label == "Replies to":
            out += replied
    return tuple(out)


def _same_since(versions: Sequence[VersionView], answered: int, now: int) -> bool:
    """Whether a post at version ``now`` has the words (and what goes with them) of version
    ``answered``, as the publisher holds a reply to it (:func:`~gateway.services.posts.unchanged_between`)."""
    return unchanged_between(((v.version, (v.text, json.dumps(v.options, sort_keys=True),
                                           json.dumps(v.media, sort_keys=True))) for v in versions), answered, now)


ANSWERED: Final = "Words it answers"
"""The label of what a reply answers, in words, beside whose it is ("Replies to")."""
CHANGED: Final = "Changed since"
"""The label under which a reply's card says the post it answers has other words now."""


def _replied_words(options: Mapping[str, Any]) -> list[Shown]:
    """The words of the status on the platform a reply answers, as kept when the reply was
    written (``PostOptions.reply_to_text``), after its content warning where it carried one;
    where they could not be read then, that said plainly with why; for a reply stored before
    words were kept, that said (:func:`not_kept`)."""
    if isinstance(text := options.get("reply_to_text"), str):
        words = text or "(no words)"
        if isinstance(warning := options.get("reply_to_warning"), str):
            words = f"Content warning: {warning}\n\n{words}"
        return [Shown(label=ANSWERED, value=words)]
    if isinstance(why := options.get("reply_to_unread"), str):
        return [Shown(label=ANSWERED, value=f"Not known: they could not be read when the reply was written ({why}). "
                                            "Read them on the platform before you approve.")]
    return [not_kept(ANSWERED, "reply", options.get("reply_to_url"))]


def not_kept(label: str, kind: str, url: Any) -> Shown:
    """What a ``kind`` (a reply, a quote) stored before Byline kept the words it names shows
    under ``label``: that they were not kept, and where to read them, rather than nothing."""
    link = web_link(url)
    where = f": {link}" if link else ""
    return Shown(label=label, value=f"Words not kept: this {kind} was written before Byline kept them. "
                                    f"Read them on the platform before you approve{where}.", link=link)


def _replies_to(parent: str, url: Any, account: Any, boost: Any = None) -> Shown:
    """What a reply to a status on the platform answers, as its approvers read it: whose status
    (a Bluesky post, for an ``at://`` address) and where to read it, where the platform said so
    when the reply was written, and whose boost of it the reply names; else its id, linking
    nowhere."""
    if isinstance(url, str):
        kind = "post" if parent.startswith("at://") else "status"
        whose = f"@{account}'s {kind}" if isinstance(account, str) else f"a {kind}"
        if isinstance(boost, str):
            whose = f"@{boost}'s boost of {whose}"
        return Shown(label="Replies to", value=f"{whose} on the platform: {url}", link=web_link(url))
    return Shown(label="Replies to", value=f"{parent} on the platform")


def _gates_shown(gates: Mapping[str, Any]) -> list[Shown]:
    """Who may reply to and quote the post once it is out (its threadgate and postgate), in the
    words the public pages use for a change of them; the lists a threadgate lets reply, by
    address. Each goes out with the approved version, without approvals of its own."""
    out: list[Shown] = []
    for words, lists in gates_in_words(gates):
        out.append(Shown(label="Who may reply or quote", value=words))
        out += [Shown(label="List that may reply", value=uri) for uri in lists]
    return out


def _quotes(quoted: str, options: Mapping[str, Any]) -> list[Shown]:
    """What a quote of ``quoted`` shows, as its approvers read it: whose post and where to read
    it, and its words, as kept when the quote was written (``PostOptions.quote_text``); for a
    post of the account's not yet out, that post at the version the quote goes out with. Where
    nothing was kept (a feed, a list, a quote stored before), its address, linking nowhere."""
    out: list[Shown] = []
    own, url, account = options.get("quote_of_post"), options.get("quote_url"), options.get("quote_account")
    if isinstance(own, str):
        version = options.get("quote_of_version")
        out.append(Shown(label="Quotes", value=f"post {own} of this account, version {version}, not out yet",
                         link=f"/posts/{own}"))
    elif isinstance(url, str) and isinstance(account, str):
        out.append(Shown(label="Quotes", value=f"@{account}'s post on the platform: {url}", link=web_link(url)))
    else:
        out.append(Shown(label="Quotes", value=quoted))
    if isinstance(text := options.get("quote_text"), str):
        out.append(Shown(label="Quoted words", value=text or "(no words)"))
    elif not isinstance(own, str) and f"/{POST_COLLECTION}/" in quoted:
        out.append(not_kept("Quoted words", "quote", url))  # a feed or a list has no words to keep
    return out


def _embed_alts(embed: Mapping[str, Any]) -> dict[str, str | None]:
    """The alt text a Bluesky embed gives each image it shows, by the SHA-256 (hex) its blob's
    CID names (an image with no alt text: None): its images, or those of a quote with media."""
    alts: dict[str, str | None] = {}
    for where in (embed, embed.get("media")):
        images = where.get("images") if isinstance(where, Mapping) else None
        for image in images if isinstance(images, list) else ():
            blob = image.get("image") if isinstance(image, Mapping) else None
            ref = blob.get("ref") if isinstance(blob, Mapping) else None
            link = ref.get("$link") if isinstance(ref, Mapping) else None
            digest = blob_digest(link) if isinstance(link, str) else None
            if digest is not None:
                alt = image.get("alt")
                alts.setdefault(digest, alt if isinstance(alt, str) and alt else None)
    return alts


def _embed_shown(embed: Mapping[str, Any], options: Mapping[str, Any], depth: int = 0) -> list[Shown]:
    """What a Bluesky embed shows: a quoted post, a link card, its images' alt texts."""
    if depth > 4:
        return []
    out: list[Shown] = []
    record = embed.get("record")
    if isinstance(record, Mapping):
        inner = record.get("record")
        quoted = inner.get("uri") if isinstance(inner, Mapping) else record.get("uri")
        if isinstance(quoted, str):
            out += _quotes(quoted, options)
    external = embed.get("external")
    if isinstance(external, Mapping):
        card = " · ".join(str(external.get(k)) for k in ("uri", "title", "description") if external.get(k))
        out.append(Shown(label="Link card", value=card))
    for image in embed.get("images", ()) if isinstance(embed.get("images"), list) else ():
        if isinstance(image, Mapping):
            out.append(Shown(label="Image description", value=str(image.get("alt") or "(none)")))
            ratio = image.get("aspectRatio")
            if isinstance(ratio, Mapping):
                # How the app lays the image out, so what of it a reader sees in the feed.
                out.append(Shown(label="Image shape", value=f"{ratio.get('width')} wide, {ratio.get('height')} high"))
    media = embed.get("media")
    if isinstance(media, Mapping):
        out += _embed_shown(media, options, depth + 1)
    return out


def _actions(post: PostView, loaded: LoadedPolicy | None, user: str, *, decided: bool) -> frozenset[str]:
    """The acts ``user`` may take on ``post`` now, as the post service would decide them."""
    if loaded is None:
        return frozenset()
    policy = loaded.policy
    state = State(post.state)
    found = set()
    suggested = state is State.SUGGESTED
    for act, action in ((Act.APPROVE, Action.APPROVE), (Act.REJECT, Action.REJECT), (Act.EDIT, Action.EDIT),
                        (Act.CANCEL, Action.CANCEL), (Act.ADOPT, Action.ADOPT), (Act.DISMISS, Action.DISMISS)):
        if allowed(state, action) and may(policy, user, act, author=post.author, approvers=post.approvers,
                                          suggested=suggested):
            found.add(act.value)
    if decided:
        found -= {"approve", "reject"}
    wrote = contributors(author=post.author, editors=post.editors, suggested_by=post.suggested_by)
    if user in wrote and not owner_confirms(policy):
        found.discard("approve")
    if "edit" in found and user != post.author and post.approvals_required > 0 and not owner_confirms(policy):
        # An approver's edit must leave enough approvers who wrote none of it (the service says
        # the same, as a refusal): the form is not offered when it could only be refused.
        left = [a for a in gate_for(policy, post.author).approvers if a not in wrote | {user}]
        if len(left) < post.approvals_required:
            found.discard("edit")
    return frozenset(found)


def _event_line(index: int, kind: str, actor: str, ts: str, data: Any, size: int | None) -> EventLine:
    data = data if isinstance(data, dict) else {}
    version = data.get("version")
    state = data.get("state")
    reason = data.get("reason")
    if reason is None and isinstance(data.get("reasons"), list) and data["reasons"]:
        reason = "; ".join(str(r.get("reason", "")) for r in data["reasons"] if isinstance(r, dict))
    count, required = data.get("count"), data.get("required")
    note = None
    if kind == "post.approved" and isinstance(count, int) and isinstance(required, int):
        note = f"{count} of {required} approvals"
    elif kind == "post.gates_changed":
        note = gate_words(data.get("gate"), data.get("settings"))
    return EventLine(
        index=index, type=kind, what=_WHAT.get(kind, kind), actor=actor, ts=ts, note=note,
        version=version if isinstance(version, int) else None,
        state=state if isinstance(state, str) else None,
        reason=reason if isinstance(reason, str) and reason else None,
        proof_size=size if size is not None and index < size else None,
    )


def _policy_change(index: int, entry: dict[str, Any]) -> PolicyChange:
    data = entry.get("data") or {}
    summary = data.get("policy") or data.get("previous") or {}
    changed = data.get("changed") if entry.get("type") == "policy.changed" else []
    return PolicyChange(
        index=index, type=str(entry.get("type")), ts=str(entry.get("ts")),
        changed=tuple(str(c) for c in changed or ()),
        tier=summary.get("tier") if entry.get("type") != "policy.removed" else None,
        writers=tuple(summary.get("writers") or ()) if entry.get("type") != "policy.removed" else (),
        approvers=tuple(summary.get("approvers") or ()) if entry.get("type") != "policy.removed" else (),
    )


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def account_page(
    loaded: LoadedPolicy, *, my_roles: frozenset[Role], admin: bool, problem: str | None,
    refused: tuple[str, ...], history: tuple[PolicyChange, ...], counts: dict[str, int],
    profile_problem: str | None = None, scope_warning: str | None = None,
) -> AccountPage:
    """An account's page from the policy in force and what was read about it."""
    policy = loaded.policy
    approvals = policy.approvals
    rules = tuple(
        RuleLine(name=r.name, action=r.action.value, reason=r.reason,
                 matches=("any of the words " + ", ".join(r.any_words)) if r.any_words else f"the pattern {r.regex}")
        for r in policy.rules
    )
    rate = (policy.rate_limit.count, policy.rate_limit.seconds) if policy.rate_limit is not None else None
    return AccountPage(
        name=policy.account, platform=policy.platform, handle=policy.handle, tier=policy.tier.value,
        owner=policy.owner, writers=tuple(policy.writers),
        approvers=tuple(approvals.from_) if approvals else (), required=approvals.required if approvals else 0,
        expire_after=_seconds(approvals.expire_after) if approvals else None, delay=_seconds(policy.delay),
        suggesters=tuple(policy.suggesters), disclosure=policy.disclosure, rules=rules,
        text_limit=policy.text_limit, rate_limit=rate, file=loaded.path.name, sha256=loaded.sha256,
        my_roles=tuple(sorted(r.value for r in my_roles)), admin=admin, problem=problem, refused=refused,
        history=history, profile_problem=profile_problem, scope_warning=scope_warning,
        counts=tuple(sorted(counts.items(), key=lambda kv: [s.value for s in State].index(kv[0])
                            if kv[0] in State.__members__.values() else 99)),
    )

