"""The post state machine: every transition allowed, every other refused."""

from __future__ import annotations

import itertools

import pytest

from gateway.errors import BylineError, Code
from gateway.lifecycle import TERMINAL, Action, State, allowed, transition

# The lifecycle as the product describes it, written out independently of the code's table.
EXPECTED = {
    ("held", "edit"): "held",
    ("held", "approve"): "held",
    ("held", "release"): "scheduled",
    ("held", "reject"): "rejected",
    ("held", "cancel"): "cancelled",
    ("held", "expire"): "expired",
    ("scheduled", "edit"): "scheduled",
    ("scheduled", "rehold"): "held",
    ("scheduled", "cancel"): "cancelled",
    ("scheduled", "claim"): "publishing",
    # A reply due whose parent ended without going out fails where it waits, never sent alone.
    ("scheduled", "fail"): "failed",
    ("publishing", "published"): "published",
    ("publishing", "defer"): "scheduled",
    ("publishing", "fail"): "failed",
    ("publishing", "claim"): "publishing",
    # A pending revision made on the published post it revises.
    ("publishing", "apply"): "applied",
    ("failed", "retry"): "scheduled",
    ("failed", "cancel"): "cancelled",
    ("suggested", "edit"): "suggested",
    ("suggested", "adopt"): "adopted",
    ("suggested", "dismiss"): "dismissed",
    ("suggested", "cancel"): "cancelled",
    ("published", "delete"): "deleted",
    # A policy change or removal decides pending posts again: they are held, or a suggestion
    # stays one.
    ("held", "redecide"): "held",
    ("scheduled", "redecide"): "held",
    ("suggested", "redecide"): "suggested",
    ("publishing", "redecide"): "held",  # a recovered claim the policy in force holds, unsent
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(State, Action)))
def test_every_pair(state: State, action: Action) -> None:
    """Each (state, action) pair is allowed exactly when the product says so, to the right state."""
    expected = EXPECTED.get((state.value, action.value))
    if expected is None:
        assert not allowed(state, action)
        with pytest.raises(BylineError) as info:
            transition(state, action)
        assert info.value.code is Code.INVALID_TRANSITION
        assert info.value.status == 409
        assert state.value in info.value.message
    else:
        assert allowed(state, action)
        assert transition(state, action).value == expected


def test_terminal_states_allow_nothing() -> None:
    """Cancelled, rejected, expired, adopted, dismissed, deleted and applied posts never change again."""
    assert {s.value for s in TERMINAL} == {"cancelled", "rejected", "expired", "adopted", "dismissed", "deleted",
                                           "applied"}
    for state in TERMINAL:
        assert not any(allowed(state, action) for action in Action)


def test_refusal_names_the_allowed_actions() -> None:
    """A refused transition tells the client what the post's state does allow."""
    with pytest.raises(BylineError) as info:
        transition(State.PUBLISHED, Action.CANCEL)
    assert info.value.details["allowed"] == ["delete"]


def test_a_refused_release_is_named_as_the_approval_it_was_asked_as() -> None:
    """An approval that would release the post, refused, speaks of approving: the word the
    person used, not the gateway's own name for the step."""
    with pytest.raises(BylineError) as info:
        transition(State.PUBLISHED, Action.RELEASE)
    assert info.value.message == "cannot approve a post that is published"


@pytest.mark.parametrize("action", list(Action))
def test_states_allowing_each_action(action: Action) -> None:
    """The states an action is possible from are exactly those the product allows it from."""
    from gateway.lifecycle import states_allowing

    expected = {state for (state, act) in EXPECTED if act == action.value}
    assert {s.value for s in states_allowing(action)} == expected


def test_cancel_is_possible_from_four_states() -> None:
    """A post can be cancelled while held, scheduled, failed or still a suggestion, and no later."""
    from gateway.lifecycle import states_allowing

    assert states_allowing(Action.CANCEL) == {State.HELD, State.SCHEDULED, State.FAILED, State.SUGGESTED}
