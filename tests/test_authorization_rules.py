"""The rules of who may act on a post and whose approvals count, as pure functions.

Each test builds a post's record (what storage gives the services) and a policy from its
YAML text, calls one rule, and checks the exact answer: the return value, or the error's code,
status, message and details that a person sees.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import BylineError, Code
from gateway.policy.engine import Act
from gateway.policy.loader import LoadedPolicy, parse_policy
from gateway.services.authorization import (
    account_cause,
    approvals_that_count,
    authorize,
    check_approvers_left,
    check_no_words,
    check_version,
    contributors_of,
    counted_for,
    disclosure_cause,
    recovery_cause,
    redecision_cause,
    retry_cause,
)
from gateway.services.posts import Caller
from gateway.storage.posts import Given, PostRecord
from gateway.types import AccountName, Micros, PostId, UserName


def loaded(text: str) -> LoadedPolicy:
    """A policy as the loader hands it to the services."""
    policy = parse_policy(textwrap.dedent(text), name="x", expected_account=None)
    return LoadedPolicy(policy=policy, path=Path("x.yaml"), sha256="0" * 64)


# Alice owns the brand; Alice and Carol write; two of Bob, Carol and Dave approve (never the
# author); Erin suggests.
BRAND = loaded("""
    account: brand
    platform: sandbox
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    suggesters: [erin]
    approvals:
      required: 2
      from: [bob, carol, dave]
""")

# The same account after a change that takes Carol off the writers and Erin off the suggesters.
BRAND_AFTER = loaded("""
    account: brand
    platform: sandbox
    tier: co-signed
    owner: alice
    writers: [alice]
    approvals:
      required: 2
      from: [bob, carol, dave]
""")

# Bob's own account: his posts wait ten minutes; nobody else approves.
DELAYED = loaded("""
    account: delayed
    platform: sandbox
    tier: delayed
    owner: bob
    delay: 10m
""")

# Dave's account, run by Bob and Carol; no approvers listed, so Dave (the owner) confirms.
MANAGED = loaded("""
    account: managed
    platform: sandbox
    tier: managed
    owner: dave
    writers: [bob, carol]
""")

# Alice posts herself; with no approvers listed she confirms her own held posts.
DIRECT = loaded("""
    account: direct
    platform: sandbox
    tier: direct
    owner: alice
""")

PARKED = {"rule": "policy_removed", "action": "hold",
          "reason": "The account's policy was removed: nothing goes out until one is in force"}
LOST = {"rule": "author_lost_role", "action": "hold",
        "reason": "The author no longer writes for this account: someone who does decides"}


def row(
    *,
    account: str = "brand",
    author: str = "carol",
    state: str = "held",
    version: int = 3,
    approvers: tuple[str, ...] = ("bob", "dave"),
    required: int = 2,
    editors: tuple[str, ...] = (),
    suggested_by: str | None = None,
    reasons: tuple[dict[str, str], ...] = (),
) -> PostRecord:
    """A post's record; the columns the rules do not read hold placeholders."""
    return PostRecord(
        id=PostId("p1"), account=AccountName(account), author=UserName(author), state=state, version=version,
        approvers=tuple(UserName(a) for a in approvers), required=required,
        editors=tuple(UserName(e) for e in editors),
        suggested_by=None if suggested_by is None else UserName(suggested_by), reasons=reasons,
        text="words", options={}, requested_at=None, publish_at=None, expires_at=None, adopted_from=None,
        adopted_into=None, idempotency_key=None, remote_id=None, remote_url=None, published_text=None,
        attempts=0, last_error=None, lease_until=None, first_attempt_at=None, created_at=Micros(0),
        updated_at=Micros(0),
    )


def refusal(info: pytest.ExceptionInfo[BylineError]) -> tuple[Code, int, str, dict[str, Any]]:
    """What the person refused sees: code, HTTP status, message and details."""
    error = info.value
    return error.code, error.status, error.message, error.details


# authorize


def test_token_bound_to_the_post_account_acts_on_it() -> None:
    """A client-app token bound to the post's account acts for it: the policy in force comes back."""
    assert authorize(BRAND, Caller(user="bob", account="brand"), row(), Act.APPROVE) is BRAND


