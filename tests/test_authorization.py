"""The authorization matrix: every role × every action × every tier.

The expected answers are written out from the product's rules, not computed by the code
under test: writers author; suggesters suggest; only the author cancels; approvers (never the
author, except the owner confirming on an account with no approvers) approve, reject and
edit held posts; writers adopt and dismiss suggestions (on any tier that lists suggesters); the
author or owner deletes and
retries; anyone who may post on the account (a writer, the owner) sets who may reply to or
quote a published post; a stranger gets nothing.
"""

from __future__ import annotations

import itertools
import textwrap

import pytest

from gateway.policy.engine import Act, Role, may, roles
from gateway.policy.loader import parse_policy
from gateway.policy.models import Policy
from tests.conftest import TEST_POLICIES as POLICIES

TIERS = {name: parse_policy(textwrap.dedent(text), name=name, expected_account=name) for name, text in POLICIES.items()}

# Who each person is, per tier, in the test policies.
EXPECTED_ROLES = {
    "direct": {"alice": {"owner", "writer"}, "bob": set(), "carol": set(), "dave": set(), "erin": set()},
    "delayed": {"alice": set(), "bob": {"owner", "writer"}, "carol": set(), "dave": set(), "erin": set()},
    "cosigned": {"alice": {"owner", "writer"}, "bob": {"approver"}, "carol": {"writer", "approver"},
                 "dave": {"approver"}, "erin": set()},
    "managed": {"alice": set(), "bob": {"writer"}, "carol": {"writer"}, "dave": {"owner", "suggester"},
                "erin": set()},
}

# The author of the post acted on, per tier, and who may approve it when held.
AUTHOR = {"direct": "alice", "delayed": "bob", "cosigned": "carol", "managed": "dave"}
APPROVERS = {"direct": ("alice",), "delayed": ("bob",), "cosigned": ("bob", "dave"), "managed": ("dave",)}

EXPECTED_MAY: dict[str, dict[str, set[str]]] = {
    "direct": {
        "view": {"alice"}, "edit": {"alice"}, "approve": {"alice"}, "reject": {"alice"},
        "cancel": {"alice"}, "adopt": {"alice"}, "dismiss": {"alice"}, "delete": {"alice"},
        "retry": {"alice"},
    },
    "delayed": {
        "view": {"bob"}, "edit": {"bob"}, "approve": {"bob"}, "reject": {"bob"}, "cancel": {"bob"},
        "adopt": {"bob"}, "dismiss": {"bob"}, "delete": {"bob"}, "retry": {"bob"},
    },
    "cosigned": {
        "view": {"alice", "bob", "carol", "dave"}, "edit": {"carol", "bob", "dave"},
        "approve": {"bob", "dave"}, "reject": {"bob", "dave"}, "cancel": {"carol"},
        "adopt": {"alice", "carol"}, "dismiss": {"alice", "carol"},
        "delete": {"carol", "alice"}, "retry": {"carol", "alice"},
    },
    "managed": {
        # dave's suggestion: he is its author, so he may view, edit, cancel; the team adopts.
        "view": {"bob", "carol", "dave"}, "edit": {"dave"}, "approve": set(), "reject": set(),
        "cancel": {"dave"}, "adopt": {"bob", "carol"}, "dismiss": {"bob", "carol"},
        "delete": {"dave"}, "retry": {"dave"},
    },
}

# Who may reply to or quote a published post: settings, not words, set by whoever may post on
# the account, whoever wrote the post (on a managed account, its owner too, who only suggests).
GATE = Act.GATE.value
EXPECTED_MAY["direct"][GATE] = {"alice"}
EXPECTED_MAY["delayed"][GATE] = {"bob"}
EXPECTED_MAY["cosigned"][GATE] = {"alice", "carol"}
EXPECTED_MAY["managed"][GATE] = {"bob", "carol", "dave"}

USERS = ["alice", "bob", "carol", "dave", "erin"]


@pytest.mark.parametrize(("tier", "user"), list(itertools.product(TIERS, USERS)))
def test_roles(tier: str, user: str) -> None:
    """Each person holds exactly the roles the policy file gives them."""
    assert {r.value for r in roles(TIERS[tier], user)} == EXPECTED_ROLES[tier][user]


@pytest.mark.parametrize(("tier", "act", "user"), list(itertools.product(TIERS, Act, USERS)))
def test_may(tier: str, act: Act, user: str) -> None:
    """Each person may do exactly what the product rules allow on each tier."""
    policy: Policy = TIERS[tier]
    approvers = APPROVERS[tier] if tier != "managed" else ()
    got = may(policy, user, act, author=AUTHOR[tier], approvers=approvers, suggested=tier == "managed")
    assert got is (user in EXPECTED_MAY[tier][act.value])


@pytest.mark.parametrize(("tier", "user"), list(itertools.product(TIERS, USERS)))
def test_submission_rights(tier: str, user: str) -> None:
    """Writers post, suggesters suggest, everyone else is refused."""
    held = roles(TIERS[tier], user)
    expected = "write" if Role.WRITER in held else "suggest" if Role.SUGGESTER in held else None
    want = {
        "direct": {"alice": "write"}, "delayed": {"bob": "write"},
        "cosigned": {"alice": "write", "carol": "write"},
        "managed": {"bob": "write", "carol": "write", "dave": "suggest"},
    }[tier].get(user)
    assert expected == want


def test_removed_approver_loses_the_right_at_once() -> None:
    """An approver taken out of the policy can no longer approve posts held before the change."""
    text = textwrap.dedent(POLICIES["cosigned"]).replace("from: [bob, carol, dave]", "from: [carol, dave]")
    text = text.replace("required: 2", "required: 1")
    policy = parse_policy(text, name="cosigned", expected_account="cosigned")
    assert not may(policy, "bob", Act.APPROVE, author="alice", approvers=("bob", "carol", "dave"))
    assert may(policy, "dave", Act.APPROVE, author="alice", approvers=("bob", "carol", "dave"))
