"""Replaying the log's rules: who may act on a post, whose approvals count, what may go out.

Fed the facts of every entry in log order (as :func:`gateway.audit.verify.chunk.check_chunk` pulls them), the replay
keeps what the log itself says: the policy in force for each account (from ``policy.*``
events), and each post's author, editors, suggester, approvers, required count, version, state
and approvals. It flags:

- a ``post.submitted`` by someone who was not a writer (or, for a suggestion, a suggester)
  under the account's policy, or one that skips the approvals a co-signed account asks for;
- an edit, cancel, adopt, dismiss, approval or rejection by someone who lacked the role for it
  under the policy in force at that point of the log: an edit or cancel by an author who no
  longer writes for the account, an approval by someone who is not (or no longer) one of the
  post's approvers;
- an approval by anyone who put words into the version approved (its author, an editor, the
  suggester of an adopted post), save the owner confirming where the policy names no
  approvers; an approval, rejection or adoption of another version than the current one;
  an approval again of a version by the same approver, unless their approval before was bound
  to its text under a disclosure line that sent other words (Byline replaces such an approval,
  which counted for none: the line changed while the post was held);
- a ``post.published`` without ``required`` distinct approvals of the published version from
  people who wrote none of it, and a publish while the account had no policy in force or its
  author no longer wrote for it, or while it was co-signed and the post was held for fewer
  approvals than its policy asks (``required`` below the gate's count: a post scheduled
  before the account turned co-signed, or retried after, must be decided again first) or had
  fewer from people its policy names as approvers (an owner's confirmation of their own words
  before the account turned co-signed, an approver the change removed); on any other tier, a
  post held (by a rule, say) that went out with fewer approvals than it was held for from people
  the policy it went out under names as approvers (a release by an approver the change removed);
- a policy naming one person two ways (two names that read as one, ``alice`` and ``Alice``:
  ``names_read_as_one``), which the gateway refuses, as one person would approve as two;
- an announcement of a change of voice (a ``post.submitted`` by the policy file, naming in
  ``data.announces`` the policy version it announces and what it changed) that does not follow
  the recording of that version for its account (the account's latest policy entry, changing
  the voice where it or the policy it replaced asks for announcements, or stopping the
  announcements the policy it replaced asked for), one that says the version changed other
  than it did (the parts of the voice, and ``announce`` for the promise ended: an end of
  announcements the log does not show, or one left unsaid), a second one for one version, or
  one held for approval; and such a version that no announcement follows before the account's
  next policy record or the end of the log;
- a profile byline set (``profile.updated``) for a policy version the log has not recorded
  for the account before it; a policy record that names no version after the account's
  records named theirs;
- a pending post (held or scheduled) that outlives its author's role: once a policy change
  takes the author's role away, or the policy goes, the post must be decided again
  (``post.redecided``) before anything else happens to it, or expire (``post.expired``: a hold
  past its deadline is expired in the change's transaction, never revived), or be cancelled by
  the gateway with the post it replies to (a reply waiting for such a hold);
- an event that the post's life does not allow from where it is (``gateway.lifecycle``): a post
  claimed or published twice, published after it was cancelled, approved after it went out;
  a claim or a publication of another version than the post's current words;
- a claim again after a lease ran out is judged as a first claim is, against the policy it
  names: a post the policy in force would not let out is claimed again only to be looked for
  on its platform (``looks_only``), and then either recorded published as found there
  (``found``) or held again (``post.redecided``); a post published after such a claim without
  being found, a post held again from ``publishing`` without such a claim (it was sent), and a
  first claim that says it only looks are named;
- a claim sent on approvals given under a policy that spoke as another platform account
  (``speaks_as``: another server or handle) than the policy the claim names, where without them
  it has fewer than it needs: words approved for @brand are not approved for @someone-else
  (summaries that do not say, an earlier Byline's or the sandbox's, are not compared);
- a claim that says it checked the policy it names was the account's version in force
  (``policy_in_force``: the gateway reads the recorded version in the claim's transaction) but
  names another than the log's last policy record for the account before it, with no grace (a
  gateway sending under a policy another had replaced); and, once the log holds such a claim, one
  that does not say so, past the grace after the first (a rolling upgrade's earlier replicas);
- where the log's texts are given, a claim that sends other words than the current version's,
  with the disclosure line the policy it names asks for (rebuilt from the summary's
  ``disclosure``, crediting the author, the suggester and the editors in the order they
  edited); a summary recorded before it said its disclosure only holds what went out to begin
  with the words. A claim again of a post whose words and content are those its last claim
  sent (its lease ran out, or it came back deferred, failed, or decided again) sends what that
  claim sent, whatever the disclosure now: one that sends other words is named, as the post
  the platform may have taken already could go out twice (the log does not say whether the
  platform took it); and such a claim again, while the last send's outcome is open (no
  ``post.published`` or ``post.failed`` since), that names another idempotency key than that
  send's: a platform that took it gives back the post made with its key, and would make a
  second copy under a new one (an edit since is another post, with a key of its own; a claim
  that names no key is not compared);
- once an entry of the log records what a post carries besides its words (``content_sha256``:
  its uploads and their alt texts, its content warning, its options), a version or claim of any
  post that leaves it out more than the grace (300 s) later, and a claim that records it but commits to no words
  (``text_hash``): left out, what went out could not be compared with what was approved;
- a change of a post's interaction settings (``post.gates_changed``: its threadgate or
  postgate) but of a published post of the account the entry names, by a writer or the owner;
  and one past the post's budget (``gateway.audit.gates.CHANGES_PER_HOUR``, 30 in any hour): a
  change when the hour up to its own time (the moment an hour before left out, as the gateway
  counts them, ``budget_wait``) already held that many of the post's changes;
- a retry or a deletion by someone who is neither the post's author (still writing) nor the
  owner, and new words for a published post (``post.revised``, and ``post.revising`` as they
  are sent) by anyone but its writing author, or on an account whose policy would not send them
  out at once;
- a revision of a published post that the log did not hold before the platform could show it:
  each is sent after a ``post.revising`` naming its version, its words and what it carries, and
  settled by a ``post.revised`` of those (or a ``post.revision_failed`` of the gateway's, the
  platform showing the words recorded before), with nothing else happening to the post in
  between. One released by its pending revision says too what it carries as that revision's
  versions are hashed (``revision_content_sha256``), which must be the ``content_sha256`` of
  the version its approvers approved (an entry naming a pending revision without it is named). Once the log
  holds a ``post.revising``, a ``post.revised`` without one is named
  (past the grace below: a rolling upgrade's earlier replicas wrote none);
- a revision sent or recorded with another disclosure line after its words
  (``disclosure_line``) than the policy it names asks for, crediting who wrote them (its
  pending revision's writers, where it names one, else its post's); one released by its
  pending revision whose approvals were given under another line (the policy's changed since,
  as for a claim); a ``post.revised`` of one saying another line than its ``post.revising``
  sent; and, once the log holds an entry that says its line, one that does not, past the grace;
- a pending revision given up (a ``post.failed`` of it) but by the gateway, once released and
  before it was sent, where the log shows it could never be made: its post no longer
  published, or the policy it names (the one in force where it names none) no longer where the
  post went out (another platform than the policy its claim named; on Mastodon, whose servers
  number their own posts, any other policy, as the log's summaries name no server);
- a claim (``post.publishing``) earlier, by more than the grace (``--due-grace``, 2 s), than the
  time the log last recorded its post due (``publish_at``: its submission's, an edit's, the
  approval's that scheduled it): a post's time moved earlier in the database went out before
  its cooling-off ended, or before the time its writer asked and its approvers approved. A
  retry sends at once and a post decided again waits for approvals anew: neither leaves a time.
  A reply waiting for a post of Byline's keeps its time from before an edit (the edit records
  the publisher's wait for the parent, which the publisher brings forward unlogged);
- an approval (``post.approved``) later, by more than the same grace, than the deadline the log
  last recorded for its post's hold (``expires_at``: its submission's, an edit's that held it
  anew, a decision's again): a hold's deadline moved later in the database let an approval
  through after the post had expired. An entry that changed the deadline without recording it
  (written before they did) leaves it unknown, and nothing is compared. And a deadline a post
  held anew was given further from its entry's time than the policy it names lets a hold last
  (its summary's ``expire_after_seconds``, where it says), by more than the grace;
- an expiry (``post.expired``) earlier, by more than the same grace, than that deadline: a
  hold's deadline moved earlier in the database expired the post before its approvers could
  approve it, silencing it; and an expiry of a post the log last held with no deadline (parked
  while its account had no policy: it waits for a decision, never a time);
- a reply stored to wait for a post not yet out (``reply_to_post``) naming one that is not a
  post of its account waiting or out (held, scheduled, publishing, suggested, published): a
  parent that had ended would leave it waiting for ever;
- a reply cancelled by the gateway (actor ``system``) but for its parent: the post it named
  as its parent (``reply_to_post``, from its submission or its last edit's options), followed
  into the post it was adopted as, must have ended for good (cancelled, rejected, expired,
  dismissed, deleted) first; and a reply retried by the gateway but with its parent: it must
  have failed for that parent (the failure naming it), and the parent be on its way out again
  (retried, held, scheduled, or out); neither of a reply the gateway had claimed (sent);
- a quote cancelled by the gateway for the post not yet out it quotes (``quote_of_post``):
  that post, as its submission named it, followed into the post it was adopted as, must have
  ended for good first, and the quote never have been claimed (sent);

Which policy judges an action: every action names the policy it was decided on
(``policy_sha256``). The gateway decides on the policy it holds in memory and records a reloaded
policy a moment after reading it, so an action may name the policy just replaced, or the next
one not yet recorded; it is then judged by the policy it names when the log records it. An
action that names no policy is judged by the one in force.

The replay is pure: no I/O, no clock; it only reads the facts given to it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.audit.entry import NO_STAMP, STAMP
from gateway.audit.gates import CHANGES_PER_HOUR, budget_wait
from gateway.lifecycle import Action, State, allowed, states_allowing, transition
from gateway.policy.announce import ANNOUNCER, PROMISE, announced, voice_changed
from gateway.policy.credit import disclosed
from gateway.policy.text import names_read_as_one
from gateway.types import to_micros

__all__ = ["DUE_GRACE_SECONDS", "MALFORMED_CONTENT", "POLICY_GRACE_SECONDS", "Fact", "Replay"]

MALFORMED_CONTENT = "malformed"
"""What the verifier passes for an entry's ``content_sha256`` that is no SHA-256 (named on its
own): recorded, so not left out, but compared with nothing."""

POLICY_GRACE_SECONDS = 300.0
"""How long after the log records a policy change an action may still name the policy it
replaced (or name one the log records only later): the time a gateway may take to see the
change. Every gateway reads its policy directory each ``BYLINE_POLICY_RELOAD_SECONDS`` (1 s
unless set); a replica under load, or one whose directory is pulled late, takes longer. Past it,
a gateway acting on a policy the account no longer has is named (``--policy-grace``)."""

DUE_GRACE_SECONDS = 2.0
"""How much earlier than the time the log last recorded a post due (``publish_at``) its claim
may be and pass, and how much later than the deadline the log last recorded for its hold
(``expires_at``) an approval may be. An honest claim is never earlier, nor an honest approval
later, whichever gateway makes it and however its clock differs from the one that scheduled or
held the post: each compares the post's time with its own transaction's time and writes that
same time as its entry's ``ts``. The grace is a margin only (``--due-grace``); past it, a post
sent before its cooling-off or the time its writer asked and its approvers approved ended, or
approved after its hold expired, is named. An expiry may be as much earlier than the hold's
deadline, and no more: the gateway expires a hold once its own time reaches the deadline."""


def _moment(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)

Fact = tuple[str, str, str | None, str | None, Any]
"""(type, actor, account, post, extra): what the replay needs of one entry; see ``check_chunk``."""

_ACTIONS: dict[str, tuple[Action, ...]] = {
    "post.edited": (Action.EDIT, Action.REHOLD),
    "post.approved": (Action.APPROVE, Action.RELEASE),
    "post.rejected": (Action.REJECT,),
    "post.cancelled": (Action.CANCEL,),
    "post.expired": (Action.EXPIRE,),
    "post.publishing": (Action.CLAIM,),
    "post.published": (Action.PUBLISHED,),
    "post.deferred": (Action.DEFER,),
    "post.failed": (Action.FAIL,),
    "post.retried": (Action.RETRY,),
    "post.adopted": (Action.ADOPT,),
    "post.dismissed": (Action.DISMISS,),
    "post.deleted": (Action.DELETE,),
    "post.redecided": (Action.REDECIDE,),
}
_FROM: dict[str, frozenset[str]] = {
    kind: frozenset(s.value for a in actions for s in states_allowing(a)) for kind, actions in _ACTIONS.items()
}
_AFTER: dict[str, dict[str, frozenset[str]]] = {
    kind: {s.value: frozenset(transition(s, a).value for a in actions if allowed(s, a))
           for s in State if any(allowed(s, a) for a in actions)}
    for kind, actions in _ACTIONS.items()
}
"""Where each event may take a post, by where it was (``gateway.lifecycle``'s table)."""
_REDECIDED: dict[str, str] = {s.value: transition(s, Action.REDECIDE).value for s in states_allowing(Action.REDECIDE)}
"""Where a post decided again is, by where it was (``gateway.lifecycle``): held for people with
a role (a suggestion stays one), never released or out, which would let it go out with no one
deciding."""
_FROM["post.revised"] = frozenset({"published"})
_FROM["post.revising"] = frozenset({"published"})
_FROM["post.revision_failed"] = frozenset({"published"})
_FROM["post.gates_changed"] = frozenset({"published"})
"""The states a post may be in for each event to happen to it (``gateway.lifecycle``'s table):
a post published twice, approved after it went out, or retried from cancelled is named."""

_MOVES_DEADLINE = frozenset({"post.edited", "post.redecided", "post.retried"})
"""The entries that may hold a post anew, with a new deadline (``expires_at``): one of them
that does not record it (written before they did) leaves the deadline unknown."""
_CARRYING = frozenset({"post.submitted", "post.edited", "post.revising", "post.revised", "post.publishing"})
"""The entries that record what their post carries besides its words (``content_sha256``)."""
_PENDING = frozenset({"held", "scheduled"})
_ENDED = frozenset({"cancelled", "rejected", "expired", "adopted", "dismissed", "deleted", "published", "applied"})
_ENDS_A_THREAD = frozenset({"cancelled", "rejected", "expired", "dismissed", "deleted"})
"""A parent's ends after which the replies waiting for it never go out (``posts.ENDS_A_THREAD``)."""
_ON_ITS_WAY = frozenset({"held", "scheduled", "publishing", "published"})
"""Where a parent is once retried: the replies that failed for it may be retried with it."""
_REPLY_PARENT_STATES = frozenset({"held", "scheduled", "publishing", "suggested", "published"})
"""Where a post a new reply names may be (``posts.REPLY_PARENT_STATES``): waiting, or out."""
_SETTLING = frozenset({"post.revised", "post.revision_failed"})
"""The entries that settle a revision sent to the platform (``post.revising``)."""
_OPEN_REVISION = frozenset({"held", "scheduled", "publishing"})
"""Where a pending revision is while it may still change its published post."""
_SYSTEM = "system"
"""The gateway's own actor (no person may take the name)."""
_GATES = frozenset({"app.bsky.feed.threadgate", "app.bsky.feed.postgate"})
"""The records of a post's interaction settings (``post.gates_changed``)."""
_ADOPTIONS_FOLLOWED = 4
_SERVERS_APART = frozenset({"mastodon"})
"""Platforms whose servers each number their own posts (``gateway.services.posts``): only on
these may an account move to another server, its platform the same, and its posts' ids there
name others, or none."""


@dataclass(slots=True)
class _Post:
    author: str
    account: str | None
    approvers: tuple[str, ...]
    required: int
    version: int
    state: str
    suggested_by: str | None = None
    editors: dict[str, None] | None = None  # made at the first edit by someone else, in the order
    # they first edited (as the disclosure names them): most posts have none
    words: str | None = None  # the current version's words, where the log's texts were given
    sent: str | None = None  # the words its last claim sent out, where given
    sent_for: tuple[int, str | None, str | None] | None = None  # the entry of its last claim that
    # sent it, and the words and content its version had then
    content: str | None = None  # what its current version carries besides its words, where the
    # log records it ("" for nothing: ``gateway.services.content``)
    approvals: dict[int, set[str]] | None = None  # made at the first approval: many posts have none
    given: dict[tuple[int, str], str] | None = None  # the policy each approval (version, approver)
    # named, where it named one: the disclosure line it was given under
    under: dict[tuple[int, str], str] | None = None  # the policy each approval (version, approver)
    # named, where it named one: the platform account it was given for
    decided_again: bool = False  # held anew for people with a role after the author lost theirs
    announcement: bool = False  # the policy file's announcement of a change of voice
    owed: tuple[int, str] | None = None  # the policy entry after which the post must be decided
    # again before anything else happens to it, and why
    parent: str | None = None  # the post not yet out it replies to (its options' reply_to_post)
    quotes: tuple[str, int] | None = None  # the post not yet out it quotes, and that post's
    # version then: the words its approvals were given for it to quote (``quote_of_post``)
    worded: int = 1  # the version of its last edit: a decision again, a new version, keeps its words
    answers: tuple[str, int] | None = None  # the post not yet out it replies to (adoptions
    # followed) and that post's version when it was written or last edited: the words its
    # approvals were given for it to answer (``answers_post``)
    into: str | None = None  # the post a suggestion was adopted as
    failed_for: str | None = None  # the parent its last failure named (the gateway's, for it)
    claimed_at: int | None = None  # the entry of its first claim: sent, it waits for no parent
    revising: tuple[int, int, str | None, str | None, str | None] | None = None  # the revision
    # sent to its platform and not settled yet (``post.revising``): its entry, version, words,
    # content and the disclosure line it went out with (``data.disclosure_line``), where given
    due: tuple[int, str] | None = None  # the entry that last recorded when it is due to go out
    # (``publish_at``), and that time; None for no time to wait for (held, or retried: at once)
    deadline: tuple[int, str] | None = None  # the entry that last recorded when its hold
    # expires (``expires_at``), and that time ("" for none: not held, or held with no deadline);
    # None for unknown (no entry recorded it)
    looking: int | None = None  # the entry of a claim recovered only to look for it on its
    # platform (``looks_only``), while it is the post's last entry
    keyed: tuple[int, str, str | None, str | None] | None = None  # its last claim whose send's
    # outcome is open (no ``post.published`` or ``post.failed`` since): its entry, its
    # idempotency key, and the words and content its version had then
    revises: str | None = None  # the published post it is a pending revision of, if any
    claimed_under: str | None = None  # the policy its last claim named: where it went out
    gates: deque[tuple[int, int]] | None = None  # its last ``CHANGES_PER_HOUR`` changes of who
    # may reply or quote (``post.gates_changed``), in log order: each one's time (stored
    # microseconds) and entry; made at the first, as most posts have none

    def wrote(self, user: str) -> bool:
        """Whether ``user`` put words into the post."""
        return user == self.author or user == self.suggested_by or (
            self.editors is not None and user in self.editors
        )


@dataclass
class _Policy:
    sha256: str
    summary: dict[str, Any]
    writers: frozenset[str] = frozenset()
    suggesters: frozenset[str] = frozenset()
    approvers: frozenset[str] = frozenset()
    owner: str | None = None
    changed_voice: bool = False  # whether it changed the voice of the policy it replaced
    owed: tuple[str, ...] = ()  # what its announcement must say it changed (``announced``): the
    # parts of the voice, where it or the policy it replaced (whose followers were promised)
    # asks for announcements, and ``announce`` where it stops those; none owed when empty

    def __post_init__(self) -> None:
        self.writers = frozenset(_list(self.summary, "writers"))
        self.suggesters = frozenset(_list(self.summary, "suggesters"))
        self.approvers = frozenset(_list(self.summary, "approvers"))
        owner = self.summary.get("owner")
        self.owner = owner if isinstance(owner, str) else None

    @property
    def owner_confirms(self) -> bool:
        """Where the policy names no approvers, the owner confirms held posts, their own too."""
        return not self.approvers

    def approves(self, user: str, author: str) -> bool:
        """Whether ``user`` is an approver of posts by ``author`` under this policy."""
        if self.owner_confirms:
            return user == self.owner
        return user in self.approvers and user != author


Check = Callable[[_Policy], str | None]


@dataclass
class _Pending:
    index: int
    sha256: str
    check: Check
    what: str = field(default="")
    stamp: str | None = None


def _list(summary: dict[str, Any], key: str) -> list[str]:
    value = summary.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _may_submit(policy: _Policy, actor: str, state: str) -> bool:
    if state == "suggested":
        return actor in policy.suggesters and actor not in policy.writers
    return actor in policy.writers


def _approver_only(actor: str, known: _Post, problem: str) -> Check:
    """A check that ``actor`` is one of the post's approvers, and one still under the policy."""
    listed, author = known.approvers, known.author

    def check(policy: _Policy) -> str | None:
        return None if actor in listed and policy.approves(actor, author) else problem

    return check


def _gate(summary: dict[str, Any], author: str) -> tuple[tuple[str, ...], int]:
    """The approvers and required count of a held post by ``author`` (as the engine's gate_for)."""
    approvers = _list(summary, "approvers")
    if approvers:
        return tuple(a for a in approvers if a != author), _needed(summary)
    owner = summary.get("owner")
    return ((owner,) if isinstance(owner, str) else ()), 1


def _needed(summary: dict[str, Any]) -> int:
    """How many approvals a held post needs under the policy (the count of ``_gate``): the same
    whoever wrote it, as the engine's gate_for leaves the author out of who may give them, not
    of how many."""
    required = summary.get("required")
    return max(required, 1) if _list(summary, "approvers") and isinstance(required, int) else 1


def _policy_version(kind: str, extra: Any) -> int | None:
    """The version a policy entry's facts name: (sha256, summary, version) for a policy recorded,
    (version,) for a removal; None for entries from before versions were numbered."""
    if not isinstance(extra, tuple):
        return None
    at = 0 if kind == "policy.removed" else 2
    return extra[at] if len(extra) > at and type(extra[at]) is int else None


class Replay:
    """Feeds on facts in log order; collects (index, problem) for every broken rule."""

    def __init__(self, *, policy_grace: float = POLICY_GRACE_SECONDS, due_grace: float = DUE_GRACE_SECONDS) -> None:
        self.findings: list[tuple[int, str]] = []
        self._grace = policy_grace
        self._due_grace = due_grace
        self._stamps = ""  # the times of the run being fed (see feed_flat), and its first index
        self._first = 0
        self._replaced: dict[str, tuple[int, str | None]] = {}  # account -> the entry (index, time)
        # that replaced or removed the policy in ``_previous``
        self._policy: dict[str, _Policy] = {}
        self._previous: dict[str, _Policy] = {}
        self._recorded_policies: dict[str, _Policy] = {}  # every policy recorded, by its hash: the
        # one an approval names says the disclosure line it was given under
        self._pending: dict[str, list[_Pending]] = {}
        self._policy_versions: dict[str, int] = {}
        self._numbered: set[str] = set()  # accounts with a numbered policy record
        self._recorded: dict[str, int] = {}  # account -> the index of its last policy record
        self._checked: str | None = None  # the time of the log's first claim that checked its policy
        # was the account's in force (data.policy_in_force; "" unknown)
        self._carried: str | None = None  # the time of the first entry that recorded what a post carries
        self._answered: str | None = None  # the time of the log's first entry recording the version
        # of its parent a reply answers (data.answers_post; "" unknown)
        self._bound: str | None = None  # the time of the log's first approval bound to the text with
        # its policy's disclosure line (data.text_bound; "" unknown)
        self._revisings: str | None = None  # the time of the log's first post.revising ("" unknown)
        self._lined: str | None = None  # the time of the log's first revision entry that said the
        # disclosure line it sent (data.disclosure_line; "" unknown)
        self._announced: dict[str, int] = {}  # account -> the last version whose announcement the log holds
        self._unannounced: dict[str, tuple[int, int, tuple[str, ...]]] = {}  # account -> (index, version,
        # what changed): a policy record owed an announcement, which has not followed yet
        self._posts: dict[str, _Post] = {}
        self._by_account: dict[str, list[_Post]] = {}
        self.posts_seen = 0
        self.published_checked = 0

    def _bad(self, index: int, message: str) -> None:
        self.findings.append((index, message))

    def feed_flat(
        self, first: int, flat: list[Any], words: Mapping[int, str] | None = None, stamps: str = "",
        contents: Mapping[int, str] | None = None, dues: Mapping[int, str] | None = None,
        deadlines: Mapping[int, str] | None = None,
    ) -> None:
        """Take the facts of a run of entries, in log order, flat: for each, its offset from
        ``first`` and the five parts of its :data:`Fact` (see ``verify.Chunk.facts``); the
        words committed to by those of them whose texts were given, by offset (``Chunk.words``);
        the run's times (``Chunk.stamps``); and what they record a post carries besides its
        words (``Chunk.contents``); and when those that schedule a post say it is due
        (``Chunk.dues``); and the deadlines of holds those that set or clear one record
        (``Chunk.deadlines``)."""
        step = self._step
        get = (words or {}).get
        content = (contents or {}).get
        due = (dues or {}).get
        deadline = (deadlines or {}).get
        self._stamps, self._first = stamps, first
        for offset, kind, actor, account, post, extra in zip(
            flat[0::6], flat[1::6], flat[2::6], flat[3::6], flat[4::6], flat[5::6], strict=True
        ):
            step(first + offset, kind, actor, account, post, extra, get(offset), content(offset), due(offset),
                 deadline(offset))

    def feed(
        self, index: int, fact: Fact, words: str | None = None, content: str | None = None,
        due: str | None = None, stamp: str | None = None, deadline: str | None = None,
    ) -> None:
        """Take one entry's facts, in log order, the words it commits to when known, what it
        records the post carries besides them, when it says the post is due ("" for no time),
        its time, when known, and the deadline it records for the post's hold ("" for none)."""
        self._stamps, self._first = (stamp, index) if stamp is not None and len(stamp) == STAMP else ("", 0)
        self._step(index, *fact, words, content, due, deadline)

    def _stamp(self, index: int) -> str | None:
        """The time of the entry at ``index`` of the run being fed, when known."""
        at = (index - self._first) * STAMP
        stamp = self._stamps[at : at + STAMP]
        return stamp if len(stamp) == STAMP and stamp != NO_STAMP else None

    def _later_than_grace(self, after: str | None, before: str | None) -> float | None:
        """The seconds from ``before`` to ``after`` (entry times), when they are more than the
        grace a gateway has to see a policy change; else None."""
        if after is None or before is None:
            return None
        try:
            seconds = (_moment(after) - _moment(before)).total_seconds()
        except ValueError:  # no time (a 13th month): the entry is named for its ts already
            return None
        return seconds if seconds > self._grace else None

    def _within_upgrade_grace(self, index: int, first: str) -> bool:
        """Whether entry ``index`` falls within the grace after ``first``, the time of the first
        entry that recorded a field it leaves out ("" unknown): a rolling upgrade's replicas of
        the earlier Byline may still write such entries then. An entry whose time is unknown,
        or after a first of unknown time, does not."""
        at = self._stamp(index)
        return bool(first) and at is not None and self._later_than_grace(at, first) is None

    def _step(
        self, index: int, kind: str, actor: str, account: str | None, post: str | None, extra: Any,
        words: str | None = None, content: str | None = None, due: str | None = None,
        deadline: str | None = None,
    ) -> None:
        if kind.startswith("policy."):
            self._policy_event(index, kind, account, extra)
            return
        if kind == "profile.updated":
            self._profile_updated(index, account, extra)
            return
        if post is None:
            return
        if kind in _CARRYING:
            self._carrying(index, kind, post, content)
            if content == MALFORMED_CONTENT:
                content = None
        if kind == "post.submitted":
            self._submitted(index, actor, account, post, extra)
            submitted = self._posts[post]
            submitted.words, submitted.content = words, content
            submitted.due = (index, due) if due else None
            submitted.deadline = (index, deadline) if deadline is not None else None
            if deadline and submitted.state == "held" and not submitted.announcement:
                self._held_until(index, submitted, post, deadline, extra[4])
            return
        known = self._posts.get(post)
        if known is None:
            if kind.startswith("post."):
                self._bad(index, f"{kind} for post {post}, which was never submitted")
            return
        if known.owed is not None and kind != "post.redecided":
            # An expiry, or the gateway's cancellation of a reply with its parent (judged by
            # ``_with_parent``), ends it: nothing is left to decide.
            if kind != "post.expired" and not (kind == "post.cancelled" and actor == _SYSTEM):
                at, why = known.owed
                self._bad(index, f"{kind} of post {post}, which entry {at} left to be decided again first: {why}")
            known.owed = None
        allowed = _FROM.get(kind)
        if allowed is not None and known.state not in allowed:
            self._bad(index, f"{kind} of post {post}, which was {known.state}: its life does not go that way")
        looking, known.looking = known.looking, None
        if kind == "post.failed":
            # The send's outcome known: a claim after a failure may take a new key. (A post
            # published is never claimed again: its life goes on only to its deletion.)
            known.keyed = None
        if looking is None and kind == "post.redecided" and known.state == "publishing":
            self._bad(index, f"post.redecided of post {post}, which was publishing, and not claimed again to be "
                             "looked for only (data.looks_only): a post sent out must be recorded as it went")
        elif looking is not None and kind == "post.published" and extra[1:] != (True,):
            self._bad(index, f"post {post} was published after entry {looking} claimed it again only to look "
                             "for it on its platform, and not found there (data.found): the policy in force "
                             "would not let it go out")
        if known.revising is not None and kind not in _SETTLING:
            self._bad(index, f"{kind} of post {post} while the revision entry {known.revising[0]} sent to its "
                             "platform was not settled: a published post's changes reach the platform one at "
                             "a time, each recorded before the next")
            known.revising = None
        if due is not None:  # an edit or approval that says when the post is due ("" for no time)
            # A reply edited while it waits for its parent too: the edit records the later of its
            # new cooling-off and the time the publisher put it at to wait, and the publisher
            # brings forward, unlogged, only a reply left as it was put to wait.
            known.due = (index, due) if due else None
        elif kind in ("post.retried", "post.redecided"):
            known.due = None  # retried: due at once; decided again: held, due once approved
        if kind == "post.approved":
            self._late(index, known, post)
        elif kind == "post.expired":
            self._expired_early(index, known, post)
        if deadline is not None:
            known.deadline = (index, deadline)
        elif kind in _MOVES_DEADLINE:
            known.deadline = None  # an entry from before they recorded it: unknown
        # Held anew, with a deadline of its own: by a decision again, or by an edit of a post
        # released (an edit of one held keeps the hold's deadline, set under its policy then).
        anew = kind == "post.redecided" or (kind == "post.edited" and known.state != "held")
        if anew and deadline and extra[1] == "held":
            self._held_until(index, known, post, deadline, extra[4])  # fact_extra's policy, for both
        if kind == "post.edited":
            self._edited(index, actor, known, post, extra)
            if words is None or (words, content) != (known.words, known.content):
                known.worded = extra[0]  # its words, or what goes with them, changed (or may have)
            known.words, known.content = words, content
            if words is None:
                known.keyed = None  # new words, maybe, that the log's texts do not say: another post
        elif kind == "post.approved":
            self._approved(index, actor, known, post, extra)
        elif kind == "post.published":
            self._published(index, known, post, extra)
        elif kind == "post.redecided":
            self._redecided(index, known, post, extra)
        elif kind == "post.publishing":
            self._early(index, known, post)
            if known.quotes is not None and known.claimed_at is None:
                self._quoting(index, known, post)
            if known.answers is not None and known.claimed_at is None:
                self._answering(index, known, post)
            self._publishing(index, known, post, extra, words)
            if content is not None and known.content is not None and content != known.content:
                self._bad(index, f"post {post} sent out other media or options than its version {known.version} "
                                 "(an upload, its alt text, the content warning or visibility changed after it was "
                                 "written and approved)")
        elif kind == "post.revising":
            if self._revisings is None:
                self._revisings = self._stamp(index) or ""
            self._revision(index, actor, known, post, extra, "revised", kind, words)
            known.revising = (index, extra[0], words, content, self._sends_line(index, kind, known, post, extra))
        elif kind == "post.revised":
            sent = self._settles(index, known, post, extra[0], words, content)
            line = extra[4] if len(extra) > 4 else None
            if sent is not None and sent[4] is not None and len(extra) > 2 and extra[2] is not None:
                # Released by its pending revision: recorded (or settled, sent again) with the
                # words its post.revising sent, under whatever line the policy has by then.
                self._said_line(index, kind, post, line)
                if line is not None and line != sent[4]:
                    self._bad(index, f"post.revised of post {post} records the disclosure line {line!r}, but entry "
                                     f"{sent[0]} sent {sent[4]!r} to its platform")
            else:
                self._sends_line(index, kind, known, post, extra)
            self._revision(index, actor, known, post, extra, "revised", kind, words)
            known.version = extra[0]
            known.words, known.content = words, content
        elif kind == "post.revision_failed":
            self._revision_failed(index, actor, known, post, extra[0])
            pending = self._posts.get(extra[1]) if len(extra) > 1 else None
            if pending is not None and pending.revises == post and pending.state == "publishing":
                pending.state = "failed"  # its author may retry it, or cancel it
        elif kind == "post.gates_changed":
            self._gates_changed(index, actor, account, known, post, extra)
        else:  # the rest of REPLAYED, each with fact_extra's (state, version, policy[, parent named])
            self._decided(index, kind, actor, known, post, extra)

    def _carrying(self, index: int, kind: str, post: str, content: str | None) -> None:
        """Once the log records what posts carry besides their words (every version and claim
        Byline writes since it did), an entry of those kinds that leaves it out is named: left
        out, a claim's image or alt text (or the version's, that the claim is compared with)
        would go out unchecked against what was approved. For the grace after the first entry
        that recorded it (a rolling upgrade: a replica of the earlier Byline finishing its work
        beside the new ones), one that leaves it out passes; an entry whose time is unknown
        does not."""
        if content is not None:
            if self._carried is None:
                self._carried = self._stamp(index) or ""
        elif self._carried is not None:
            if self._within_upgrade_grace(index, self._carried):
                return
            self._bad(index, f"{kind} of post {post} does not record what it carries besides its words "
                             "(data.content_sha256), though entries before it did: what went out cannot be "
                             "compared with what was approved")

    # -- which policy judges an action ------------------------------------------------------

    def _judge(self, index: int, account: str | None, sha256: str | None, check: Check, what: str) -> None:
        """Run ``check`` against the policy an action names (see the module's docstring)."""
        if account is None:
            return
        in_force = self._policy.get(account)
        if in_force is not None and (sha256 is None or sha256 == in_force.sha256):
            problem = check(in_force)
        else:
            previous = self._previous.get(account)
            if previous is not None and sha256 is not None and sha256 == previous.sha256:
                at, replaced = self._replaced.get(account, (None, None))
                late = self._later_than_grace(self._stamp(index), replaced)
                problem = check(previous) if late is None else (
                    f"{what} under policy {sha256[:12]}, {late:.0f} s after entry {at} replaced it: "
                    f"longer than the {self._grace:.0f} s a gateway may take to see a policy change")
            elif sha256 is None:
                problem = f"{what}, which had no policy in force"
            else:
                # Named a policy the log has not recorded yet: judged when it is recorded.
                self._pending.setdefault(account, []).append(_Pending(index, sha256, check, what, self._stamp(index)))
                return
        if problem is not None:
            self._bad(index, problem)

    def _profile_updated(self, index: int, account: str | None, extra: Any) -> None:
        """A profile byline set for a policy version: one the log recorded before it."""
        version = extra[0] if isinstance(extra, tuple) and extra else None
        recorded = self._policy_versions.get(account or "", 0)
        if account is None or type(version) is not int or not 1 <= version <= recorded:
            self._bad(index, f"profile.updated for {account} names policy version {version}, "
                             f"which the log has not recorded for it (it has {recorded})")

    def _policy_event(self, index: int, kind: str, account: str | None, extra: Any) -> None:
        if account is None:
            return
        # One record a version: each account's policy entries are its versions 1, 2, 3… in
        # log order, whichever gateway recorded them (entries from before versions were
        # numbered name none, and are counted all the same).
        count = self._policy_versions[account] = self._policy_versions.get(account, 0) + 1
        version = _policy_version(kind, extra)
        if version is not None and version != count:
            self._bad(index, f"{kind} for {account} says policy version {version}, but it is the account's "
                             f"policy record number {count}: a version recorded twice, or one left out")
        if version is None and account in self._numbered:
            self._bad(index, f"{kind} for {account} names no policy version, after records that did: "
                             "only records from before versions were numbered may leave it out")
        elif version is not None:
            self._numbered.add(account)
        self._never_announced(account)
        self._recorded[account] = index
        if kind == "policy.removed":
            old = self._policy.pop(account, None)
            if old is not None:
                self._previous[account] = old
                self._replaced[account] = (index, self._stamp(index))
            self._owe(index, account, None, old)
            return
        if not isinstance(extra, tuple):
            return
        sha256, summary = extra[:2]
        old = self._policy.get(account)
        if old is not None:
            self._previous[account] = old
            self._replaced[account] = (index, self._stamp(index))
        policy = self._policy[account] = _Policy(sha256, summary)
        twins = names_read_as_one([*([policy.owner] if policy.owner else []), *_list(summary, "writers"),
                                   *_list(summary, "suggesters"), *_list(summary, "approvers")])
        if twins is not None:
            # The gateway refuses such a file: one person under two spellings would approve as two.
            self._bad(index, f"the policy for {account} names one person two ways, {twins[0]!r} and "
                             f"{twins[1]!r}: their approvals would count as two people's")
        if isinstance(sha256, str):
            self._recorded_policies[sha256] = policy
        # What it changes is measured against ``_previous``: the policy it replaces (put there
        # just above), or, for a policy put back after a removal, the one removed, as the gateway
        # announces it. Only an account's first policy changes none.
        before = self._previous.get(account)
        if before is not None:
            policy.changed_voice = bool(voice_changed(before.summary, summary))
            # Owed when the policy replaced asked too, as the gateway announces it, and owed for
            # stopping the announcements it asked for: else one edit that drops ``announce``
            # (with the voice or before changing it) would change the voice silently, where the
            # followers had been promised they would be told.
            policy.owed = tuple(announced(before.summary, summary))
        if policy.owed:
            # The gateway announces it in the transaction that records it: before the account's
            # next policy record, and before the log ends.
            self._unannounced[account] = (index, count, policy.owed)
        waiting = self._pending.get(account)
        if waiting:
            keep = []
            for item in waiting:
                if item.sha256 != sha256:
                    keep.append(item)
                elif (late := self._later_than_grace(self._stamp(index), item.stamp)) is not None:
                    self._bad(item.index, f"{item.what} under policy {sha256[:12]}, which entry {index} recorded "
                                          f"{late:.0f} s later: longer than the {self._grace:.0f} s a gateway "
                                          "may take to record a policy it reads")
                elif (problem := item.check(policy)) is not None:
                    self._bad(item.index, problem)
            self._pending[account] = keep
        self._owe(index, account, policy, old)

    def _never_announced(self, account: str) -> None:
        """Flag the account's policy record still owed its announcement (a change of voice, an end of
        announcements, or both)."""
        owed = self._unannounced.pop(account, None)
        if owed is None:
            return
        at, version, changed = owed
        if PROMISE not in changed:
            self._bad(at, f"policy version {version} of {account} changed its voice where it or the policy it "
                          "replaced asks for announcements, and no announcement of it followed: a change of voice "
                          "its followers were promised and not told of")
        else:
            self._bad(at, f"policy version {version} of {account} "
                          + ("changed its voice and " if len(changed) > 1 else "")
                          + "stopped the announcements the policy it replaced asked for, and no announcement of it "
                          "followed: its followers were promised they would be told, and not told the promise ended")

    def _owe(self, index: int, account: str, policy: _Policy | None, before: _Policy | None) -> None:
        """After a policy change or removal, mark the account's pending posts that must be
        decided again: every one when the policy went; those whose author the change took off
        the writers (or who is not among them when the policy comes back)."""
        posts = self._by_account.get(account)
        if not posts:
            return
        live = []
        for known in posts:
            if known.state in _ENDED:
                continue  # never pending again: dropped, so a busy account's list stays short
            live.append(known)
            if known.state not in _PENDING or known.owed is not None or known.announcement:
                continue  # an announcement answers to the version it announces, not to a writer's role
            if policy is None:
                known.owed = (index, "the account's policy was removed")
            elif known.author not in policy.writers and (before is None or known.author in before.writers):
                known.owed = (index, f"{known.author} no longer writes for {account}")
        self._by_account[account] = live

    # -- events -----------------------------------------------------------------------------

    @staticmethod
    def _not_writer(actor: str, account: str | None, state: str, sha256: str | None) -> str:
        role = "a suggester" if state == "suggested" else "a writer"
        where = f" (policy {sha256[:12]})" if sha256 else ""
        return f"{actor} submitted a post to {account} but was not {role} under its policy{where}"

    def _announcement(self, index: int, actor: str, account: str, post: str, extra: Any) -> bool:
        """Judge a post the policy file submitted: an announcement of a change of voice, which only
        the policy version it names, recorded for its account just before it, authorises. True
        when it was one (judged here), False for any other post. Only a post that names its
        account comes here: ``_submitted`` names one that names none, and goes no further."""
        announces = extra[6] if len(extra) > 6 else None
        if announces is None and actor != ANNOUNCER:
            return False
        _, state, _, required, sha256 = extra[:5]
        known = self._posts[post]
        known.announcement = True
        policy = self._policy.get(account)
        recorded = self._policy_versions.get(account)
        if actor != ANNOUNCER or announces is None:
            self._bad(index, f"post {post} of {account} is an announcement of a change of voice submitted by "
                             f"{actor}, not by the policy file" if actor != ANNOUNCER else
                             f"the policy file submitted post {post} to {account}, which announces no policy version")
            return True
        number, named, said = announces
        owed = self._unannounced.get(account)
        if owed is not None and owed[1] == number:
            del self._unannounced[account]
        if policy is None or recorded != number or named != policy.sha256 or sha256 != policy.sha256:
            self._bad(index, f"post {post} announces policy version {number} of {account}, which is not the "
                             "version the log recorded for it just before: an announcement without the policy "
                             "change that caused it")
        elif self._announced.get(account) == number:
            self._bad(index, f"post {post} announces policy version {number} of {account} a second time")
        elif not policy.owed:
            self._bad(index, f"post {post} announces policy version {number} of {account}, which "
                             + ("changed nothing of the account's voice: an announcement without the policy change "
                                "that caused it" if not policy.changed_voice
                                else "asks for no announcements, nor did the policy it replaced"))
        elif sorted(said) != sorted(policy.owed):
            ended = PROMISE in policy.owed
            self._bad(index, f"post {post} says policy version {number} of {account} changed "
                             f"{', '.join(said) or 'nothing'}, where the log shows it changed {', '.join(policy.owed)}"
                             + ("" if (PROMISE in said) == ended
                                else ": it leaves unsaid that the announcements ended" if ended
                                else ": an end of announcements the log does not show"))
        elif state != "scheduled" or required != 0:
            self._bad(index, f"announcement {post} was submitted as {state} needing {required} approvals: "
                             "the policy file is its authorisation, it goes out at once")
        self._announced[account] = number
        return True

    def _submitted(
        self, index: int, actor: str, account: str | None, post: str, extra: Any
    ) -> None:
        # fact_extra's five, six, seven, nine, ten, eleven or twelve parts, the missing ones None:
        # a suggestion's suggester, an announcement's version, a reply's parent, the suggestion
        # it adopts, the published post it is a pending revision of, the post it quotes, and the
        # version of its parent it answers.
        version, state, approvers, required, sha256, suggested_by, _, parent, adopted_from, revises, quotes, answers = (
            *extra, None, None, None, None, None, None, None)[:12]
        self.posts_seen += 1
        if post in self._posts:
            self._bad(index, f"post {post} is submitted a second time")
        if parent is not None:
            self._reply_stored(index, account, post, parent)
        known = self._posts[post] = _Post(actor, account, approvers, required, version, state, suggested_by)
        known.parent = parent
        known.quotes = quotes
        self._answers_recorded(index, known, post, answers)
        if revises is not None:
            self._pending_revision(index, actor, account, known, post, revises)
        origin = self._posts.get(adopted_from)  # None for none adopted: no post has the id None
        if origin is not None:
            origin.into = post
        if account is None:
            self._bad(index, "post.submitted names no account")
            return
        self._by_account.setdefault(account, []).append(known)
        if self._announcement(index, actor, account, post, extra):
            return
        if sha256 is None and account not in self._policy:
            self._bad(index, f"{actor} submitted a post to {account}, which had no policy in force")
            return

        def check(policy: _Policy) -> str | None:
            if not _may_submit(policy, actor, state):
                return self._not_writer(actor, account, state, policy.sha256 if sha256 else None)
            if state != "suggested" and policy.summary.get("tier") == "co-signed":
                needed = _needed(policy.summary)
                if state != "held" or required < needed:
                    return (f"post {post} was submitted to co-signed {account} as {state} needing "
                            f"{required} approvals, not held for {needed}")
            return None

        self._judge(index, account, sha256, check, f"{actor} submitted a post to {account}")

    def _pending_revision(
        self, index: int, actor: str, account: str | None, known: _Post, post: str, revises: str,
    ) -> None:
        """A pending revision is new words of a published post of its account, by that post's
        author, and the post's only one waiting or on its way: it goes out with the post's
        disclosure line (its editors, its suggester), which its approvers are shown."""
        known.revises = revises
        parent = self._posts.get(revises)
        if parent is None or parent.account != account or parent.author != actor or parent.state != "published":
            self._bad(index, f"post {post} was stored as a revision of {revises}, which is not a published post "
                             f"{actor} wrote for {account}")
            return
        known.editors = None if parent.editors is None else dict(parent.editors)
        for other in self._by_account.get(account or "", ()):
            if other is not known and other.revises == revises and other.state in _OPEN_REVISION:
                self._bad(index, f"post {post} was stored as a second pending revision of {revises}")
                return

    def _edited(self, index: int, actor: str, known: _Post, post: str, extra: Any) -> None:
        version, state, approvers, required = extra[:4]
        sha256 = extra[4] if len(extra) > 4 else None
        before = known.state
        if actor != known.author:
            approver = _approver_only(actor, known, f"{actor} edited post {post} but is neither its author nor "
                                                    "one of its approvers")

            def check(policy: _Policy) -> str | None:
                if policy.owner_confirms and actor == policy.owner and actor not in policy.writers:
                    # Confirming is not writing: an owner who does not write for the account
                    # (a managed one) suggests; edited words would be confirmed by their own writer.
                    return f"{actor} edited post {post} of {known.account}, for which they confirm but do not write"
                return approver(policy)

            self._judge(index, known.account, sha256, check, f"{actor} edited a post of {known.account}")
            if known.editors is None:
                known.editors = {actor: None}
            else:
                known.editors.setdefault(actor)
        else:
            self._judge(index, known.account, sha256, self._author_acts(actor, post, "edited"),
                        f"{actor} edited a post of {known.account}")
        if state == "held" and before != "held":
            # An edit after approval sends the post back to the approvers, gated anew.
            if approvers is not None and required is not None:
                self._regated(index, known, post, state, required)
                known.approvers, known.required = approvers, required
            else:
                policy = self._policy.get(known.account or "")
                if policy is not None:
                    known.approvers, known.required = _gate(policy.summary, known.author)
        if len(extra) > 5:  # the edit gave the options
            known.parent = extra[5]
        if len(extra) > 6 or (len(extra) > 5 and known.parent is not None):
            self._answers_recorded(index, known, post, extra[6] if len(extra) > 6 else None)
        self._moved(index, "post.edited", known, post, state)
        known.version = version
        known.state = state

    def _author_acts(self, actor: str, post: str, did: str) -> Check:
        known = self._posts[post]
        state = known.state

        def check(policy: _Policy) -> str | None:
            if known.author in policy.writers or (state == "suggested" and known.author in policy.suggesters):
                return None
            return f"{actor} {did} post {post} but no longer writes for {known.account}"

        return check

    def _approved(self, index: int, actor: str, known: _Post, post: str, extra: Any) -> None:
        version, state = extra[:2]
        sha256 = extra[2] if len(extra) > 2 else None
        listed = known.approvers
        wrote = known.wrote(actor)
        author = known.author

        def check(policy: _Policy) -> str | None:
            if wrote and not (policy.owner_confirms and actor == policy.owner):
                if actor == author:
                    return f"{actor} approved their own post {post}"
                return f"{actor} approved post {post} (version {version}), which has their words"
            if actor not in listed or not policy.approves(actor, author):
                return f"{actor} approved post {post} but is not one of its approvers"
            return None

        self._judge(index, known.account, sha256, check, f"{actor} approved a post of {known.account}")
        if version != known.version:
            self._bad(index, f"approval of version {version} of post {post}, which is at version {known.version}")
        if actor in (known.approvals or {}).get(version, ()) and not self._approves_other_words(
                known, version, actor, sha256):
            self._bad(index, f"{actor} approved post {post} (version {version}) again, for the words they approved "
                             "before: an approval counts once")
        approvals = known.approvals
        if approvals is None:
            known.approvals = {version: {actor}}
        elif version in approvals:
            approvals[version].add(actor)
        else:
            approvals[version] = {actor}
        if isinstance(sha256, str):
            if known.under is None:
                known.under = {}
            known.under[(version, actor)] = sha256
        if isinstance(sha256, str) and self._text_bound(index, len(extra) > 3 and extra[3] is True):
            if known.given is None:
                known.given = {}
            known.given[(version, actor)] = sha256
        self._moved(index, "post.approved", known, post, state)
        if isinstance(state, str):
            known.state = state

    def _approves_other_words(self, known: _Post, version: int, actor: str, sha256: Any) -> bool:
        """Whether ``actor``'s approval again of ``version`` (under the policy ``sha256``) was
        given for other words than their approval of it before: that one was bound to its text
        (``known.given``) under a policy whose disclosure line sends other words than this one's
        (the line changed while the post was held, and nothing asked for its approvals again).
        Byline replaces such an approval, which counted for none; an approval again of the
        same words would be counted twice. Where either line is unknown, it cannot be told."""
        earlier = (known.given or {}).get((version, actor))
        before = self._recorded_policies.get(earlier) if earlier is not None else None
        now = self._recorded_policies.get(sha256) if isinstance(sha256, str) else None
        if before is None or now is None or "disclosure" not in before.summary or "disclosure" not in now.summary:
            return False
        words, editors = known.words or "", list(known.editors or ())
        return len({disclosed(p.summary.get("disclosure"), p.owner, author=known.author, text=words, editors=editors,
                              suggested_by=known.suggested_by) for p in (before, now)}) == 2

    def _text_bound(self, index: int, says: bool) -> bool:
        """Whether the approval at ``index`` counts only for the text with the disclosure line of
        the policy it names: one that says so (``text_bound``), and, once the log holds such an
        approval, every one after it past the grace (a rolling upgrade's earlier replicas wrote
        none). An earlier Byline kept approvals through a change of the line: its approvals,
        before, are not held to it."""
        if says:
            if self._bound is None:
                self._bound = self._stamp(index) or ""
            return True
        if self._bound is None:
            return False
        return not self._within_upgrade_grace(index, self._bound)

    def _decided(self, index: int, kind: str, actor: str, known: _Post, post: str, extra: Any) -> None:
        """A rejection, cancel, adoption, dismissal, expiry, deferral, failure or retry."""
        state, version, sha256 = extra[:3]
        named = extra[3] if len(extra) > 3 else None  # the parent a reply's entry names
        quoted = extra[4] if len(extra) > 4 else None  # the post a quote's cancel names
        if actor == _SYSTEM and kind == "post.cancelled" and quoted is not None:
            self._with_quoted(index, known, post, quoted)
        elif actor == _SYSTEM and kind == "post.cancelled" and known.revises is not None:
            parent = self._posts.get(known.revises)
            if parent is None or parent.state != "deleted":
                self._bad(index, f"{_SYSTEM} cancelled post {post}, a pending revision of {known.revises}, which "
                                 "was not deleted")
        elif actor == _SYSTEM and kind in ("post.cancelled", "post.retried"):
            self._with_parent(index, kind, known, post, named)
        elif kind == "post.failed":
            known.failed_for = named if actor == _SYSTEM else None
            if known.revises is not None:
                self._never_made(index, actor, known, post, sha256)
        elif kind == "post.rejected":
            check = _approver_only(actor, known, f"{actor} rejected post {post} but is not one of its approvers")
            self._judge(index, known.account, sha256, check, f"{actor} rejected a post of {known.account}")
            if version is not None and version != known.version:
                self._bad(index, f"rejection of version {version} of post {post}, which is at version {known.version}")
        elif kind == "post.cancelled":
            if actor != known.author:
                self._bad(index, f"{actor} cancelled post {post}, which {known.author} wrote")
            else:
                self._judge(index, known.account, sha256, self._author_acts(actor, post, "cancelled"),
                            f"{actor} cancelled a post of {known.account}")
        elif kind in ("post.retried", "post.deleted"):
            author = known.author

            def owner_or_writing_author(policy: _Policy) -> str | None:
                if actor == policy.owner or (actor == author and author in policy.writers):
                    return None
                return f"{actor} {kind[5:]} post {post} but is neither its author writing for it nor the owner"

            self._judge(index, known.account, sha256, owner_or_writing_author,
                        f"{actor} {kind[5:]} a post of {known.account}")
        elif kind in ("post.adopted", "post.dismissed"):
            def check(policy: _Policy) -> str | None:
                return None if actor in policy.writers else f"{actor} {kind[5:]} post {post} but is not a writer"

            self._judge(index, known.account, sha256, check, f"{actor} {kind[5:]} a post of {known.account}")
            # An adoption names the version its writer read (entries from before it did name none).
            if kind == "post.adopted" and version is not None and version != known.version:
                self._bad(index, f"adoption of version {version} of post {post}, which is at version {known.version}")
        self._moved(index, kind, known, post, state)
        if isinstance(state, str):
            known.state = state

    def _reply_stored(self, index: int, account: str | None, post: str, named: str) -> None:
        """A reply stored to wait for a post not yet out names a post of its account that is
        waiting or out as it is stored (``posts.REPLY_PARENT_STATES``), as the gateway checks in
        the transaction that stores it: a parent that had ended took the replies waiting for it
        with it, and would leave this one waiting for ever."""
        parent = self._posts.get(named)
        if parent is None or parent.account != account:
            self._bad(index, f"post {post} was stored as a reply to {named}, which is not a post of {account}")
        elif parent.state not in _REPLY_PARENT_STATES:
            self._bad(index, f"post {post} was stored as a reply to {named}, which was {parent.state}: a reply "
                             "waits only for a post waiting or out, and would wait for this one for ever")

    def _never_made(self, index: int, actor: str, known: _Post, post: str, sha256: str | None) -> None:
        """The gateway's word that a pending revision released (its approvals or its time come)
        can never be made (``PostService.fail_revision``): only where the log shows why. Its post
        is no longer published (nothing to edit), or the policy the failure was decided under
        (the one in force where it names none) puts the account on another platform than the
        policy its post last went out under, or, on a platform whose servers number their own
        posts, is another policy than that one (a move to another server: the summaries the log
        records name no server, so any other policy there passes).
        Else it silenced words its approvers let out, and is named; and so is a failure by
        anyone but the gateway, or of a revision sent to its platform (``post.revising``): what
        becomes of that one its post's ``post.revised`` or ``post.revision_failed`` says."""
        revises = known.revises
        if actor != _SYSTEM:
            self._bad(index, f"{actor} failed post {post}, a pending revision of {revises}: only the gateway "
                             "gives one up")
            return
        if known.state == "publishing":  # (from anywhere but scheduled, its life names it)
            self._bad(index, f"{_SYSTEM} failed post {post}, a pending revision of {revises}, which was "
                             "publishing: only one released by its approvals or its time, and not sent, is given up")
            return
        parent = self._posts.get(revises or "")
        if parent is None or parent.state != "published":
            return  # nothing left to edit
        went = self._recorded_policies.get(parent.claimed_under or "")
        if went is None:
            return  # where it went out the log does not say (a claim naming no policy)

        def check(policy: _Policy) -> str | None:
            platform = went.summary.get("platform")
            if policy.summary.get("platform") != platform:
                return None  # moved to another platform
            if policy.sha256 != went.sha256 and platform in _SERVERS_APART:
                return None  # maybe moved to another server of it
            return (f"{_SYSTEM} failed post {post}, a pending revision of {revises}, while its account was still "
                    f"where {revises} went out ({platform}): nothing kept the revision from being made")

        self._judge(index, known.account, sha256, check, f"{_SYSTEM} failed a pending revision of {known.account}")

    def _quoting(self, index: int, known: _Post, post: str) -> None:
        """A quote written before the post it quotes went out is sent only once that post is out
        with the words its approvers saw it quote: at the version it had then."""
        assert known.quotes is not None
        quoted_id, version = known.quotes
        quoted = self._posts.get(quoted_id)
        if quoted is None or quoted.account != known.account or quoted.state != "published" \
                or quoted.version != version:
            where = "not a post of its account" if quoted is None or quoted.account != known.account else (
                f"{quoted.state} at version {quoted.version}")
            self._bad(index, f"post {post} is sent quoting post {quoted_id}, its approvals given while that post's "
                             f"words were its version {version}, but post {quoted_id} was {where}: the quote "
                             "shows words its approvers did not see it quote")

    def _answers_recorded(self, index: int, known: _Post, post: str, answers: tuple[str, int] | None) -> None:
        """The version of its parent a reply to a post not yet out answers, as its submission or
        an edit that names its parent records it (``answers_post``). Once the log holds one,
        every such entry past the grace records it (a rolling upgrade's earlier replicas wrote
        none): left out, a reply could go out answering words its approvers never saw."""
        known.answers = answers
        if answers is not None:
            if self._answered is None:
                self._answered = self._stamp(index) or ""
            return
        if known.parent is not None and known.claimed_at is None and self._answered is not None \
                and not self._within_upgrade_grace(index, self._answered):
            self._bad(index, f"post {post} replies to post {known.parent}, not yet out, but its entry records no "
                             "version of it (data.answers_post and answers_version) that its approvals answer")

    def _answering(self, index: int, known: _Post, post: str) -> None:
        """A reply written before its parent went out is sent only once that parent is out with
        the words its approvers saw it answer: those of the version it had when the reply was
        written or last edited, unedited since (a decision again gives it a new version of the
        same words and what goes with them)."""
        assert known.answers is not None
        answered_id, version = known.answers
        answered = self._posts.get(answered_id)
        if answered is None or answered.account != known.account or answered.state != "published" \
                or not answered.worded <= version <= answered.version:
            where = "not a post of its account" if answered is None or answered.account != known.account else (
                f"{answered.state} at version {answered.version}")
            self._bad(index, f"post {post} is sent replying to post {answered_id}, its approvals given while that "
                             f"post's words were its version {version}, but post {answered_id} was {where}: the "
                             "reply answers words its approvers did not see it answer")

    def _as_adopted(self, post_id: str) -> _Post | None:
        """The post ``post_id`` names, followed into the post it was adopted as (a suggestion
        taken up by a writer), as a reply or a quote waiting for it waits on that one."""
        found = self._posts.get(post_id)
        for _ in range(_ADOPTIONS_FOLLOWED):
            if found is None or found.state != "adopted" or found.into is None:
                break
            found = self._posts.get(found.into)
        return found

    def _with_quoted(self, index: int, known: _Post, post: str, named: str) -> None:
        """The gateway cancels a quote with the post it quotes not yet out, once that post ended
        for good (``gateway.services.posts``): no other post, and never a quote it had sent."""
        if known.claimed_at is not None:
            self._bad(index, f"{_SYSTEM} cancelled post {post} with the post it quotes, {named}, but entry "
                             f"{known.claimed_at} had sent it out: a quote sent waits for no post")
            return
        if known.quotes is None or known.quotes[0] != named:
            self._bad(index, f"{_SYSTEM} cancelled post {post} for the post it quotes, {named}, but it quotes "
                             f"{known.quotes[0] if known.quotes else 'no post not yet out'}")
            return
        quoted = self._as_adopted(named)
        if quoted is None or quoted.account != known.account or quoted.state not in _ENDS_A_THREAD:
            where = ("not a post of its account" if quoted is None or quoted.account != known.account
                     else quoted.state)
            self._bad(index, f"{_SYSTEM} cancelled post {post} with the post it quotes, {named}, which was "
                             f"{where}: it had not ended")

    def _with_parent(self, index: int, kind: str, known: _Post, post: str, named: str | None) -> None:
        """The gateway cancels a reply with its parent, once the parent ended for good, and
        retries one with its parent, once the parent is on its way out again after the failure
        the reply failed for (``gateway.services.posts``): no other post, at no other time. A
        reply once claimed went out (or is going out) to where its parent went, and waits for it
        no more: the gateway never cancels or retries it with its parent."""
        did = kind[5:]
        if known.claimed_at is not None:
            self._bad(index, f"{_SYSTEM} {did} post {post} with the post it replies to, {named}, but entry "
                             f"{known.claimed_at} had sent it out: a reply sent waits for no parent")
            return
        if named is None or named != known.parent:
            self._bad(index, f"{_SYSTEM} {did} post {post} for the post it replies to, {named}, but it "
                             f"replies to {known.parent or 'no post not yet out'}")
            return
        parent = self._as_adopted(named)
        if parent is None or parent.account != known.account:
            self._bad(index, f"{_SYSTEM} {did} post {post} for the post it replies to, {named}, which is "
                             f"not a post of {known.account}")
        elif kind == "post.cancelled" and parent.state not in _ENDS_A_THREAD:
            self._bad(index, f"{_SYSTEM} cancelled post {post} with the post it replies to, {named}, which "
                             f"was {parent.state}: it had not ended")
        elif kind == "post.retried" and (known.failed_for != named or parent.state not in _ON_ITS_WAY):
            why = (f"which was {parent.state}" if known.failed_for == named
                   else "though it had not failed for that post")
            self._bad(index, f"{_SYSTEM} retried post {post} with the post it replies to, {named}, {why}")

    def _regated(self, index: int, known: _Post, post: str, state: str, required: int | None) -> None:
        """A post held anew on a co-signed account must be held for at least its gate's count."""
        policy = self._policy.get(known.account or "")
        if required is None or state != "held" or policy is None or policy.summary.get("tier") != "co-signed":
            return  # without a count the post keeps the gate it had
        needed = _needed(policy.summary)
        if required < needed:
            self._bad(index, f"post {post} was held again on co-signed {known.account} needing "
                             f"{required} approvals, not {needed}")

    def _moved(self, index: int, kind: str, known: _Post, post: str, state: Any) -> None:
        """An event says where its post is now: only where the post's life takes it from where
        it was (``gateway.lifecycle``). Taken at its word, a cancellation or a rejection that
        says the post is still scheduled, or an approval that says it is out, would let it go
        out with no one deciding, or with no claim recorded."""
        after = _AFTER[kind].get(known.state)
        if isinstance(state, str) and after is not None and state not in after:
            self._bad(index, f"{kind} of post {post}, which was {known.state}, says it is {state}: its life "
                             f"takes it to {' or '.join(sorted(after))}")

    def _redecided(self, index: int, known: _Post, post: str, extra: Any) -> None:
        version, state, approvers, required = extra[:4]
        held = _REDECIDED.get(known.state)
        if held is not None and state != held:
            # Taken at its word, a decision again that released the post (or said it was out)
            # would let it be sent with no one deciding: after a claim that only looked for it,
            # or while it waited for its author's lost role to be decided for.
            self._bad(index, f"post.redecided of post {post}, which was {known.state}, says it is {state}: "
                             f"a post decided again is {held}")
        self._regated(index, known, post, state, required)
        known.owed = None
        known.decided_again = True
        known.version = version
        known.state = state
        if approvers is not None and required is not None:
            known.approvers, known.required = approvers, required

    def _revision(
        self, index: int, actor: str, known: _Post, post: str, extra: Any, did: str, kind: str,
        words: str | None,
    ) -> None:
        """New words for a published post (sent, ``post.revising``, or recorded,
        ``post.revised``): its author's, while they write for the account, and only where the
        policy sends words out at once (never a co-signed or delayed account). Judged by the
        policy it names, as every action is (a revision decided a moment before a change, and
        made on the platform meanwhile); by the one in force where it names none (recorded
        before revisions named theirs)."""
        sha256 = extra[1]  # (version, policy[, pending revision]): fact_extra's
        revision = extra[2] if len(extra) > 2 else None
        author, account = known.author, known.account
        if revision is not None:
            self._released(index, kind, post, revision, words, extra[3] if len(extra) > 3 else None)
        released = revision is not None
        # A pending revision held anew for people with a role once its author lost theirs may go
        # out on their approvals, as any post decided again does (``_published``).
        pending = None if revision is None else self._posts.get(revision)
        decided_again = pending is not None and pending.revises == post and pending.decided_again

        def check(policy: _Policy) -> str | None:
            if actor != author or (author not in policy.writers and not decided_again):
                return f"{actor} {did} post {post} but is not its author writing for {account}"
            if released:
                return None  # its pending revision's approvals or cooling-off let the words out (``_released``)
            if policy.summary.get("tier") in ("co-signed", "delayed") or policy.summary.get("delay_seconds"):
                return f"post {post} was {did} on {account}, whose policy does not send words out at once"
            return None

        self._judge(index, account, sha256, check, f"{actor} {did} a post of {account}")

    def _released(
        self, index: int, kind: str, post: str, revision: str, words: str | None, carried: str | None,
    ) -> None:
        """A revision of ``post`` made through its pending revision ``revision``: sent
        (``post.revising``) only once that revision is released (scheduled) with the approvals
        it was held for, no earlier than its time, with its words; recorded (``post.revised``)
        only after such a send. Each is named where it does not; the pending revision moves on
        with it all the same (on its way, then out), so that one forgery is named once.
        ``carried``: what it sends besides its words, hashed as the pending revision's versions
        are ("" for nothing; an entry without it is named as it is read), which must be what its
        version approved carries."""
        pending = self._posts.get(revision)
        if pending is None or pending.revises != post:
            self._bad(index, f"{kind} of post {post} names {revision}, which is not a pending revision of it")
            return
        if carried is not None and pending.content is not None and carried != pending.content:
            self._bad(index, f"{kind} of post {post} sends other media or options than its revision {revision} "
                             f"was approved with at version {pending.version} (the content warning, visibility "
                             "or an upload changed after its approvers saw it)")
        if kind == "post.revised":
            # Who wrote words into the revision wrote the post's from now on: its next revision
            # keeps them, and their approval of it counts for none (as the gateway's record says).
            parent = self._posts.get(post)
            if parent is not None and pending.editors:
                parent.editors = dict(pending.editors)
            if pending.state != "publishing":
                self._bad(index, f"post.revised of post {post} names its revision {revision}, which was "
                                 f"{pending.state}, not on its way")
            pending.state = "applied"
            return
        count = self._approvals_counted(pending, pending.version)
        if pending.state != "scheduled":
            self._bad(index, f"post {post} was sent its revision {revision}, which was {pending.state}: only a "
                             "revision released by its approvals or its time goes out")
        elif count < pending.required:
            self._bad(index, f"post {post} was sent its revision {revision} (version {pending.version}) with "
                             f"{count} of the {pending.required} approvals it needed")
        elif words is not None and pending.words is not None and words != pending.words:
            self._bad(index, f"post {post} was sent other words than its revision {revision} was approved with")
        else:
            self._early(index, pending, revision)
        pending.state = "publishing"

    def _settles(
        self, index: int, known: _Post, post: str, version: int, words: str | None, content: str | None,
    ) -> tuple[int, int, str | None, str | None, str | None] | None:
        """A revision recorded is the one its ``post.revising`` sent: its version, its words and
        what it carries, where the log gives them. Once the log holds a ``post.revising``, one
        recorded without it is named: its words were on the platform before the log held them
        (for the grace after the first, a replica of an earlier Byline may record one)."""
        sent, known.revising = known.revising, None
        if sent is not None:
            at, sent_version, sent_words, sent_content, _ = sent
            if version != sent_version:
                self._bad(index, f"post.revised of post {post} records version {version}, but entry {at} sent "
                                 f"version {sent_version} to its platform")
            elif words is not None and sent_words is not None and words != sent_words:
                self._bad(index, f"post.revised of post {post} records other words than entry {at} sent to its "
                                 "platform")
            elif content is not None and sent_content is not None and content != sent_content:
                self._bad(index, f"post.revised of post {post} records other media or options than entry {at} "
                                 "sent to its platform")
            return sent
        if self._revisings is None:
            return None  # a log from before revisions were announced
        if self._within_upgrade_grace(index, self._revisings):
            return None
        self._bad(index, f"post.revised of post {post} follows no post.revising: its words were on the "
                         "platform before the log held them")
        return None

    def _said_line(self, index: int, kind: str, post: str, line: str | None) -> None:
        """Once the log holds a revision entry that says the disclosure line it sent with its
        words (``disclosure_line``), one that does not is named, past the grace after the first
        (a rolling upgrade's earlier replicas said none): left out, the words that went out
        could not be rebuilt from the words approved."""
        if line is not None:
            if self._lined is None:
                self._lined = self._stamp(index) or ""
            return
        if self._lined is None:
            return
        if self._within_upgrade_grace(index, self._lined):
            return
        self._bad(index, f"{kind} of post {post} does not say the disclosure line it sends with its words "
                         "(data.disclosure_line), though entries before it did: what went out cannot be compared "
                         "with what was approved")

    def _line(self, account: str | None, sha256: str | None, known: _Post) -> str | None:
        """The disclosure line the policy ``sha256`` (the account's in force where None) asks
        ``known``'s words to go out with ("" for none), crediting its author, suggester and
        editors; None where the log does not say it (a policy it never recorded, or one recorded
        before its summary said its disclosure)."""
        policy = self._policy.get(account or "") if sha256 is None else self._recorded_policies.get(sha256)
        if policy is None or "disclosure" not in policy.summary:
            return None
        return disclosed(policy.summary.get("disclosure"), policy.owner, author=known.author, text="",
                         editors=list(known.editors or ()), suggested_by=known.suggested_by)[2:]

    def _sends_line(self, index: int, kind: str, known: _Post, post: str, extra: Any) -> str | None:
        """What a revision entry says it sent besides its words (``disclosure_line``), which must
        be the line the policy it names asks for, crediting who wrote the words: its pending
        revision's writers where it names one (whose approvals must have been given for the
        words with that line, as a claim's are), else its post's. Returns the line said."""
        sha256, revision = extra[1], extra[2] if len(extra) > 2 else None
        line: str | None = extra[4] if len(extra) > 4 else None
        self._said_line(index, kind, post, line)
        if line is None:
            return None
        pending = None if revision is None else self._posts.get(revision)
        wrote = pending if pending is not None and pending.revises == post else known
        expected = self._line(known.account, sha256, wrote)
        if expected is not None and line != expected:
            self._bad(index, f"{kind} of post {post} sends the disclosure line {line!r} with its words, where the "
                             f"policy it names asks for {expected!r}: other words went out than were written and "
                             "approved")
        elif wrote is not known and kind == "post.revising":
            given = wrote.given or {}
            counted = [a for a in (wrote.approvals or {}).get(wrote.version, ()) if not wrote.wrote(a)]
            fit = [a for a in counted if (wrote.version, a) not in given
                   or self._line(known.account, given[(wrote.version, a)], wrote) in (None, line)]
            if len(fit) < wrote.required <= len(counted):
                self._bad(index, f"post {post} was sent its revision {revision} with another disclosure line than "
                                 f"its approvals were given under: {len(fit)} of them were given for the words it "
                                 f"sent, where it needed {wrote.required}")
        return line

    def _revision_failed(self, index: int, actor: str, known: _Post, post: str, version: int) -> None:
        """The gateway's word that a revision it sent did not stand (the platform refused it, or
        the policy in force by the time it was settled would not send it at once, and the words
        recorded before were sent back): of the revision open, at its version."""
        sent, known.revising = known.revising, None
        if actor != _SYSTEM:
            self._bad(index, f"{actor} recorded that a revision of post {post} failed: only the gateway does")
        elif sent is None:
            self._bad(index, f"post.revision_failed of post {post} at version {version}, but no revision of it "
                             "was sent to its platform")
        elif sent[1] != version:
            self._bad(index, f"post.revision_failed of post {post} at version {version}, but entry {sent[0]} "
                             f"sent version {sent[1]}")

    def _keyed(self, index: int, known: _Post, post: str, key: str | None) -> None:
        """A claim again of a post whose last send's outcome is open, its words and content
        those that send's version had (a lease that ran out, a deferral, a decision again after
        a lookup that missed it), names that send's idempotency key (``claim_key``): a platform
        that took the first send gives back the post made with its key, and would make a second
        copy under a new one. An edit since is another post, with a key of its own. A claim that
        names no key (none recorded) is not compared, and leaves nothing to compare with. The
        entry named is the first that sent under the key (a claim again under it sends the same)."""
        last, now = known.keyed, (known.words, known.content)
        known.keyed = None if key is None else (
            last[0] if last is not None and last[1] == key else index, key, *now)
        if last is None or key is None or key == last[1] or last[2:] != now:
            return
        self._bad(index, f"post {post} was claimed again under the idempotency key {key}, where entry {last[0]} "
                         f"sent the same words and content under {last[1]} and that send's outcome is open: had "
                         "the platform taken it, this could make a second copy")

    def _gates_changed(
        self, index: int, actor: str, account: str | None, known: _Post, post: str, extra: Any
    ) -> None:
        """Who may reply to or quote a published post (its threadgate or postgate), changed once
        it was out: of a post of the account the entry names, by someone who may post on it (a
        writer or the owner, on every tier: settings, not words, that need no approvals), under
        the policy it names. That the post was published, and not deleted, its state says."""
        sha256, gate = extra
        self._gates_budget(index, known, post)
        if account != known.account:
            self._bad(index, f"post.gates_changed names {account} for post {post}, which is a post of "
                             f"{known.account}")
            return
        if gate not in _GATES:
            self._bad(index, f"post.gates_changed of post {post} names {gate}, which is no threadgate or postgate")

        def check(policy: _Policy) -> str | None:
            if actor in policy.writers or actor == policy.owner:
                return None
            return f"{actor} changed who may reply to or quote post {post} but may not post on {account}"

        self._judge(index, account, sha256, check, f"{actor} changed the {gate} of a post of {account}")

    def _gates_budget(self, index: int, known: _Post, post: str) -> None:
        """A post's interaction settings change at most ``CHANGES_PER_HOUR`` times in any hour,
        counted as the gateway counts them before it records one (``budget_wait``, on the
        post's ``post.gates_changed`` entries): those whose time is within the hour before this
        one's, the moment an hour before left out, with this one. A change the log does not
        take is put back on the platform unlogged, and counts for nothing, there as here. An
        entry whose time is unknown is named for it, and neither counted nor judged. Only the
        post's last changes are kept: a log whose times go back (two gateways' clocks apart) may
        pass with one change too many in an hour, never fail with none."""
        stamp = self._stamp(index)
        if stamp is None:
            return
        try:
            now = to_micros(_moment(stamp))
        except ValueError:  # no time (a 13th month): named for its ts already
            return
        if known.gates is None:
            known.gates = deque(maxlen=CHANGES_PER_HOUR)
        changes = known.gates
        if budget_wait([at for at, _ in changes], now=now, adding=1) is not None:  # the last ones all in its hour
            self._bad(index, f"who may reply to or quote post {post} changed at {stamp}, past its budget: entries "
                             f"{changes[0][1]} to {changes[-1][1]} changed it {len(changes)} times in the hour "
                             f"before, and a post's may change {CHANGES_PER_HOUR} times in any hour")
        changes.append((now, index))

    def _early(self, index: int, known: _Post, post: str) -> None:
        """A claim sends its post out: not before the time the log last recorded it due (its
        submission's, an edit's that started its cooling-off again, the approval's that
        scheduled it), less the grace (:data:`DUE_GRACE_SECONDS`). A post's time moved earlier
        in the database, and nowhere in the log, went out before the window its author had to
        take it back, or before the time its writer asked and its approvers approved."""
        if known.due is None:
            return
        at, due = known.due
        since = self._since(index, due)
        if since is None:
            return
        stamp, early = since[0], -since[1]
        if early > self._due_grace:
            self._bad(index, f"post {post} went out at {stamp}, {early:.0f} s before {due}, when entry {at} "
                             f"said it was due: more than the {self._due_grace:.0f} s a claim may be early")

    def _since(self, index: int, moment: str) -> tuple[str, float] | None:
        """Entry ``index``'s own time, and how many seconds it came after ``moment`` (less than
        none: before it); None where either is no time (the entry is named for its ts already)."""
        stamp = self._stamp(index)
        if stamp is None:
            return None
        try:
            return stamp, (_moment(stamp) - _moment(moment)).total_seconds()
        except ValueError:
            return None

    def _held_until(self, index: int, known: _Post, post: str, deadline: str, sha256: str | None) -> None:
        """A post held anew (submitted, edited after its release, decided again) is held until
        the entry's time plus the ``expire_after`` of the policy it names, and no later (the
        grace, :data:`DUE_GRACE_SECONDS`, beside): a deadline recorded later would let
        approvals through after the hold should have expired. Policies recorded before their
        summaries said how long a hold lasts are not compared."""
        since = self._since(index, deadline)
        if since is None:
            return
        lasts = -since[1]
        grace = self._due_grace

        def check(policy: _Policy) -> str | None:
            allowed = policy.summary.get("expire_after_seconds")
            if type(allowed) is not int or lasts <= allowed + grace:
                return None
            return (f"post {post} was held until {deadline}, {lasts:.0f} s after entry {index}, where its "
                    f"policy lets a hold last {allowed} s")

        self._judge(index, known.account, sha256, check, f"post {post} was held")

    def _late(self, index: int, known: _Post, post: str) -> None:
        """An approval counts only before its post's hold expires: not later than the deadline
        the log last recorded for it (its submission's, an edit's that held it anew, a decision's
        again), plus the grace (:data:`DUE_GRACE_SECONDS`). A deadline moved later in the
        database, and nowhere in the log, let an approval release a post that had expired."""
        if known.deadline is None or not known.deadline[1] or known.state != "held":
            return
        at, deadline = known.deadline
        since = self._since(index, deadline)
        if since is None:
            return
        stamp, late = since
        if late > self._due_grace:
            self._bad(index, f"post {post} was approved at {stamp}, {late:.0f} s after {deadline}, when entry {at} "
                             f"said its hold expired: more than the {self._due_grace:.0f} s an approval may be late")

    def _expired_early(self, index: int, known: _Post, post: str) -> None:
        """A hold expires only once its deadline has passed: not earlier than the deadline the
        log last recorded for it (its submission's, an edit's, a decision's again), less the
        grace (:data:`DUE_GRACE_SECONDS`), and never where the log held it with none (a post
        parked while its account had no policy waits for a decision, not a time). A deadline
        moved earlier in the database, and nowhere in the log, expired a post before its
        approvers had the time to approve it. Where no entry recorded the deadline (written
        before they did), nothing is compared; a post not held is named for its life."""
        if known.deadline is None or known.state != "held":
            return
        at, deadline = known.deadline
        if not deadline:
            self._bad(index, f"post {post} expired, but entry {at} held it with no deadline: a hold without one "
                             "waits for a decision and never expires")
            return
        since = self._since(index, deadline)
        if since is None:
            return
        stamp, early = since[0], -since[1]
        if early > self._due_grace:
            self._bad(index, f"post {post} expired at {stamp}, {early:.0f} s before {deadline}, when entry {at} "
                             f"said its hold expired: more than the {self._due_grace:.0f} s an expiry may be early")

    def _publishing(self, index: int, known: _Post, post: str, extra: Any, sent: str | None) -> None:
        """A claim: the account must have a policy in force, and the author still write for it
        under the policy the claim names (or people who do must have decided the post again);
        what goes out is the post's current version: its words (and the disclosure line the
        policy asks for), where the log's texts were given."""
        sha, version, *rest = extra if isinstance(extra, tuple) else (extra, None)
        looks_only = bool(rest) and rest[0] is not None
        known.claimed_under = sha
        self._in_force_named(index, known, post, sha, checked=len(rest) > 1 and rest[1] is True)
        self._keyed(index, known, post, rest[2] if len(rest) > 2 else None)
        if version is not None and version != known.version:
            self._bad(index, f"post {post} went out at version {version}, but its words are at version {known.version}")
        if known.claimed_at is None:
            known.claimed_at = index
        again = known.state == "publishing"  # its lease ran out: claimed again, as it was
        known.state = "publishing"
        if looks_only:
            # Claimed again only to look for it on its platform (its first claim sent it, and
            # was judged then): the policy in force would not send it. What follows says
            # whether it was there (``post.published`` with ``found``) or held again unsent.
            known.looking = index
            if not again:
                self._bad(index, f"post {post} was claimed to be looked for only (data.looks_only), but no claim "
                                 "before had sent it")
            return
        words, before, known.sent = known.words, known.sent, sent
        last, known.sent_for = known.sent_for, (index, words, known.content)
        # A claim again (its lease ran out, or the post, its words and content unchanged, came
        # back from a deferral, a failure or a decision again) sends the words the last one did
        # (the platform may have them already), whatever the policy's disclosure now; who may
        # send it, and with which approvals, is judged below as for any claim. Once its words or
        # content changed (an edit), it is another post, and sends its words as its policy asks.
        same = last is not None and words is not None and last[1:] == (words, known.content)
        if same and last is not None and sent is not None and before is not None and sent != before:
            self._bad(index, f"post {post} was claimed again with other words than entry {last[0]} sent, its own "
                             "words and what it carries unchanged since, and that send's outcome open: had the "
                             "platform taken it, this made a second copy (a claim again sends what it sent)")
        sends = None if sent is None or words is None or (sent == before and same) else self._sends_words(
            known, post, words, sent)
        account = known.account
        if account is None:
            return
        if account not in self._policy:
            self._bad(index, f"post {post} went out while {account} had no policy in force")
            return
        author, decided_again = known.author, known.decided_again or known.announcement
        required, announcement = known.required, known.announcement
        approved = frozenset(a for a in (known.approvals or {}).get(known.version, ()) if not known.wrote(a))
        # Sent anew (not a claim again of the words and content a claim before sent, which sends
        # what that one did, named above where it does not): approvals given for other words than
        # these (the policy's disclosure line changed since they were given) count for none.
        other = frozenset() if same or sends is None or sent is None or words is None else (
            self._given_for_other_words(known, words, sent))

        def check(policy: _Policy) -> str | None:
            if not (author in policy.writers or decided_again):
                return f"post {post} went out though {author} no longer writes for {account}"
            counting: list[str] = []
            needed = 0
            if not announcement and policy.summary.get("tier") == "co-signed":
                needed = _needed(policy.summary)
                if required < needed:
                    return (f"post {post} went out on co-signed {account} held for {required} "
                            f"approvals, where its policy asks for {needed}")
                counting = [a for a in approved if policy.approves(a, author)]
                if len(counting) < needed <= len(approved):  # (too few at all: its publication is named)
                    return (f"post {post} went out on co-signed {account} with {len(counting)} approvals from "
                            f"its approvers, where its policy asks for {needed}")
            elif not announcement and required > 0:
                # Held (by a rule, say) on another tier and released: by approvers the policy it
                # went out under still names (the owner confirming their own, where it names none).
                released = [a for a in (known.approvals or {}).get(known.version, ())
                            if not known.wrote(a) or (policy.owner_confirms and a == policy.owner)]
                counting, needed = [a for a in released if policy.approves(a, author)], required
                if len(counting) < required <= len(released):  # (too few at all: its publication is named)
                    return (f"post {post} went out on {account} with {len(counting)} approvals from its approvers, "
                            f"where it was held for {required}")
            if (moved := self._given_as_other(known, counting, policy)) and len(counting) - len(moved) < needed:
                return (f"post {post} went out on {account} as {policy.summary.get('speaks_as')} with approvals "
                        f"given while it spoke as another platform account ({moved[0][1]}): "
                        f"{len(counting) - len(moved)} of them were given for it, where it needed {needed}")
            if sends is None:
                return None
            if (problem := sends(policy)) is not None:
                return problem  # not the words written, with this policy's line: named as such
            fit = sum(1 for a in counting if a not in other)
            if fit < needed <= len(counting) and "disclosure" in policy.summary:
                return (f"post {post} went out on {account} with another disclosure line than its approvals were "
                        f"given under: {fit} of them were given for the words it sent, where it needed {needed}")
            return None

        self._judge(index, account, sha, check, f"post {post} went out")

    def _in_force_named(self, index: int, known: _Post, post: str, sha: str | None, *, checked: bool) -> None:
        """A claim that says it checked the policy it names was the account's version in force
        (``policy_in_force``: the gateway reads the recorded version in the claim's transaction,
        and records a version in the same transaction as its log entry) names the policy the
        log last recorded for the account, with no grace: else a gateway sent under a policy
        another had replaced (one person's post on an account made co-signed meanwhile). Once
        the log holds such a claim, one that does not say so passes only for the grace after it
        (a replica of the earlier Byline finishing its work beside the new ones)."""
        account = known.account
        if checked:
            if self._checked is None:
                self._checked = self._stamp(index) or ""
            in_force = self._policy.get(account) if account is not None else None
            if account is not None and (in_force is None or sha != in_force.sha256):
                record = self._recorded.get(account)
                last = (f"the last policy record before it (entry {record}) is "
                        f"{in_force.sha256[:12] if in_force is not None else 'its removal'}"
                        if record is not None else "the log has recorded no policy for it")
                self._bad(index, f"post {post} was claimed under policy {(sha or 'none')[:12]}, but {last}: a claim "
                                 f"that checked its policy (data.policy_in_force) names {account}'s policy in force")
        elif self._checked is not None:
            if self._within_upgrade_grace(index, self._checked):
                return
            self._bad(index, f"post {post} was claimed without saying it checked the policy it names was the "
                             "account's in force (data.policy_in_force), though claims before it did: it could have "
                             "gone out under a policy another gateway had replaced")

    def _given_as_other(self, known: _Post, counting: list[str], policy: _Policy) -> list[tuple[str, str]]:
        """Those of ``counting`` (approvers of ``known``'s current version) whose approval named a
        policy speaking as another platform account than ``policy``, the one a claim sends it
        under, each with that account: words approved for @brand are not approved for
        @someone-else. Where either summary does not say (an earlier Byline's, or the
        sandbox's), nothing is compared."""
        under = known.under
        speaks = policy.summary.get("speaks_as")
        if under is None or speaks is None:
            return []
        moved = []
        for approver in counting:
            given = self._recorded_policies.get(under.get((known.version, approver), ""))
            then = given.summary.get("speaks_as") if given is not None else None
            if then is not None and then != speaks:
                moved.append((approver, str(then)))
        return moved

    def _given_for_other_words(self, known: _Post, words: str, sent: str) -> frozenset[str]:
        """Who approved ``known``'s current version under a policy whose disclosure line would
        have sent other words than ``sent``: the text they approved is not the text that went
        out. An approval that names no policy, or one recorded before its summary said its
        disclosure (an earlier Byline's), is taken as given for what went out."""
        given = known.given
        if given is None:
            return frozenset()
        other = set()
        for (version, approver), sha256 in given.items():
            policy = self._recorded_policies.get(sha256) if version == known.version else None
            if policy is None or "disclosure" not in policy.summary:
                continue
            if sent != disclosed(policy.summary.get("disclosure"), policy.owner, author=known.author, text=words,
                                 editors=list(known.editors or ()), suggested_by=known.suggested_by):
                other.add(approver)
        return frozenset(other)

    @staticmethod
    def _sends_words(known: _Post, post: str, words: str, sent: str) -> Check:
        """That what a claim sends is the post's words, with the policy's disclosure line where
        anyone but the owner wrote them (``gateway.policy.engine.disclosed_text``); for a policy
        recorded before its summary said its disclosure, that it begins with the words."""
        def check(policy: _Policy) -> str | None:
            if known.announcement or "disclosure" not in policy.summary:
                ok = sent == words or (not known.announcement and sent.startswith(words + "\n\n"))
            else:
                ok = sent == disclosed(policy.summary.get("disclosure"), policy.owner, author=known.author,
                                       text=words, editors=list(known.editors or ()),
                                       suggested_by=known.suggested_by)
            if ok:
                return None
            return (f"post {post} sent out other words than its version {known.version} "
                    f"(written by {known.author}{' and others' if known.editors else ''})")

        return check

    def _published(self, index: int, known: _Post, post: str, extra: Any) -> None:
        version = extra[0]
        if version != known.version:
            self._bad(index, f"post {post} was published at version {version}, but its words are at "
                             f"version {known.version}")
        known.state = "published"
        self.published_checked += 1
        if known.required <= 0:
            return
        count = self._approvals_counted(known, version)
        if count < known.required:
            self._bad(
                index,
                f"post {post} was published (version {version}) with {count} of the "
                f"{known.required} approvals it needed",
            )

    def _approvals_counted(self, known: _Post, version: int) -> int:
        """How many distinct approvals of ``version`` count: from people who wrote none of it, but
        for the owner confirming where the policy has them confirm."""
        got = None if known.approvals is None else known.approvals.get(version)
        policy = self._policy.get(known.account or "") or self._previous.get(known.account or "")
        owner = policy.owner if policy is not None and policy.owner_confirms else None
        return 0 if got is None else sum(1 for a in got if a == owner or not known.wrote(a))

    def finish(self) -> None:
        """Flag actions that named a policy the log never recorded, and posts still owed a
        decision when the log ends."""
        for waiting in self._pending.values():
            for item in waiting:
                self._bad(
                    item.index,
                    f"{item.what} under policy {item.sha256[:12]}, which the log never records",
                )
        self._pending.clear()
        for account in list(self._unannounced):
            self._never_announced(account)
        for post, known in self._posts.items():
            if known.owed is not None:
                at, why = known.owed
                self._bad(at, f"post {post} was never decided again after this change: {why}")