def test_token_bound_to_another_account_is_refused() -> None:
    """A client-app token bound to another account gets a 403 naming both accounts."""
    with pytest.raises(BylineError) as info:
        authorize(BRAND, Caller(user="bob", account="direct"), row(), Act.APPROVE)
    assert refusal(info) == (Code.FORBIDDEN, 403, "this token acts for direct, not brand", {})


def test_author_learns_no_policy_is_in_force() -> None:
    """With no policy in force, the author hears that the post waits, and for which account."""
    with pytest.raises(BylineError) as info:
        authorize(None, Caller(user="carol"), row(), Act.CANCEL)
    assert refusal(info) == (
        Code.NO_POLICY, 409, "brand has no policy in force: this post waits until one is", {"account": "brand"},
    )


def test_others_see_no_post_while_no_policy_is_in_force() -> None:
    """With no policy in force, anyone but the author (an approver too) is told there is no such post."""
    with pytest.raises(BylineError) as info:
        authorize(None, Caller(user="bob"), row(), Act.APPROVE)
    assert refusal(info) == (Code.NOT_FOUND, 404, "no post p1", {})


def test_stranger_sees_no_post() -> None:
    """Someone with no role on the account is told there is no such post, not that it is forbidden."""
    with pytest.raises(BylineError) as info:
        authorize(BRAND, Caller(user="mallory"), row(), Act.VIEW)
    assert refusal(info) == (Code.NOT_FOUND, 404, "no post p1", {})


def test_state_is_told_before_the_right() -> None:
    """Someone who may see a post learns first that its state rules the action out (409, not 403)."""
    with pytest.raises(BylineError) as info:
        authorize(BRAND, Caller(user="alice"), row(state="published"), Act.APPROVE)
    assert refusal(info) == (
        Code.INVALID_TRANSITION, 409, "cannot approve a post that is published",
        {"state": "published", "allowed": ["delete"]},
    )


def test_owner_who_is_no_approver_may_not_approve() -> None:
    """The owner sees a held post but, not being an approver, gets a 403 naming the action."""
    with pytest.raises(BylineError) as info:
        authorize(BRAND, Caller(user="alice"), row(), Act.APPROVE)
    assert refusal(info) == (Code.FORBIDDEN, 403, "alice may not approve this post", {"action": "approve"})


def test_suggester_edits_their_suggestion() -> None:
    """A suggester may edit their own suggestion, the suggested state granting the right."""
    assert authorize(BRAND, Caller(user="erin"), row(author="erin", state="suggested", approvers=()), Act.EDIT) is BRAND


# check_version


def test_decision_without_version_is_asked_for_it() -> None:
    """An approval that names no version gets a 428 showing both ways to name the current one."""
    with pytest.raises(BylineError) as info:
        check_version(row(version=3), None)
    assert refusal(info) == (
        Code.VERSION_REQUIRED, 428,
        'name the version you decide on: {"version": 3} in the body, or If-Match: "3"', {"version": 3},
    )


def test_decision_on_an_old_version_is_stale() -> None:
    """An approval of an earlier version gets a 409 naming both versions and the current one."""
    with pytest.raises(BylineError) as info:
        check_version(row(version=3), 2)
    assert refusal(info) == (
        Code.STALE_VERSION, 409,
        "you decided on version 2, but the post is at version 3: read it again before you decide",
        {"version": 3},
    )


def test_decision_on_the_current_version_stands() -> None:
    """An approval of the current version is accepted and returns that version."""
    assert check_version(row(version=3), 3) == 3


# check_no_words


def test_editor_may_not_approve_their_own_words() -> None:
    """An approver who edited the post is refused with a 403 that says another approver must."""
    with pytest.raises(BylineError) as info:
        check_no_words(BRAND, Caller(user="bob"), row(editors=("bob",)))
    assert refusal(info) == (
        Code.FORBIDDEN, 403, "bob put words into this post and may not approve it: another approver must",
        {"action": "approve"},
    )


def test_suggester_of_an_adopted_post_may_not_approve_it() -> None:
    """The person whose suggestion became the post counts as having written it."""
    with pytest.raises(BylineError):
        check_no_words(BRAND, Caller(user="dave"), row(suggested_by="dave"))


