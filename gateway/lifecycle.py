"""Post states and the transitions between them: pure, no I/O.

Every service that changes a post asks ``transition`` first; the storage then applies the
change with a compare-and-set on the old state, so two racing callers cannot both win.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.errors import BylineError, Code


class State(StrEnum):
    """Where a post is in its life."""

    HELD = "held"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    SUGGESTED = "suggested"
    ADOPTED = "adopted"
    DISMISSED = "dismissed"
    DELETED = "deleted"
    APPLIED = "applied"
    """A pending revision made on the published post it revises: its words are that post's now."""


class Action(StrEnum):
    """Something that can happen to a post."""

    EDIT = "edit"
    APPROVE = "approve"  # an approval that does not yet reach the required count
    RELEASE = "release"  # the approval that reaches it: the post is scheduled
    REHOLD = "rehold"  # an edit of a scheduled post that a rule now holds
    REJECT = "reject"
    CANCEL = "cancel"
    EXPIRE = "expire"
    CLAIM = "claim"  # the publisher takes a due post
    PUBLISHED = "published"
    DEFER = "defer"  # the platform asked us to come back later
    FAIL = "fail"
    RETRY = "retry"
    ADOPT = "adopt"
    DISMISS = "dismiss"
    DELETE = "delete"
    REDECIDE = "redecide"  # the account's policy changed or went away: decided again under it
    APPLY = "apply"  # a pending revision made on its published post, which records it as its revision


TERMINAL = frozenset(
    {State.CANCELLED, State.REJECTED, State.EXPIRED, State.ADOPTED, State.DISMISSED, State.DELETED, State.APPLIED}
)

_TABLE: dict[tuple[State, Action], State] = {
    (State.HELD, Action.EDIT): State.HELD,
    (State.HELD, Action.APPROVE): State.HELD,
    (State.HELD, Action.RELEASE): State.SCHEDULED,
    (State.HELD, Action.REJECT): State.REJECTED,
    (State.HELD, Action.CANCEL): State.CANCELLED,
    (State.HELD, Action.EXPIRE): State.EXPIRED,
    (State.SCHEDULED, Action.EDIT): State.SCHEDULED,
    (State.SCHEDULED, Action.REHOLD): State.HELD,
    (State.SCHEDULED, Action.CANCEL): State.CANCELLED,
    (State.SCHEDULED, Action.CLAIM): State.PUBLISHING,
    # A reply whose parent ended without going out fails where it waits: it must not go out alone.
    (State.SCHEDULED, Action.FAIL): State.FAILED,
    (State.PUBLISHING, Action.PUBLISHED): State.PUBLISHED,
    (State.PUBLISHING, Action.DEFER): State.SCHEDULED,
    (State.PUBLISHING, Action.FAIL): State.FAILED,
    (State.PUBLISHING, Action.APPLY): State.APPLIED,
    # A publish that died with its lease is claimed again by the recovery path.
    (State.PUBLISHING, Action.CLAIM): State.PUBLISHING,
    (State.FAILED, Action.RETRY): State.SCHEDULED,
    (State.FAILED, Action.CANCEL): State.CANCELLED,
    (State.SUGGESTED, Action.EDIT): State.SUGGESTED,
    (State.SUGGESTED, Action.ADOPT): State.ADOPTED,
    (State.SUGGESTED, Action.DISMISS): State.DISMISSED,
    (State.SUGGESTED, Action.CANCEL): State.CANCELLED,
    (State.PUBLISHED, Action.DELETE): State.DELETED,
    (State.HELD, Action.REDECIDE): State.HELD,
    (State.SCHEDULED, Action.REDECIDE): State.HELD,
    (State.SUGGESTED, Action.REDECIDE): State.SUGGESTED,
    # A claim recovered after a policy change that would not let it go out, and not found on
    # its platform: held for a decision under the policy in force, never sent.
    (State.PUBLISHING, Action.REDECIDE): State.HELD,
}


REQUESTED: frozenset[Action] = frozenset({
    Action.EDIT, Action.APPROVE, Action.REJECT, Action.CANCEL, Action.ADOPT, Action.DISMISS,
    Action.DELETE, Action.RETRY,
})
"""The actions a caller asks for over the API. The others happen to a post: the publisher
claims, publishes, defers and fails it, the clock expires it, a policy change decides it again,
and the approval that completes the count releases it (the caller asked to approve)."""

_AS_ASKED: dict[Action, Action] = {Action.RELEASE: Action.APPROVE}


def allowed(state: State, action: Action) -> bool:
    """Whether ``action`` may happen to a post in ``state``."""
    return (state, action) in _TABLE


def transition(state: State, action: Action) -> State:
    """The state after ``action``, or a 409 naming what the post's state allows."""
    try:
        return _TABLE[(state, action)]
    except KeyError:
        # A caller is offered what it can ask for, named as it asks for it.
        asked_for = {_AS_ASKED.get(a, a) for (s, a) in _TABLE if s is state}
        possible = sorted(a.value for a in asked_for if a in REQUESTED)
        asked = _AS_ASKED.get(action, action)
        raise BylineError(
            Code.INVALID_TRANSITION,
            f"cannot {asked.value} a post that is {state.value}",
            state=state.value,
            allowed=possible,
        ) from None


def states_allowing(action: Action) -> frozenset[State]:
    """Every state from which ``action`` is possible."""
    return frozenset(s for (s, a) in _TABLE if a is action)
