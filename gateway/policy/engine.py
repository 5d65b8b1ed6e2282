"""The policy engine: who may do what, and what happens to a submitted post. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.policy.credit import disclosed
from gateway.policy.models import Policy, RuleAction, Tier
from gateway.policy.text import MatchText


class Role(StrEnum):
    """What a person is to an account."""

    OWNER = "owner"
    WRITER = "writer"
    APPROVER = "approver"
    SUGGESTER = "suggester"


def roles(policy: Policy, user: str) -> frozenset[Role]:
    """Every role ``user`` holds on the account."""
    found: set[Role] = set()
    if user == policy.owner:
        found.add(Role.OWNER)
    if user in policy.writers:
        found.add(Role.WRITER)
    if policy.approvals and user in policy.approvals.from_:
        found.add(Role.APPROVER)
    if user in policy.suggesters and user not in policy.writers:
        found.add(Role.SUGGESTER)
    return frozenset(found)


@dataclass(frozen=True, kw_only=True)
class Reason:
    """A rule that matched, with the plain-language reason it gives."""

    rule: str
    action: RuleAction
    reason: str

    def to_json(self) -> dict[str, str]:
        """The reason as shown to authors and approvers."""
        return {"rule": self.rule, "action": self.action.value, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class RuleVerdict:
    """The outcome of running the rules on one text."""

    blocked_by: Reason | None
    holds: tuple[Reason, ...]


def check_rules(policy: Policy, text: str, *also: str | None) -> RuleVerdict:
    """Run the rules in order: a block stops at once, an allow ends the chain, holds gather.

    Rules see the text as read (see ``gateway.policy.text``): its normalized forms are made
    once here and shared by every rule. ``also``: the other words a reader sees of the post (its
    content warning, its media's descriptions, a link card), each run through the rules in the
    same way: a block in any of them blocks the post, and their holds gather (an allow ends
    only its own text's chain).
    """
    holds: list[Reason] = []
    for words in (text, *(w for w in also if w)):
        forms = MatchText(words)
        for rule in policy.rules:
            if not rule.matches(forms):
                continue
            reason = Reason(rule=rule.name, action=rule.action, reason=rule.reason)
            if rule.action is RuleAction.BLOCK:
                return RuleVerdict(blocked_by=reason, holds=tuple(holds))
            if rule.action is RuleAction.ALLOW:
                break
            if reason not in holds:
                holds.append(reason)
    return RuleVerdict(blocked_by=None, holds=tuple(holds))


@dataclass(frozen=True, kw_only=True)
class Gate:
    """Who must approve a held post and how many of them.

    Where the policy lists no approvers, the owner confirms: the one approval an author (the
    owner on a one-person account) may give.
    """

    approvers: tuple[str, ...]
    required: int
    expire_after: timedelta


def gate_for(policy: Policy, author: str) -> Gate:
    """The approval gate a post by ``author`` must pass when it is held: as many approvals as the
    policy asks, from its approvers but the author. The loader makes sure a writer's posts can
    have them; a post whose author lost the writer role may have fewer approvers left than the
    policy asks, and then waits (and expires) rather than going out on fewer."""
    if policy.approvals is not None:
        approvers = tuple(a for a in policy.approvals.from_ if a != author)
        return Gate(
            approvers=approvers,
            required=policy.approvals.required,
            expire_after=policy.hold_expires_after,
        )
    return Gate(approvers=(policy.owner,), required=1, expire_after=policy.hold_expires_after)


class Outcome(StrEnum):
    """Where a new post goes."""

    HELD = "held"
    SCHEDULED = "scheduled"
    SUGGESTED = "suggested"


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The engine's decision for one submission or edit."""

    outcome: Outcome
    reasons: tuple[Reason, ...]
    gate: Gate | None
    publish_at: datetime | None


def publish_time(policy: Policy, now: datetime, requested: datetime | None) -> datetime:
    """When a post released now goes out: after the cooling-off delay, never before asked."""
    earliest = now + policy.delay
    return max(earliest, requested) if requested is not None else earliest


def decide(
    policy: Policy,
    *,
    author: str,
    text: str,
    now: datetime,
    requested: datetime | None,
    suggestion: bool,
    seen: Sequence[str | None] = (),
) -> Decision | Reason:
    """Decide a submission: a blocking ``Reason``, or where the post goes next. ``seen``: what
    else a reader sees of the post (its content warning, its media's descriptions), which the
    rules read as they read its text."""
    verdict = check_rules(policy, text, *seen)
    if verdict.blocked_by is not None:
        return verdict.blocked_by
    if suggestion:
        return Decision(outcome=Outcome.SUGGESTED, reasons=verdict.holds, gate=None, publish_at=None)
    if policy.tier is Tier.COSIGNED or verdict.holds:
        return Decision(
            outcome=Outcome.HELD, reasons=verdict.holds, gate=gate_for(policy, author), publish_at=None
        )
    return Decision(
        outcome=Outcome.SCHEDULED,
        reasons=(),
        gate=None,
        publish_at=publish_time(policy, now, requested),
    )


def disclosed_text(
    policy: Policy, *, author: str, text: str, editors: Sequence[str] = (), suggested_by: str | None = None
) -> str:
    """The text as it will appear under ``policy`` (see :func:`gateway.policy.credit.disclosed`)."""
    return disclosed(policy.disclosure, policy.owner, author=author, text=text, editors=editors,
                     suggested_by=suggested_by)


def owner_confirms(policy: Policy) -> bool:
    """Whether held posts are confirmed by the owner because the policy names no approvers: the
    one case where a person may approve words they wrote themselves."""
    return policy.approvals is None


def counts_toward(policy: Policy, user: str, *, author: str, contributed: frozenset[str]) -> bool:
    """Whether ``user``'s approval counts for a post by ``author`` whose current version has the
    words of ``contributed``: an approver under the policy in force who wrote none of them (or
    the owner confirming, where the policy names no approvers)."""
    if user not in gate_for(policy, author).approvers:
        return False
    return owner_confirms(policy) or user not in contributed


class Act(StrEnum):
    """What a person asks to do; checked against their roles and the post."""

    VIEW = "view"
    EDIT = "edit"
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL = "cancel"
    ADOPT = "adopt"
    DISMISS = "dismiss"
    DELETE = "delete"
    RETRY = "retry"
    GATE = "change who may reply to or quote"
    """Set a published post's interaction settings (Bluesky's threadgate and postgate)."""


def may(
    policy: Policy,
    user: str,
    act: Act,
    *,
    author: str,
    approvers: tuple[str, ...],
    suggested: bool = False,
) -> bool:
    """Whether ``user`` may ``act`` on a post by ``author``.

    ``approvers`` is who could approve the post when it was held; an approver must also still
    be one under the policy in force, so removing someone from a policy takes effect at once.
    An author acts on their own post only while they still hold the role they wrote it in
    (writer, or suggester for a ``suggested`` post): a person removed from a policy can no
    longer edit, cancel or retry what they wrote.
    """
    held_by = roles(policy, user)
    if act is Act.VIEW:
        return bool(held_by) or user == author
    writes = user == author and (
        Role.WRITER in held_by or (suggested and Role.SUGGESTER in held_by)
    )
    approves = user in approvers and user in gate_for(policy, author).approvers
    if act is Act.CANCEL:
        return writes
    if act in (Act.APPROVE, Act.REJECT):
        return approves
    if act is Act.EDIT:
        # The owner confirming (no approvers named) edits only where they write: on a managed
        # account they suggest, and words of theirs would go out on their confirmation alone.
        return writes or (approves and (Role.WRITER in held_by or not owner_confirms(policy)))
    if act in (Act.ADOPT, Act.DISMISS):
        return Role.WRITER in held_by
    if act in (Act.DELETE, Act.RETRY):
        return writes or Role.OWNER in held_by
    if act is Act.GATE:
        # Settings, not words: who may reply or quote goes out without approvals on every tier,
        # as it does with the post. Anyone who may post on the account sets it on any of its
        # posts (hiding an abusive reply is the team's, not only the author's); an approver or
        # a suggester posts nothing on their own, so sets nothing.
        return Role.WRITER in held_by or Role.OWNER in held_by
    return False