def test_approver_who_wrote_nothing_may_approve() -> None:
    """An approver who wrote none of the post passes the check."""
    assert check_no_words(BRAND, Caller(user="dave"), row(editors=("bob",))) is None


def test_owner_confirms_own_words_where_no_approvers_are_named() -> None:
    """On an account with no approvers, the owner confirms a held post they wrote."""
    assert check_no_words(DIRECT, Caller(user="alice"), row(account="direct", author="alice")) is None


# contributors_of


def test_contributors_are_author_editors_and_suggester() -> None:
    """Everyone who put words in: the author, each editor once, and the suggester of an adopted post."""
    got = contributors_of(row(author="carol", editors=("bob", "carol", "bob"), suggested_by="erin"))
    assert got == frozenset({"carol", "bob", "erin"})


def test_contributors_without_suggester() -> None:
    """A post that was never a suggestion has only its author and editors as contributors."""
    assert contributors_of(row(author="carol", editors=("dave",))) == frozenset({"carol", "dave"})


# approvals_that_count


def test_only_approvals_by_approvers_who_wrote_nothing_count() -> None:
    """An editor's approval and a non-approver's add nothing: one approval counts."""
    got = approvals_that_count(BRAND, row(editors=("bob",)), given("bob", "dave", "alice", "mallory"))
    assert got == 1


def test_approval_by_someone_not_listed_on_the_post_does_not_count() -> None:
    """An approver under the policy who was not among the post's approvers when it was held adds nothing."""
    assert approvals_that_count(BRAND, row(approvers=("bob",)), given("dave")) == 0


def test_approvals_of_listed_approvers_count() -> None:
    """Two approvers on the post who wrote none of it make two approvals."""
    assert approvals_that_count(BRAND, row(), given("dave", "bob")) == 2


def test_owner_confirmation_counts_where_no_approvers_are_named() -> None:
    """On an account with no approvers, the owner's confirmation of their own post counts."""
    confirmed = row(account="direct", author="alice", approvers=("alice",))
    assert approvals_that_count(DIRECT, confirmed, given("alice")) == 1


def test_only_approvals_of_the_text_that_goes_out_count_for_it() -> None:
    """Of bob's approval of the text before the line changed and dave's of the text now, only
    dave's counts for the text now; one given before approvals kept their text counts too."""
    assert counted_for(BRAND, row(), for_text({"bob": OLD_TEXT, "dave": NEW_TEXT}), NEW_TEXT) == ("dave",)
    assert counted_for(BRAND, row(), for_text({"bob": None, "dave": OLD_TEXT}), NEW_TEXT) == ("bob",)


def given(*names: str) -> dict[str, Given]:
    """Approvals by ``names`` given before approvals kept their text or account: they count for any."""
    return dict.fromkeys(names, Given(None, None))


def for_text(approved: dict[str, str | None]) -> dict[str, Given]:
    """Approvals given for these texts (their hashes), for no account kept."""
    return {a: Given(text, None) for a, text in approved.items()}


# check_approvers_left


def test_approver_edit_that_strands_the_post_is_refused() -> None:
    """An approver's edit that leaves fewer approvers than needed gets a 409 naming who is left."""
    with pytest.raises(BylineError) as info:
        check_approvers_left(BRAND, Caller(user="bob"), row(required=2))
    assert refusal(info) == (
        Code.NO_APPROVERS_LEFT, 409,
        "if bob edits this post, 1 of its approvers wrote none of it and it needs 2: "
        "suggest the change to carol instead",
        {"needed": 2, "left": ["dave"]},
    )


def test_earlier_editors_are_not_left_to_approve() -> None:
    """Approvers who already edited the post are not counted as left: none are, and it says so."""
    with pytest.raises(BylineError) as info:
        check_approvers_left(BRAND, Caller(user="bob"), row(required=1, editors=("dave",)))
    assert info.value.details == {"needed": 1, "left": []}


def test_approver_edit_that_leaves_enough_is_allowed() -> None:
    """An approver's edit that still leaves as many approvers as needed passes."""
    assert check_approvers_left(BRAND, Caller(user="bob"), row(required=1)) is None


def test_author_edits_however_few_approvers_are_left() -> None:
    """The author's own edit is never refused for want of approvers, even when too few are left."""
    assert check_approvers_left(BRAND, Caller(user="carol"), row(required=2, editors=("bob",))) is None


