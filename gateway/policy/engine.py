"""The policy engine: who may do what, and what happens to a submitted post. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.policy.models import Policy, RuleAction, Tier


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


def check_rules(policy: Policy, text: str) -> RuleVerdict:
    """Run the rules in order: a block stops at once, an allow ends the chain, holds gather."""
    holds: list[Reason] = []
    for rule in policy.rules:
        if not rule.matches(text):
            continue
        reason = Reason(rule=rule.name, action=rule.action, reason=rule.reason)
        if rule.action is RuleAction.BLOCK:
            return RuleVerdict(blocked_by=reason, holds=tuple(holds))
        if rule.action is RuleAction.ALLOW:
            break
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
    """The approval gate a post by ``author`` must pass when it is held."""
    if policy.approvals is not None:
        approvers = tuple(a for a in policy.approvals.from_ if a != author)
        return Gate(
            approvers=approvers,
            required=min(policy.approvals.required, len(approvers)) or 1,
            expire_after=policy.approvals.expire_after,
        )
    return Gate(approvers=(policy.owner,), required=1, expire_after=timedelta(hours=24))


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
) -> Decision | Reason:
    """Decide a submission: a blocking ``Reason``, or where the post goes next."""
    verdict = check_rules(policy, text)
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


def disclosed_text(policy: Policy, *, author: str, text: str) -> str:
    """The text as it will appear: with the disclosure line when someone else wrote it."""
    if policy.disclosure and author != policy.owner:
        return f"{text}\n\n{policy.disclosure.replace('{author}', author)}"
    return text


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


def may(policy: Policy, user: str, act: Act, *, author: str, approvers: tuple[str, ...]) -> bool:
    """Whether ``user`` may ``act`` on a post by ``author``.

    ``approvers`` is who could approve the post when it was held; an approver must also still
    be one under the policy in force, so removing someone from a policy takes effect at once.
    """
    held_by = roles(policy, user)
    if act is Act.VIEW:
        return bool(held_by) or user == author
    if act is Act.CANCEL:
        return user == author
    if act in (Act.APPROVE, Act.REJECT):
        return user in approvers and user in gate_for(policy, author).approvers
    if act is Act.EDIT:
        return user == author or (user in approvers and user in gate_for(policy, author).approvers)
    if act in (Act.ADOPT, Act.DISMISS):
        return Role.WRITER in held_by
    if act in (Act.DELETE, Act.RETRY):
        return user == author or Role.OWNER in held_by
    return False