def test_edit_of_a_post_needing_no_approvals_is_allowed() -> None:
    """An approver's edit of a post that needs no approvals (it was scheduled at once) passes."""
    scheduled = row(state="scheduled", required=0, editors=("dave",))
    assert check_approvers_left(BRAND, Caller(user="bob"), scheduled) is None


def test_owner_confirming_may_edit() -> None:
    """Where the owner confirms (no approvers named), their edit never strands the post."""
    got = check_approvers_left(MANAGED, Caller(user="dave"), row(account="managed", author="bob", required=1))
    assert got is None


# redecision_cause


@pytest.mark.parametrize("state", ["held", "scheduled"])
def test_removed_policy_parks_waiting_posts(state: str) -> None:
    """When the policy goes, a held or scheduled post is held with the reason policy_removed."""
    assert redecision_cause(None, row(state=state, required=0), frozenset({"alice", "carol"})) == PARKED


def test_removed_policy_parks_a_post_once() -> None:
    """A post already parked by an earlier removal is not parked again."""
    assert redecision_cause(None, row(reasons=(PARKED,)), None) is None


def test_removed_policy_leaves_suggestions_alone() -> None:
    """A suggestion waits as it is when the policy goes: nothing would publish it."""
    assert redecision_cause(None, row(author="erin", state="suggested", approvers=()), None) is None


def test_restored_policy_decides_parked_posts_again() -> None:
    """A parked post whose author still writes is decided again when a policy comes back."""
    got = redecision_cause(BRAND, row(reasons=(PARKED,)), None)
    assert got == {"rule": "policy_restored", "action": "hold",
                   "reason": "The account's policy was removed and is back: decide this post under it"}


def test_author_taken_off_the_writers_loses_the_post() -> None:
    """A change that takes the author off the writers holds their post for someone who still writes."""
    assert redecision_cause(BRAND_AFTER, row(), frozenset({"alice", "carol"})) == LOST


def test_restored_policy_without_the_author() -> None:
    """A policy that comes back without the author holds the parked post as theirs lost, not restored."""
    assert redecision_cause(BRAND_AFTER, row(reasons=(PARKED,)), None) == LOST


def test_author_who_was_no_writer_before_is_not_taken_off_again() -> None:
    """A change that leaves an author off the writers, as they were before it, is no cause by itself."""
    assert redecision_cause(BRAND_AFTER, row(), frozenset({"alice"})) is None


def test_held_post_of_a_writer_stays_as_it_is() -> None:
    """A held post whose author still writes needs nothing new from a change of a co-signed policy."""
    assert redecision_cause(BRAND, row(required=2), frozenset({"alice", "carol"})) is None


def test_post_scheduled_without_approvals_is_held_when_the_account_turns_cosigned() -> None:
    """A post scheduled with no approvals is held for them once the account is co-signed."""
    got = redecision_cause(BRAND, row(state="scheduled", required=0), frozenset({"alice", "carol"}))
    assert got == {"rule": "policy_changed", "action": "hold",
                   "reason": "The account's policy now asks for approvals this post has not had"}


def test_post_scheduled_with_as_many_approvals_as_asked_stays_scheduled() -> None:
    """A post scheduled after the approvals its co-signed policy asks for is not held again."""
    assert redecision_cause(BRAND, row(state="scheduled", required=2), frozenset({"alice", "carol"})) is None


@pytest.mark.parametrize("state", ["scheduled", "held"])
def test_post_gated_for_fewer_approvals_than_the_policy_now_asks_is_held_again(state: str) -> None:
    """A post scheduled after one approval, or held for one, when the co-signed policy now asks
    for two: decided again, for two (the policy in force counts, not the one it was held under)."""
    got = redecision_cause(BRAND, row(state=state, required=1), frozenset({"alice", "carol"}))
    assert got is not None and got["rule"] == "policy_changed"


def test_post_scheduled_without_approvals_stays_scheduled_on_an_account_that_needs_none() -> None:
    """A post scheduled with no approvals stays so while the account asks for none."""
    got = redecision_cause(DELAYED, row(account="delayed", author="bob", state="scheduled", required=0), None)
    assert got is None


def test_suggestion_of_someone_who_still_suggests_stays() -> None:
    """A suggestion whose author still suggests for the account needs no new decision."""
    assert redecision_cause(BRAND, row(author="erin", state="suggested", approvers=()), None) is None


def test_suggestion_of_a_writer_stays() -> None:
    """A suggestion by someone who now writes for the account needs no new decision."""
    assert redecision_cause(BRAND, row(author="carol", state="suggested", approvers=()), None) is None


def test_suggestion_of_someone_who_lost_the_role_is_marked() -> None:
    """A suggestion whose author no longer suggests or writes is marked author_lost_role."""
    got = redecision_cause(BRAND_AFTER, row(author="erin", state="suggested", approvers=()), frozenset({"alice"}))
    assert got == LOST


def test_suggestion_marked_once() -> None:
    """A suggestion already marked author_lost_role is not marked again."""
    suggestion = row(author="erin", state="suggested", approvers=(), reasons=(LOST,))
    assert redecision_cause(BRAND_AFTER, suggestion, frozenset({"alice"})) is None


# A direct account whose hold rule sends a post to Bob or Carol; and after a change that takes
# Bob off the approvers.
DESK = loaded("""
    account: desk
    platform: sandbox
    tier: direct
    owner: alice
    approvals:
      required: 1
      from: [bob, carol]
    rules:
      - {name: news, action: hold, any_words: [fired], reason: Check it}
""")
DESK_AFTER = loaded("""
    account: desk
    platform: sandbox
    tier: direct
    owner: alice
    approvals:
      required: 1
      from: [carol]
    rules:
      - {name: news, action: hold, any_words: [fired], reason: Check it}
""")
def desk_post(*, state: str = "scheduled", required: int = 1) -> PostRecord:
    """Alice's post on the desk, held by its rule for Bob or Carol (``required``: 0, never held)."""
    return row(account="desk", author="alice", state=state, approvers=("bob", "carol"), required=required)


def test_a_direct_post_released_by_an_approver_taken_off_is_held_again() -> None:
    """Released by Bob, who the policy no longer names: held again at the change, at a retry and
    at a recovered claim; released by Carol, who it still names, it goes out."""
    assert redecision_cause(DESK_AFTER, desk_post(), frozenset({"alice"}), given("bob")) == CHANGED
    assert retry_cause(DESK_AFTER, desk_post(), given("bob")) == CHANGED
    assert recovery_cause(DESK_AFTER, desk_post(state="publishing"), given("bob")) == CHANGED
    assert redecision_cause(DESK_AFTER, desk_post(), frozenset({"alice"}), given("carol")) is None
    assert recovery_cause(DESK_AFTER, desk_post(state="publishing"), given("carol")) is None
    assert redecision_cause(DESK, desk_post(), frozenset({"alice"}), given("bob")) is None


def test_a_direct_post_never_held_needs_no_release() -> None:
    """A post the rules let straight out was released by no one: no approval is asked of it."""
    assert redecision_cause(DESK_AFTER, desk_post(required=0), frozenset({"alice"}), given()) is None
    assert recovery_cause(DESK_AFTER, desk_post(state="publishing", required=0), given()) is None


def test_an_owners_own_confirmation_still_counts_where_the_policy_names_no_approvers() -> None:
    """Alice confirms her own held post on her direct account, which names no approvers: the
    one release an author may give, and it still counts while the policy names none."""
    confirmed = row(account="direct", author="alice", state="scheduled", approvers=("alice",), required=1)
    assert redecision_cause(DIRECT, confirmed, frozenset({"alice"}), given("alice")) is None
    assert retry_cause(DIRECT, confirmed, given("alice")) is None


# retry_cause


def test_retried_post_lacking_approvals_the_co_signed_policy_counts_is_held_again() -> None:
    """A failed post put back on an account now co-signed, approved by one approver of the two
    its policy asks for, is decided again: the approvals it has are counted under the policy now."""
    got = retry_cause(BRAND, row(state="scheduled", required=2), given("bob"))
    assert got == {"rule": "policy_changed", "action": "hold",
                   "reason": "The account's policy now asks for approvals this post has not had"}


def test_retried_post_with_the_approvals_it_needs_goes_out() -> None:
    """A failed post put back with two counting approvals of its version needs no new decision."""
    assert retry_cause(BRAND, row(state="scheduled", required=2), given("bob", "dave")) is None


def test_retried_post_whose_author_lost_the_role_is_held_for_someone_who_writes() -> None:
    """A failed post put back after a change took its author off the writers is held for that."""
    assert retry_cause(BRAND_AFTER, row(state="scheduled", required=2), given("bob", "dave")) == LOST


def test_retried_post_already_decided_again_is_not_held_again_for_its_author() -> None:
    """A post that people with a role decided again after its author lost theirs may go out."""
    decided = row(state="scheduled", required=2, reasons=(LOST,))
    assert retry_cause(BRAND_AFTER, decided, given("bob", "dave")) is None


def test_retried_post_decided_again_still_needs_the_approvals_asked_now() -> None:
    """Being decided again once after the author lost their role does not excuse a post from
    the approvals the co-signed policy now asks for."""
    decided = row(state="scheduled", required=1, reasons=(LOST,))
    got = retry_cause(BRAND_AFTER, decided, given("bob"))
    assert got is not None and got["rule"] == "policy_changed"


def test_retried_post_decided_again_is_held_for_approvals_that_do_not_count_now() -> None:
    """A post decided again after its author lost their role, held for as many approvals as the
    policy asks but approved by fewer of its approvers, is held again at its retry."""
    decided = row(state="scheduled", required=2, reasons=(LOST,))
    got = retry_cause(BRAND_AFTER, decided, given("bob"))
    assert got is not None and got["rule"] == "policy_changed"


# recovery_cause

CHANGED = {"rule": "policy_changed", "action": "hold",
           "reason": "The account's policy now asks for approvals this post has not had"}


def test_recovered_claim_with_what_the_policy_asks_now_may_go_out() -> None:
    """A post claimed before its publisher died, held for two and approved by two of the
    approvers named now, by an author who still writes: nothing stops it."""
    assert recovery_cause(BRAND, row(state="publishing", required=2), given("bob", "dave")) is None


def test_recovered_claim_held_for_fewer_approvals_than_asked_now_is_held() -> None:
    """Held for one where the policy now asks two: held again, though it had two approvals."""
    assert recovery_cause(BRAND, row(state="publishing", required=1), given("bob", "dave")) == CHANGED


def test_recovered_claim_lacking_approvals_that_count_now_is_held() -> None:
    """Approved by someone the policy no longer names (erin): that approval does not count."""
    assert recovery_cause(BRAND, row(state="publishing", required=2), given("bob", "erin")) == CHANGED


def test_recovered_claim_whose_author_lost_the_role_is_held_unless_decided_again() -> None:
    """Carol no longer writes: held for someone who does, unless people with a role decided it
    again already after she lost it (and it has the approvals asked)."""
    assert recovery_cause(BRAND_AFTER, row(state="publishing", required=2), given("bob", "dave")) == LOST
    decided = row(state="publishing", required=2, reasons=(LOST,))
    assert recovery_cause(BRAND_AFTER, decided, given("bob", "dave")) is None
    assert recovery_cause(BRAND_AFTER, decided, given("bob")) == CHANGED


def test_recovered_claim_on_an_account_not_co_signed_needs_only_a_writing_author() -> None:
    """On a direct account no approvals are asked; an author off the writers is still held."""
    assert recovery_cause(DIRECT, row(account="direct", author="alice", state="publishing", required=0), {}) is None
    assert recovery_cause(DIRECT, row(account="direct", author="carol", state="publishing", required=0), {}) == LOST


def test_recovered_announcement_answers_to_no_role() -> None:
    """The policy file's own announcement is authorised by the version it announces."""
    assert recovery_cause(BRAND_AFTER, row(author="policy-file", state="publishing", required=0), given()) is None


# disclosure_cause: an approval counts for the text it was given for

LINE = {"rule": "disclosure_changed", "action": "hold",
        "reason": "The account's disclosure line changed since this post was approved"}
OLD_TEXT, NEW_TEXT = "a" * 64, "b" * 64
"""The hashes of the text a post went out with under the line before, and under the line now."""


def test_approvals_given_for_the_text_before_the_line_changed_hold_a_released_post_on_every_path() -> None:
    """Approved by bob and dave for the words with the old line, the post would now go out with
    another: held again at the policy's reload, its claim, its retry and a recovered claim."""
    approved = for_text({"bob": OLD_TEXT, "dave": OLD_TEXT})
    post = row(state="scheduled", required=2)
    assert redecision_cause(BRAND, post, frozenset({"alice", "carol"}), approved, sends=NEW_TEXT) == LINE
    assert disclosure_cause(BRAND, post, approved, sends=NEW_TEXT) == LINE
    assert retry_cause(BRAND, post, approved, sends=NEW_TEXT) == LINE
    assert recovery_cause(BRAND, row(state="publishing", required=2), approved, sends=NEW_TEXT) == LINE


def test_approvals_of_the_text_that_goes_out_let_it_out() -> None:
    """The same text (the owner's own words, which carry no line either way), or enough
    approvals given for the new one beside an old one: nothing to decide again. Approvals given
    before approvals kept their text (None) count as they did."""
    post = row(state="scheduled", required=2)
    assert disclosure_cause(BRAND, post, for_text({"bob": NEW_TEXT, "dave": NEW_TEXT}), sends=NEW_TEXT) is None
    assert disclosure_cause(BRAND, post, for_text({"bob": NEW_TEXT, "dave": NEW_TEXT, "carol": OLD_TEXT}),
                            sends=NEW_TEXT) is None
    assert disclosure_cause(BRAND, post, for_text({"bob": None, "dave": None}), sends=NEW_TEXT) is None
    assert disclosure_cause(BRAND, post, for_text({"bob": NEW_TEXT, "dave": OLD_TEXT}), sends=NEW_TEXT) == LINE


def test_a_held_post_with_an_approval_of_other_words_is_asked_again() -> None:
    """Held for two, one approval given under the old line: held anew (a new version), so that
    bob may approve the words that go out now; with none given, it waits as it is."""
    held = row(state="held", required=2)
    old = for_text({"bob": OLD_TEXT})
    assert redecision_cause(BRAND, held, frozenset({"alice", "carol"}), old, sends=NEW_TEXT) == LINE
    assert redecision_cause(BRAND, held, frozenset({"alice", "carol"}), {}, sends=NEW_TEXT) is None


def test_the_announcement_and_approvals_of_no_known_text_are_not_compared() -> None:
    """The policy file's announcement answers to no approval; approvals given before approvals
    kept their text (no text known) cannot be compared, and the other causes decide."""
    announcement = row(author="policy-file", state="scheduled", required=0)
    assert disclosure_cause(BRAND, announcement, for_text({"bob": OLD_TEXT}), sends=NEW_TEXT) is None
    assert retry_cause(BRAND, row(state="scheduled", required=2), given("bob", "dave"), sends=NEW_TEXT) is None


# account_cause: an approval counts for the platform account it was given for

MOVED = {"rule": "account_changed", "action": "hold",
         "reason": "The account's policy now publishes as another platform account than the one this "
                   "post was written and approved for: decide it again"}


def test_approvals_given_for_another_platform_account_count_for_none_and_hold_the_post_on_every_path() -> None:
    """Bob and dave approved while the policy spoke as @brand on a Mastodon server; it speaks
    as another account now (here the sandbox's): neither counts, and the post is held again at
    the reload, its claim, its retry and a recovered claim. Approvals given for the account it
    speaks as, or before approvals kept one, count as before."""
    brand = Given(None, "https://mastodon.example @brand")
    elsewhere, post = {"bob": brand, "dave": brand}, row(state="scheduled", required=2)
    assert counted_for(BRAND, post, elsewhere, NEW_TEXT) == ()
    assert account_cause(BRAND, post, elsewhere) == MOVED
    assert redecision_cause(BRAND, post, frozenset({"alice", "carol"}), elsewhere) == MOVED
    assert retry_cause(BRAND, post, elsewhere, sends=NEW_TEXT) == MOVED
    assert recovery_cause(BRAND, row(state="publishing", required=2), elsewhere) == MOVED
    assert account_cause(BRAND, row(state="held", required=2), {"bob": brand}) == MOVED
    here = {"bob": Given(None, ""), "dave": Given(None, None), "carol": brand}
    assert counted_for(BRAND, post, here, NEW_TEXT) == ("bob", "dave")
    assert account_cause(BRAND, post, here) is None
