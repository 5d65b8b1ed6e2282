"""The replayed rules catch what a rogue gateway could log, and pass what an honest one does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.audit.gates import CHANGES_PER_HOUR
from gateway.audit.replay import POLICY_GRACE_SECONDS, Fact, Replay
from tests.audit.logtools import byline
from tests.audit.synthetic import SyntheticLog, messages, summary

COSIGNED = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "carol", "dave"],
                   required=2, tier="co-signed")
DIRECT = summary(owner="alice", writers=["alice"])
MANAGED = summary(owner="dave", writers=["bob"], suggesters=["dave"], tier="managed")


def _publish(log: SyntheticLog, post: str, account: str, version: int = 1, text: str | None = None) -> int:
    """A claim sending ``text`` (the post's words as submitted, by default), then its publication."""
    log.add("post.publishing", actor="system", account=account, post=post,
            data={"attempt": 1, "version": version, "text_hash": log.commit(text or log.words.get(post) or "")})
    return log.add("post.published", actor="system", account=account, post=post,
                   data={"remote_id": f"r{post}", "url": f"https://example.social/{post}", "version": version})


def _approve(log: SyntheticLog, post: str, who: str, version: int = 1, state: str = "held") -> int:
    return log.add("post.approved", actor=who, account="brand", post=post,
                   data={"version": version, "count": 1, "required": 2, "state": state})


def _redecide(
    log: SyntheticLog, post: str, account: str, *, version: int, approvers: list[str], required: int,
    sha: str | None, cause: str = "author_lost_role", **recorded: Any,
) -> int:
    """What the gateway records when a policy change holds a pending post for a new decision
    (``recorded``: what else the entry says, its hold's deadline say)."""
    return log.add("post.redecided", actor="policy-file", account=account, post=post, data={
        "cause": cause, "state": "held", "version": version, "approvers": approvers,
        "required": required, "policy_sha256": sha, **recorded,
    })


def test_honest_log_passes(tmp_path: Path) -> None:
    """Writers write, distinct approvers approve the published version, the owner confirms: ok."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.policy("solo", DIRECT, "s1")
    log.policy("team", MANAGED, "m1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    _publish(log, "1", "brand")
    log.submit("2", author="alice", account="solo", state="held", approvers=["alice"], required=1, sha="s1")
    log.add("post.approved", actor="alice", account="solo", post="2",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled"})
    _publish(log, "2", "solo")
    log.submit("3", author="dave", account="team", state="suggested", sha="m1")
    log.submit("4", author="bob", account="team", sha="m1")
    _publish(log, "4", "team")
    report = log.verify(tmp_path / "ok.export")
    assert messages(report) == []
    assert report.ok and report.posts == 4 and report.texts_checked == 7


def test_submission_by_a_non_writer_is_named(tmp_path: Path) -> None:
    """Someone who is not a writer under the policy in force posts: that entry is named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    bad = log.submit("1", author="erin", account="brand", state="held", approvers=["bob"], required=2, sha="p1")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: erin submitted a post to brand but was not a writer under its policy (policy p1)"
    ]


def test_writer_removed_by_a_policy_change_may_no_longer_post(tmp_path: Path) -> None:
    """The policy in force at that point of the log decides, not the first or the last one."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p2", kind="policy.changed")
    _redecide(log, "1", "brand", version=2, approvers=["bob", "carol", "dave"], required=2, sha="p2")
    log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p3", kind="policy.changed")
    bad = log.submit("2", author="carol", account="brand", state="held", approvers=["bob", "dave"],
                     required=2, sha="p3")
    report = log.verify(tmp_path / "x.export")
    assert [f.index for f in report.findings] == [bad]


def test_suggestion_by_a_non_suggester_is_named(tmp_path: Path) -> None:
    """A suggestion needs the suggester role."""
    log = SyntheticLog()
    log.policy("team", MANAGED, "m1")
    bad = log.submit("1", author="erin", account="team", state="suggested", sha="m1")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: erin submitted a post to team but was not a suggester under its policy (policy m1)"
    ]


def test_approval_by_the_author_is_named(tmp_path: Path) -> None:
    """An author approving their own co-signed post is caught, though they are an approver."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave", "carol"],
               required=2, sha="p1")
    bad = _approve(log, "1", "carol")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: carol approved their own post 1"]


def test_approval_by_someone_not_an_approver_is_named(tmp_path: Path) -> None:
    """Only the post's approvers may approve it."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    bad = _approve(log, "1", "erin")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: erin approved post 1 but is not one of its approvers"]


def test_publish_without_enough_approvals_is_named(tmp_path: Path) -> None:
    """A held post needing two approvals that went out with one."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    again = _approve(log, "1", "bob", state="scheduled")  # a rogue gateway calls it released
    bad = _publish(log, "1", "brand")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {again}: bob approved post 1 (version 1) again, for the words they approved before: an approval "
        "counts once",
        f"entry {bad}: post 1 was published (version 1) with 1 of the 2 approvals it needed",
    ]


def test_approvals_of_an_older_version_do_not_count(tmp_path: Path) -> None:
    """After an edit, the approvals of the old text do not let the new text out."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    log.add("post.edited", actor="carol", account="brand", post="1",
            data={"version": 2, "text_hash": log.commit("new words"), "state": "held"})
    _approve(log, "1", "bob", version=2, state="scheduled")  # a rogue gateway calls it released
    bad = _publish(log, "1", "brand", version=2)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: post 1 was published (version 2) with 1 of the 2 approvals it needed"
    ]


def test_an_edit_that_rehold_a_released_post_needs_new_approvals(tmp_path: Path) -> None:
    """A direct post edited into a hold goes back to the owner; publishing it unconfirmed is named."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    log.add("post.edited", actor="alice", account="solo", post="1",
            data={"version": 2, "text_hash": log.commit("scandal"), "state": "held"})
    bad = _publish(log, "1", "solo", version=2)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad - 1}: post.publishing of post 1, which was held: its life does not go that way",
        f"entry {bad}: post 1 was published (version 2) with 0 of the 1 approvals it needed",
    ]


def test_submission_racing_a_policy_reload_is_judged_by_the_policy_it_names(tmp_path: Path) -> None:
    """A post decided just before or after a reload names that policy; an unrecorded one is named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    # Decided on p2, which the gateway records a moment later.
    log.submit("1", author="erin", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p2")
    log.policy("brand", {**COSIGNED, "writers": ["alice", "carol", "erin"]}, "p2", kind="policy.changed")
    # Decided on p2 just before p3 (which drops carol) was recorded: fine under p2.
    log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p3", kind="policy.changed")
    _redecide(log, "1", "brand", version=2, approvers=["bob", "carol", "dave"], required=2, sha="p3")
    log.submit("2", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p2")
    ghost = log.submit("3", author="alice", account="brand", state="held", approvers=["bob", "dave"],
                       required=2, sha="never-recorded")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {ghost}: alice submitted a post to brand under policy never-record, which the log never records"
    ]


def test_posting_after_the_policy_was_removed_is_named(tmp_path: Path) -> None:
    """With its policy file removed, nobody may post to the account."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.add("policy.removed", actor="policy-file", account="solo", data={"previous_sha256": "s1"})
    log.policy("other", DIRECT, "o1")
    bad = log.submit("1", author="alice", account="solo", sha=None)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: alice submitted a post to solo, which had no policy in force"]


# -- voice integrity: forged logs that hide each break, re-signed with the operator's own key ---

PENCIL = summary(owner="bob", writers=["bob", "carol"], tier="delayed")


def _edit(log: SyntheticLog, post: str, who: str, version: int, state: str = "held", sha: str | None = None) -> int:
    return log.add("post.edited", actor=who, account="brand", post=post, data={
        "version": version, "text_hash": log.commit(f"{who}'s words v{version}"), "state": state,
        **({"policy_sha256": sha} if sha else {}),
    })


def test_an_editor_approving_their_own_words_is_named(tmp_path: Path) -> None:
    """Alice writes, carol edits then approves and it goes out: the approval and the publish are named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="alice", account="brand", state="held", approvers=["bob", "carol", "dave"],
               required=2, sha="p1")
    _edit(log, "1", "carol", 2)
    bad = _approve(log, "1", "carol", version=2)
    _approve(log, "1", "bob", version=2, state="scheduled")
    out = _publish(log, "1", "brand", version=2)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: carol approved post 1 (version 2), which has their words",
        f"entry {out}: post 1 was published (version 2) with 1 of the 2 approvals it needed",
    ]


def test_the_suggester_approving_an_adopted_post_is_named(tmp_path: Path) -> None:
    """Dave suggests, bob adopts, dave approves the adopted post: dave's words, dave's approval."""
    log = SyntheticLog()
    cosigned_team = summary(owner="alice", writers=["bob"], approvers=["dave", "erin"], required=1,
                            suggesters=["dave"], tier="co-signed")
    log.policy("brand", cosigned_team, "t1")
    log.submit("1", author="dave", account="brand", state="suggested", sha="t1")
    log.add("post.submitted", actor="bob", account="brand", post="2", data={
        "version": 1, "text_hash": log.commit("adopted"), "state": "held", "approvers": ["dave", "erin"],
        "required": 1, "policy_sha256": "t1", "suggested_by": "dave", "adopted_from": "1",
    })
    bad = _approve(log, "2", "dave", state="scheduled")
    out = _publish(log, "2", "brand")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: dave approved post 2 (version 1), which has their words",
        f"entry {out}: post 2 was published (version 1) with 0 of the 1 approvals it needed",
    ]


def test_an_approval_by_someone_the_policy_dropped_is_named(tmp_path: Path) -> None:
    """Bob is no longer an approver under the policy the approval names: caught."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    log.policy("brand", {**COSIGNED, "approvers": ["carol", "dave", "erin"]}, "p2", kind="policy.changed")
    bad = log.add("post.approved", actor="bob", account="brand", post="1",
                  data={"version": 1, "count": 1, "required": 2, "state": "held", "policy_sha256": "p2"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: bob approved post 1 but is not one of its approvers"]


def test_a_post_outliving_its_authors_role_is_named(tmp_path: Path) -> None:
    """Carol is taken off the writers and her waiting post goes out anyway: the change is named,
    and so are her edit after it and the publish."""
    log = SyntheticLog()
    log.policy("pencil", PENCIL, "d1")
    log.add("post.submitted", actor="carol", account="pencil", post="1", data={
        "version": 1, "text_hash": log.commit("take"), "state": "scheduled", "approvers": [], "required": 0,
        "policy_sha256": "d1",
    })
    change = log.policy("pencil", {**PENCIL, "writers": ["bob"]}, "d2", kind="policy.changed")
    edit = log.add("post.edited", actor="carol", account="pencil", post="1", data={
        "version": 2, "text_hash": log.commit("new take"), "state": "scheduled", "policy_sha256": "d2",
    })
    claim = log.add("post.publishing", actor="system", account="pencil", post="1",
                    data={"attempt": 1, "version": 2, "text_hash": log.commit("new take")})
    log.add("post.published", actor="system", account="pencil", post="1",
            data={"remote_id": "r1", "url": "https://example.social/1", "version": 2})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {edit}: post.edited of post 1, which entry {change} left to be decided again first: "
        "carol no longer writes for pencil",
        f"entry {edit}: carol edited post 1 but no longer writes for pencil",
        f"entry {claim}: post 1 went out though carol no longer writes for pencil",
    ]


def test_a_post_decided_again_after_its_authors_role_went_passes(tmp_path: Path) -> None:
    """The honest sequence: held anew for the owner, confirmed by them, then out."""
    log = SyntheticLog()
    log.policy("pencil", PENCIL, "d1")
    log.add("post.submitted", actor="carol", account="pencil", post="1", data={
        "version": 1, "text_hash": log.commit("take"), "state": "scheduled", "approvers": [], "required": 0,
        "policy_sha256": "d1",
    })
    log.policy("pencil", {**PENCIL, "writers": ["bob"]}, "d2", kind="policy.changed")
    log.add("post.redecided", actor="policy-file", account="pencil", post="1", data={
        "cause": "author_lost_role", "state": "held", "version": 2, "approvers": ["bob"], "required": 1,
        "policy_sha256": "d2",
    })
    log.add("post.approved", actor="bob", account="pencil", post="1",
            data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "d2"})
    log.add("post.publishing", actor="system", account="pencil", post="1",
            data={"attempt": 1, "version": 2, "text_hash": log.commit("take")})
    log.add("post.published", actor="system", account="pencil", post="1",
            data={"remote_id": "r1", "url": "https://example.social/1", "version": 2})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == []


def test_a_post_that_goes_out_with_no_policy_in_force_is_named(tmp_path: Path) -> None:
    """The policy file is removed, and a waiting post goes out anyway."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    removed = log.add("policy.removed", actor="policy-file", account="solo", data={"previous_sha256": "s1"})
    claim, _ = _publish(log, "1", "solo") - 1, None
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {claim}: post.publishing of post 1, which entry {removed} left to be decided again first: "
        "the account's policy was removed",
        f"entry {claim}: post 1 went out while solo had no policy in force",
    ]


def test_a_cosigned_post_submitted_as_scheduled_is_named(tmp_path: Path) -> None:
    """A forged submission skips the approvals a co-signed account asks for."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    bad = log.submit("1", author="carol", account="brand", state="scheduled", sha="p1")
    claim = bad + 1
    _publish(log, "1", "brand")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: post 1 was submitted to co-signed brand as scheduled needing 0 approvals, not held for 2",
        f"entry {claim}: post 1 went out on co-signed brand held for 0 approvals, where its policy asks for 2",
    ]


def test_a_cancel_by_someone_else_is_named(tmp_path: Path) -> None:
    """Only the author takes a post back."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    bad = log.add("post.cancelled", actor="bob", account="brand", post="1",
                  data={"state": "cancelled", "policy_sha256": "p1"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: bob cancelled post 1, which carol wrote"]


def test_an_approval_of_a_version_other_than_the_current_one_is_named(tmp_path: Path) -> None:
    """An approval recorded for the version before an edit is named, though its approver may approve."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    log.add("post.edited", actor="carol", account="brand", post="1",
            data={"version": 2, "text_hash": log.commit("new words"), "state": "held"})
    bad = _approve(log, "1", "bob", version=1)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: approval of version 1 of post 1, which is at version 2"]


# -- each rule, its wording and the entry it names: what mutation testing showed untested ---------

TEAM = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "dave"], required=1,
               suggesters=["erin"], tier="co-signed")
GHOST = "ab" * 32  # a policy the log never records


def _held(log: SyntheticLog, post: str, *, required: int = 1, sha: str | None = "t1") -> int:
    """Carol's post to brand, held for bob and dave."""
    return log.submit(post, author="carol", account="brand", state="held", approvers=["bob", "dave"],
                      required=required, sha=sha)


def _act(log: SyntheticLog, kind: str, post: str, who: str, sha: str | None, **data: Any) -> int:
    """A rejection, cancel, adoption or dismissal of a post of brand."""
    state = {"post.rejected": "rejected", "post.cancelled": "cancelled", "post.adopted": "adopted",
             "post.dismissed": "dismissed"}[kind]
    return log.add(kind, actor=who, account="brand", post=post, data={
        "state": state, **data, **({"policy_sha256": sha} if sha else {}),
    })


async def test_byline_audit_verify_rejects_an_approval_that_released_words_its_approver_never_read(
    tmp_path: Path,
) -> None:
    """The real command, on the log a gateway would write had an edit landed between an
    approval's check and its transaction: bob's approval of version 1 releases version 2, which
    goes out. The approval is named, and so is the publication it let out."""
    log = SyntheticLog()
    log.policy("brand", TEAM, "t1")
    _held(log, "1")
    log.add("post.edited", actor="carol", account="brand", post="1",
            data={"version": 2, "text_hash": log.commit("Buy our coin today"), "state": "held", "policy_sha256": "t1"})
    bad = log.add("post.approved", actor="bob", account="brand", post="1", data={
        "version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "t1"})
    published = _publish(log, "1", "brand", version=2, text="Buy our coin today")
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {bad}: approval of version 1 of post 1, which is at version 2" in said, said
    assert f"entry {published}: post 1 was published (version 2) with 0 of the 1 approvals it needed" in said, said


def test_a_submission_that_names_no_policy_is_judged_by_the_one_in_force(tmp_path: Path) -> None:
    """A writer's submission naming no policy passes; a non-writer's is named, with no policy to cite."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2)
    bad = log.submit("2", author="erin", account="brand", state="held", approvers=["bob", "dave"], required=2)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: erin submitted a post to brand but was not a writer under its policy"
    ]


def test_submissions_naming_a_policy_recorded_later_are_judged_by_it(tmp_path: Path) -> None:
    """Posts decided on the first policy before it is recorded are judged, each at its entry, when it is."""
    sha = "0123456789abcdef" * 4
    log = SyntheticLog()
    _held(log, "1", required=2, sha=sha)
    bad = log.submit("2", author="erin", account="brand", state="held", approvers=["bob", "dave"], required=2, sha=sha)
    ghost = log.submit("3", author="alice", account="brand", state="held", approvers=["bob", "dave"], required=2,
                       sha=GHOST)
    recorded = log.policy("brand", COSIGNED, sha)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: erin submitted a post to brand but was not a writer under its policy (policy 0123456789ab)",
        f"entry {ghost}: alice submitted a post to brand under policy abababababab, which the log never records",
        f"entry {recorded}: post 2 was never decided again after this change: erin no longer writes for brand",
    ]


def test_events_of_unknown_posts_repeated_submissions_and_posts_to_no_account_are_named(tmp_path: Path) -> None:
    """An approval of a post never submitted, a post submitted twice, a submission naming no account."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    stray = log.add("post.approved", actor="bob", account="brand", post="9",
                    data={"version": 1, "count": 1, "required": 2, "state": "held", "policy_sha256": "p1"})
    _held(log, "1", required=2, sha="p1")
    again = _held(log, "1", required=2, sha="p1")
    nowhere = log.add("post.submitted", actor="carol", post="2", data={
        "version": 1, "text_hash": log.commit("to nowhere"), "state": "scheduled", "approvers": [],
        "required": 0, "policy_sha256": "p1",
    })
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {stray}: post.approved for post 9, which was never submitted",
        f"entry {again}: post 1 is submitted a second time",
        f"entry {nowhere}: post.submitted names no account",
    ]


def test_a_cosigned_gate_counts_the_approvers_other_than_the_author(tmp_path: Path) -> None:
    """An author who approves is left out of their own gate, which still asks as many approvals
    as the policy (the loader makes sure the others are enough); a post held for fewer than the
    policy asks is named, an author's own included."""
    log = SyntheticLog()
    policy = {**COSIGNED, "required": 3, "approvers": ["bob", "carol", "dave", "erin"]}
    log.policy("brand", policy, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave", "erin"], required=3,
               sha="p1")
    bad = log.submit("2", author="alice", account="brand", state="held", approvers=["bob", "carol", "dave", "erin"],
                     required=1, sha="p1")
    short = log.submit("3", author="carol", account="brand", state="held", approvers=["bob", "dave", "erin"],
                       required=2, sha="p1")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: post 2 was submitted to co-signed brand as held needing 1 approvals, not held for 3",
        f"entry {short}: post 3 was submitted to co-signed brand as held needing 2 approvals, not held for 3",
    ]


def test_a_cosigned_policy_naming_no_count_asks_for_one_approval(tmp_path: Path) -> None:
    """Without ``required`` a co-signed account needs one approval: held for one passes, none is named."""
    log = SyntheticLog()
    log.policy("brand", {k: v for k, v in COSIGNED.items() if k != "required"}, "p1")
    _held(log, "1", sha="p1")
    bad = log.submit("2", author="carol", account="brand", state="scheduled", sha="p1")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: post 2 was submitted to co-signed brand as scheduled needing 0 approvals, not held for 1"
    ]


def test_a_role_list_missing_or_malformed_in_a_policy_names_nobody(tmp_path: Path) -> None:
    """A policy whose writers are not a list, and which lists no approvers or suggesters: nobody writes."""
    log = SyntheticLog()
    log.policy("solo", {"tier": "direct", "owner": "alice", "writers": "alice"}, "s1")
    bad = log.submit("1", author="alice", account="solo", sha="s1")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: alice submitted a post to solo but was not a writer under its policy (policy s1)"
    ]


def test_where_approvers_are_named_the_owners_approval_of_their_own_post_does_not_count(tmp_path: Path) -> None:
    """The owner confirms their own posts only where the policy names no approvers."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="alice", account="brand", state="held", approvers=["bob", "carol", "dave"],
               required=2, sha="p1")
    own = _approve(log, "1", "alice")
    _approve(log, "1", "bob", state="scheduled")
    out = _publish(log, "1", "brand")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {own}: alice approved their own post 1",
        f"entry {out}: post 1 was published (version 1) with 1 of the 2 approvals it needed",
    ]


def test_an_approval_naming_the_policy_just_replaced_is_judged_by_it(tmp_path: Path) -> None:
    """Erin became an approver in p2; an approval she records as decided on p1 is named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.policy("brand", {**COSIGNED, "approvers": ["bob", "carol", "dave", "erin"]}, "p2", kind="policy.changed")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave", "erin"], required=2,
               sha="p2")
    bad = log.add("post.approved", actor="erin", account="brand", post="1",
                  data={"version": 1, "count": 1, "required": 2, "state": "held", "policy_sha256": "p1"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: erin approved post 1 but is not one of its approvers"]


def test_a_removed_policy_leaves_every_waiting_post_and_only_those_to_be_decided_again(tmp_path: Path) -> None:
    """Past a published post and a suggestion, the held post owes a new decision; others owe none."""
    log = SyntheticLog()
    log.policy("brand", TEAM, "t1")
    _held(log, "1")
    _approve(log, "1", "bob", state="scheduled")
    _publish(log, "1", "brand")
    log.submit("2", author="erin", account="brand", state="suggested", sha="t1")
    _held(log, "3")
    log.add("policy.removed", actor="policy-file", account="ghost", data={"previous_sha256": None})
    removed = log.add("policy.removed", actor="policy-file", account="brand", data={"previous_sha256": "t1"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {removed}: post 3 was never decided again after this change: the account's policy was removed"
    ]


def test_the_owners_confirmation_under_a_removed_policy_still_counts(tmp_path: Path) -> None:
    """The owner's confirmation counts after the policy went: only the claim with no policy is named."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", state="held", approvers=["alice"], required=1, sha="s1")
    log.add("post.approved", actor="alice", account="solo", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "s1"})
    removed = log.add("policy.removed", actor="policy-file", account="solo", data={"previous_sha256": "s1"})
    claim = _publish(log, "1", "solo") - 1
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {claim}: post.publishing of post 1, which entry {removed} left to be decided again first: "
        "the account's policy was removed",
        f"entry {claim}: post 1 went out while solo had no policy in force",
    ]


def test_actions_naming_no_policy_while_the_account_has_none_are_named(tmp_path: Path) -> None:
    """After the policy went, each kind of action that names no policy is named for it."""
    log = SyntheticLog()
    log.policy("brand", TEAM, "t1")
    for post in ("1", "2", "3"):
        _held(log, post)
    log.submit("4", author="erin", account="brand", state="suggested", sha="t1")
    log.submit("5", author="erin", account="brand", state="suggested", sha="t1")
    removed = log.add("policy.removed", actor="policy-file", account="brand", data={"previous_sha256": "t1"})
    own_edit = _edit(log, "1", "carol", 2)
    other_edit = _edit(log, "2", "bob", 2)
    approval = _approve(log, "1", "bob", version=2, state="scheduled")
    rejection = _act(log, "post.rejected", "2", "dave", None, version=2, reason=None)
    cancel = _act(log, "post.cancelled", "3", "carol", None)
    adoption = _act(log, "post.adopted", "4", "alice", None, into="6")
    dismissal = _act(log, "post.dismissed", "5", "alice", None, reason=None)
    report = log.verify(tmp_path / "x.export")
    owed = f"which entry {removed} left to be decided again first: the account's policy was removed"
    assert messages(report) == [
        f"entry {own_edit}: post.edited of post 1, {owed}",
        f"entry {own_edit}: carol edited a post of brand, which had no policy in force",
        f"entry {other_edit}: post.edited of post 2, {owed}",
        f"entry {other_edit}: bob edited a post of brand, which had no policy in force",
        f"entry {approval}: bob approved a post of brand, which had no policy in force",
        f"entry {rejection}: dave rejected a post of brand, which had no policy in force",
        f"entry {cancel}: post.cancelled of post 3, {owed}",
        f"entry {cancel}: carol cancelled a post of brand, which had no policy in force",
        f"entry {adoption}: alice adopted a post of brand, which had no policy in force",
        f"entry {dismissal}: alice dismissed a post of brand, which had no policy in force",
    ]


def test_actions_naming_a_policy_the_log_never_records_are_named(tmp_path: Path) -> None:
    """Each kind of action decided on a policy that never appears is named, not judged by the one in force."""
    log = SyntheticLog()
    log.policy("brand", TEAM, "t1")
    for post in ("1", "2", "3", "5"):
        _held(log, post)
    log.submit("4", author="erin", account="brand", state="suggested", sha="t1")
    _approve(log, "5", "bob", state="scheduled")
    own_edit = _edit(log, "1", "carol", 2, sha=GHOST)
    other_edit = _edit(log, "2", "dave", 2, sha=GHOST)
    approval = log.add("post.approved", actor="bob", account="brand", post="1",
                       data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": GHOST})
    rejection = _act(log, "post.rejected", "2", "bob", GHOST, version=2, reason=None)
    cancel = _act(log, "post.cancelled", "3", "carol", GHOST)
    adoption = _act(log, "post.adopted", "4", "alice", GHOST, into="6")
    claim = log.add("post.publishing", actor="system", account="brand", post="5", data={
        "attempt": 1, "version": 1, "text_hash": log.commit(log.words["5"] or ""), "policy_sha256": GHOST,
    })
    report = log.verify(tmp_path / "x.export")
    never = "under policy abababababab, which the log never records"
    assert messages(report) == [
        f"entry {own_edit}: carol edited a post of brand {never}",
        f"entry {other_edit}: dave edited a post of brand {never}",
        f"entry {approval}: bob approved a post of brand {never}",
        f"entry {rejection}: bob rejected a post of brand {never}",
        f"entry {cancel}: carol cancelled a post of brand {never}",
        f"entry {adoption}: alice adopted a post of brand {never}",
        f"entry {claim}: post 5 went out {never}",
    ]


def test_only_the_posts_approvers_reject_it_and_only_its_current_version(tmp_path: Path) -> None:
    """A stranger's rejection, the listed author's own, and one of the version before an edit are named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    for post in ("1", "2", "4"):
        _held(log, post, required=2, sha="p1")
    log.submit("3", author="carol", account="brand", state="held", approvers=["bob", "carol", "dave"], required=2,
               sha="p1")
    _act(log, "post.rejected", "1", "bob", "p1", version=1, reason="no")
    stranger = _act(log, "post.rejected", "2", "erin", "p1", reason="no")
    own = _act(log, "post.rejected", "3", "carol", "p1", version=1, reason="no")
    _edit(log, "4", "carol", 2, sha="p1")
    stale = _act(log, "post.rejected", "4", "dave", "p1", version=1, reason="no")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {stranger}: erin rejected post 2 but is not one of its approvers",
        f"entry {own}: carol rejected post 3 but is not one of its approvers",
        f"entry {stale}: rejection of version 1 of post 4, which is at version 2",
    ]


def test_only_writers_adopt_or_dismiss_a_suggestion(tmp_path: Path) -> None:
    """Bob, a writer, adopts; a stranger's dismissal and the suggester's own adoption are named."""
    log = SyntheticLog()
    log.policy("team", MANAGED, "m1")
    for post in ("1", "2", "3"):
        log.submit(post, author="dave", account="team", state="suggested", sha="m1")
    log.add("post.adopted", actor="bob", account="team", post="1",
            data={"state": "adopted", "into": "4", "policy_sha256": "m1"})
    dismissed = log.add("post.dismissed", actor="erin", account="team", post="2",
                        data={"state": "dismissed", "reason": None, "policy_sha256": "m1"})
    adopted = log.add("post.adopted", actor="dave", account="team", post="3",
                      data={"state": "adopted", "into": "5", "policy_sha256": "m1"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {dismissed}: erin dismissed post 2 but is not a writer",
        f"entry {adopted}: dave adopted post 3 but is not a writer",
    ]


def test_an_adoption_of_a_version_the_suggestion_no_longer_is_at_is_named(tmp_path: Path) -> None:
    """Bob adopts the version he read; an adoption naming version 1 of a suggestion dave rewrote
    since (version 2) is named, as a stale approval is; one naming none (logged before adoptions
    named their version) passes."""
    log = SyntheticLog()
    log.policy("team", MANAGED, "m1")
    for post in ("1", "2", "3"):
        log.submit(post, author="dave", account="team", state="suggested", sha="m1")
    log.add("post.adopted", actor="bob", account="team", post="1",
            data={"state": "adopted", "into": "4", "version": 1, "policy_sha256": "m1"})
    log.add("post.edited", actor="dave", account="team", post="2",
            data={"version": 2, "text_hash": log.commit("words bob never read"), "state": "suggested",
                  "reasons": [], "policy_sha256": "m1"})
    stale = log.add("post.adopted", actor="bob", account="team", post="2",
                    data={"state": "adopted", "into": "5", "version": 1, "policy_sha256": "m1"})
    log.add("post.adopted", actor="bob", account="team", post="3",
            data={"state": "adopted", "into": "6", "policy_sha256": "m1"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {stale}: adoption of version 1 of post 2, which is at version 2"]


def test_a_suggester_edits_their_suggestion_but_a_writer_made_a_suggester_may_not_edit_or_cancel(
    tmp_path: Path,
) -> None:
    """A suggester edits their suggestion; a writer made a suggester may not edit or cancel their post."""
    log = SyntheticLog()
    log.policy("team", MANAGED, "m1")
    log.submit("1", author="dave", account="team", state="suggested", sha="m1")
    log.add("post.edited", actor="dave", account="team", post="1", data={
        "version": 2, "text_hash": log.commit("better"), "state": "suggested", "policy_sha256": "m1",
    })
    log.submit("2", author="bob", account="team", sha="m1")
    change = log.policy("team", {**MANAGED, "writers": [], "suggesters": ["bob", "dave"]}, "m2",
                        kind="policy.changed")
    edit = log.add("post.edited", actor="bob", account="team", post="2", data={
        "version": 2, "text_hash": log.commit("still mine"), "state": "scheduled", "policy_sha256": "m2",
    })
    cancel = log.add("post.cancelled", actor="bob", account="team", post="2",
                     data={"state": "cancelled", "policy_sha256": "m2"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {edit}: post.edited of post 2, which entry {change} left to be decided again first: "
        "bob no longer writes for team",
        f"entry {edit}: bob edited post 2 but no longer writes for team",
        f"entry {cancel}: bob cancelled post 2 but no longer writes for team",
    ]


def test_only_the_author_or_a_listed_approver_under_the_policy_edits_a_post(tmp_path: Path) -> None:
    """Edits by a listed approver p2 dropped and an unlisted one are named; an editor's approval too."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held(log, "1", required=2, sha="p1")
    log.policy("brand", {**COSIGNED, "approvers": ["carol", "dave", "erin"]}, "p2", kind="policy.changed")
    dropped = _edit(log, "1", "bob", 2, sha="p2")
    unlisted = _edit(log, "1", "erin", 3, sha="p2")
    _edit(log, "1", "dave", 4, sha="p2")
    own = log.add("post.approved", actor="dave", account="brand", post="1",
                  data={"version": 4, "count": 1, "required": 2, "state": "held", "policy_sha256": "p2"})
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {dropped}: bob edited post 1 but is neither its author nor one of its approvers",
        f"entry {unlisted}: erin edited post 1 but is neither its author nor one of its approvers",
        f"entry {own}: dave approved post 1 (version 4), which has their words",
    ]


def test_an_edit_keeps_a_held_posts_gate_and_regates_a_released_one_as_it_records(tmp_path: Path) -> None:
    """An edit keeps a held post's gate; one putting a scheduled post back on hold sets the gate it records."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held(log, "1", required=2, sha="p1")
    _held(log, "2", required=2, sha="p1")
    _approve(log, "2", "bob")
    _approve(log, "2", "dave", state="scheduled")
    log.policy("brand", {**COSIGNED, "approvers": ["bob", "carol", "dave", "erin"], "required": 1}, "p2",
               kind="policy.changed")
    _edit(log, "1", "carol", 2)
    log.add("post.edited", actor="carol", account="brand", post="2", data={
        "version": 2, "text_hash": log.commit("carol's words v2"), "state": "held", "policy_sha256": "p1",
        "approvers": ["bob", "dave"], "required": 2,
    })
    _approve(log, "1", "bob", version=2, state="scheduled")
    _approve(log, "2", "bob", version=2, state="scheduled")
    first = _publish(log, "1", "brand", version=2)
    second = _publish(log, "2", "brand", version=2)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {first}: post 1 was published (version 2) with 1 of the 2 approvals it needed",
        f"entry {second}: post 2 was published (version 2) with 1 of the 2 approvals it needed",
    ]


def test_a_half_recorded_gate_leaves_the_posts_gate_to_the_policy(tmp_path: Path) -> None:
    """A gate recorded without its count: an edit is gated by the policy, a new decision keeps the old gate."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held(log, "1", required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    log.add("post.edited", actor="carol", account="brand", post="1", data={
        "version": 2, "text_hash": log.commit("carol's words v2"), "state": "held", "policy_sha256": "p1",
        "approvers": ["bob"],
    })
    _approve(log, "1", "bob", version=2, state="scheduled")
    out = _publish(log, "1", "brand", version=2)
    _held(log, "2", required=2, sha="p1")
    log.add("post.redecided", actor="policy-file", account="brand", post="2", data={
        "cause": "policy_changed", "state": "held", "version": 2, "approvers": ["bob"], "policy_sha256": "p1",
    })
    _approve(log, "2", "bob", version=2)
    _approve(log, "2", "dave", version=2, state="scheduled")
    _publish(log, "2", "brand", version=2)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {out}: post 1 was published (version 2) with 1 of the 2 approvals it needed",
    ]


def test_a_direct_post_edited_into_a_hold_without_a_recorded_gate_goes_to_the_owner(tmp_path: Path) -> None:
    """Bob's scheduled post is edited into a hold; the owner confirms it and it goes out: fine."""
    log = SyntheticLog()
    log.policy("solo", summary(owner="alice", writers=["alice", "bob"]), "s1")
    log.submit("1", author="bob", account="solo", sha="s1")
    log.add("post.edited", actor="bob", account="solo", post="1", data={
        "version": 2, "text_hash": log.commit("second thoughts"), "state": "held", "policy_sha256": "s1",
    })
    log.add("post.approved", actor="alice", account="solo", post="1",
            data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "s1"})
    _publish(log, "1", "solo", version=2)
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == []


def test_posts_waiting_again_after_a_decision_approval_deferral_or_edit_are_owed_one(tmp_path: Path) -> None:
    """Posts waiting after a new decision, an approval, a deferral or an edit each owe one when carol goes."""
    log = SyntheticLog()
    log.policy("brand", summary(owner="alice", writers=["alice", "carol"], tier="delayed"), "t0")
    log.submit("1", author="carol", account="brand", sha="t0")
    log.policy("brand", TEAM, "t1", kind="policy.changed")
    _redecide(log, "1", "brand", version=2, approvers=["bob", "dave"], required=1, sha="t1", cause="policy_changed")
    _held(log, "2")
    _approve(log, "2", "bob", state="scheduled")
    _held(log, "3")
    _approve(log, "3", "bob", state="scheduled")
    log.add("post.publishing", actor="system", account="brand", post="3",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["3"] or ""), "policy_sha256": "t1"})
    log.add("post.deferred", actor="system", account="brand", post="3",
            data={"state": "scheduled", "error": "busy", "attempt": 1})
    _held(log, "4")
    _edit(log, "4", "carol", 2, sha="t1")
    change = log.policy("brand", {**TEAM, "writers": ["alice"]}, "t2", kind="policy.changed")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {change}: post {post} was never decided again after this change: carol no longer writes for brand"
        for post in ("1", "2", "3", "4")
    ]


def test_the_replay_takes_facts_one_at_a_time_or_in_runs() -> None:
    """``feed`` and ``feed_flat`` replay facts alike, short ones too, and count; a ragged run is refused."""
    facts: list[Fact] = [
        ("policy.loaded", "policy-file", "solo", None, ("s1", DIRECT)),
        ("post.submitted", "alice", "solo", "1", (1, "held", ("alice",), 1, "s1")),
        ("post.edited", "erin", "solo", "1", (2, "held", None, None)),
        ("post.approved", "erin", "solo", "1", (2, "scheduled")),
        ("post.publishing", "system", "solo", "1", None),
        ("post.published", "system", "solo", "1", (2,)),
        ("post.submitted", "alice", "solo", "2", (1, "scheduled", (), 0, "s1")),
        ("post.publishing", "system", "solo", "2", None),
        ("post.published", "system", "solo", "2", (1,)),
    ]
    one, run = Replay(), Replay()
    for offset, fact in enumerate(facts):
        one.feed(10 + offset, fact)
    run.feed_flat(10, [part for offset, fact in enumerate(facts) for part in (offset, *fact)])
    for replay in (one, run):
        replay.finish()
        assert replay.findings == [
            (12, "erin edited post 1 but is neither its author nor one of its approvers"),
            (13, "erin approved post 1 (version 2), which has their words"),
            (15, "post 1 was published (version 2) with 0 of the 1 approvals it needed"),
        ]
        assert (replay.posts_seen, replay.published_checked) == (2, 2)
    with pytest.raises(ValueError, match="zip"):
        Replay().feed_flat(0, [0, "policy.removed", "policy-file", "solo", None])


def test_a_re_hold_that_drops_the_approvals_a_co_signed_account_needs_is_named(tmp_path: Path) -> None:
    """A forged re-hold with no approvals needed, on a co-signed account, is named before it goes out."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p2", kind="policy.changed")
    bad = _redecide(log, "1", "brand", version=2, approvers=["bob", "dave"], required=0, sha="p2")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: post 1 was held again on co-signed brand needing 0 approvals, not 2"
    ]


def test_an_edit_that_re_holds_with_too_few_approvals_is_named(tmp_path: Path) -> None:
    """An approved co-signed post edited back into a hold that needs no approvals: the edit is named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    bad = log.add("post.edited", actor="carol", account="brand", post="1", data={
        "version": 2, "text_hash": log.commit("new words"), "state": "held", "approvers": ["bob", "dave"],
        "required": 0, "policy_sha256": "p1",
    })
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: post 1 was held again on co-signed brand needing 0 approvals, not 2"]


def test_a_co_signed_gate_leaves_the_author_out(tmp_path: Path) -> None:
    """Carol approves for brand but never her own post: her gate is bob alone, one approval, on a
    re-hold by edit as on a new decision."""
    policy = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "carol"], required=1,
                     tier="co-signed")
    log = SyntheticLog()
    log.policy("brand", policy, "g1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob"], required=1, sha="g1")
    _approve(log, "1", "bob", state="scheduled")
    log.add("post.edited", actor="carol", account="brand", post="1", data={
        "version": 2, "text_hash": log.commit("carol v2"), "state": "held", "policy_sha256": "g1",
    })
    _approve(log, "1", "bob", version=2, state="scheduled")
    _publish(log, "1", "brand", version=2)
    log.submit("2", author="carol", account="brand", state="held", approvers=["bob"], required=1, sha="g1")
    _redecide(log, "2", "brand", version=2, approvers=["bob"], required=1, sha="g1", cause="policy_changed")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == []


def test_a_re_hold_while_no_policy_is_in_force_is_not_gated(tmp_path: Path) -> None:
    """With the policy gone there is no gate to hold a post to: its parking is recorded, not judged."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    log.add("policy.removed", actor="policy-file", account="brand", data={"previous_sha256": "p1"})
    _redecide(log, "1", "brand", version=1, approvers=["bob", "dave"], required=1, sha=None,
              cause="policy_removed")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == []


def test_a_post_retried_once_its_account_is_co_signed_and_published_unapproved_is_named(tmp_path: Path) -> None:
    """A post failed while its account was direct, then the account turned co-signed: a gateway
    that retries it and sends it out without deciding it again (no ``post.redecided`` holding it
    for the approvers) published one person's words alone, and the log says so. The same post
    held again for two approvals, and approved by two, verifies."""
    def failed_then_retried_on_co_signed() -> SyntheticLog:
        log = SyntheticLog()
        log.policy("brand", summary(owner="alice", writers=["alice", "carol"]), "p1")
        log.submit("1", author="carol", account="brand", state="scheduled", sha="p1")
        log.add("post.publishing", actor="system", account="brand", post="1",
                data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["1"] or ""), "policy_sha256": "p1"})
        log.add("post.failed", actor="system", account="brand", post="1",
                data={"state": "failed", "error": "refused", "policy_sha256": "p1"})
        log.policy("brand", COSIGNED, "p2")
        log.add("post.retried", actor="carol", account="brand", post="1",
                data={"state": "scheduled", "policy_sha256": "p2"})
        return log

    log = failed_then_retried_on_co_signed()
    claim = _publish(log, "1", "brand") - 1
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {claim}: post 1 went out on co-signed brand held for 0 approvals, where its policy asks for 2"
    ]

    honest = failed_then_retried_on_co_signed()
    _redecide(honest, "1", "brand", version=2, approvers=["bob", "dave"], required=2, sha="p2", cause="policy_changed")
    _approve(honest, "1", "bob", version=2)
    _approve(honest, "1", "dave", version=2, state="scheduled")
    _publish(honest, "1", "brand", version=2)
    assert messages(honest.verify(tmp_path / "honest.export")) == []


def test_an_edit_by_a_confirming_owner_who_does_not_write_is_named(tmp_path: Path) -> None:
    """On a managed account whose policy names no approvers, the owner confirms held posts but
    does not write: an edit of theirs (which their confirmation alone would send out) is named."""
    log = SyntheticLog()
    managed = summary(owner="dave", writers=["bob"], tier="managed")
    log.policy("managed", managed, "m1")
    log.submit("1", author="bob", account="managed", state="held", approvers=["dave"], required=1, sha="m1")
    bad = log.add("post.edited", actor="dave", account="managed", post="1", data={
        "version": 2, "text_hash": log.commit("dave's words"), "state": "held", "policy_sha256": "m1"})
    log.add("post.approved", actor="dave", account="managed", post="1",
            data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "m1"})
    _publish(log, "1", "managed", version=2)
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: dave edited post 1 of managed, for which they confirm but do not write"
    ]


def test_a_post_held_again_for_fewer_approvals_than_its_policy_asks_is_named(tmp_path: Path) -> None:
    """A post whose author lost the writer role is held again for the approvers but them, and for
    as many approvals as the policy asks: a gate shrunk to the approvers left (one, where the
    policy asks two of bob and carol, and carol wrote it) is named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    log.policy("brand", summary(owner="alice", writers=["alice"], approvers=["bob", "carol"], required=2,
                                tier="co-signed"), "p2")
    bad = _redecide(log, "1", "brand", version=2, approvers=["bob"], required=1, sha="p2")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [f"entry {bad}: post 1 was held again on co-signed brand needing 1 approvals, not 2"]


def _solo_published(log: SyntheticLog) -> None:
    log.policy("solo", summary(owner="alice", writers=["alice", "bob"]), "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    _publish(log, "1", "solo")


def test_a_post_published_twice_or_after_its_end_is_named(tmp_path: Path) -> None:
    """The replay follows each post's life (``gateway.lifecycle``): a second publication, a
    publication of a cancelled post, and an approval after the post went out are each named."""
    log = SyntheticLog()
    _solo_published(log)
    twice = _publish(log, "1", "solo") - 1
    log.submit("2", author="alice", account="solo", sha="s1")
    log.add("post.cancelled", actor="alice", account="solo", post="2",
            data={"state": "cancelled", "policy_sha256": "s1"})
    after_cancel = _publish(log, "2", "solo") - 1
    late = log.add("post.approved", actor="bob", account="solo", post="1",
                   data={"version": 1, "count": 1, "required": 1, "state": "published", "policy_sha256": "s1"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {twice}: post.publishing of post 1, which was published: its life does not go that way",
        f"entry {after_cancel}: post.publishing of post 2, which was cancelled: its life does not go that way",
        f"entry {late}: post.approved of post 1, which was published: its life does not go that way",
        f"entry {late}: bob approved post 1 but is not one of its approvers",
    ]


def test_a_reply_failed_where_it_waited_passes_and_goes_nowhere_after(tmp_path: Path) -> None:
    """A reply whose parent was taken back fails while scheduled, before any claim (the
    publisher's ``post.failed`` naming the parent): an honest life. A held post failed, and a
    failed reply published without a retry, are still named."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    log.submit("2", author="alice", account="solo", sha="s1")
    log.add("post.cancelled", actor="alice", account="solo", post="1", data={"state": "cancelled",
                                                                             "policy_sha256": "s1"})
    log.add("post.failed", actor="system", account="solo", post="2",
            data={"state": "failed", "error": "the post it replies to, 1, was cancelled", "attempt": 0,
                  "reply_to_post": "1"})
    assert messages(log.verify(tmp_path / "honest.export")) == []
    sent = _publish(log, "2", "solo") - 1
    log.submit("3", author="alice", account="solo", state="held", approvers=["alice"], required=1, sha="s1")
    held = log.add("post.failed", actor="system", account="solo", post="3", data={"state": "failed"})
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {sent}: post.publishing of post 2, which was failed: its life does not go that way",
        f"entry {held}: post.failed of post 3, which was held: its life does not go that way",
    ]


def _reply(log: SyntheticLog, post: str, parent: str, *, account: str = "brand", author: str = "carol",
           state: str = "held", adopted_from: str | None = None) -> int:
    """A reply to ``parent``, written before the parent went out (its options' reply_to_post)."""
    held = state == "held" and account == "brand"
    return log.add("post.submitted", actor=author, account=account, post=post, data={
        "version": 1, "text_hash": log.commit(f"text of {post}"), "state": state,
        "approvers": ["bob", "dave"] if held else [], "required": 2 if held else 0, "policy_sha256": None,
        "options": {"reply_to_post": parent}, "adopted_from": adopted_from,
    })


def _system_cancel(log: SyntheticLog, post: str, parent: str, *, account: str = "brand", how: str = "cancelled") -> int:
    """The gateway cancelling a reply with its parent (``posts.cancel_waiting_replies``)."""
    return log.add("post.cancelled", actor="system", account=account, post=post, data={
        "state": "cancelled", "version": 1, "reply_to_post": parent,
        "reason": f"the post it replies to, {parent}, was {how}: this reply does not go out without it"})


def test_replies_cancelled_with_their_parent_pass_and_only_they(tmp_path: Path) -> None:
    """A thread's head taken back: the gateway cancels the held reply waiting for it, and the
    reply to that reply, each naming its parent; a reply to a suggestion adopted into a post
    rejected later is cancelled with that post. An honest log. A system cancel of a reply
    whose parent is still held, of one naming a post it does not reply to, and of a post that
    replies to nothing are each named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _reply(log, "2", "1")
    _reply(log, "3", "2")
    log.add("post.cancelled", actor="carol", account="brand", post="1",
            data={"state": "cancelled", "policy_sha256": "p1"})
    _system_cancel(log, "2", "1")
    _system_cancel(log, "3", "2")
    log.policy("team", MANAGED, "m1")
    log.submit("4", author="dave", account="team", state="suggested", sha="m1")
    _reply(log, "5", "4", account="team", author="bob", state="scheduled")
    log.add("post.submitted", actor="bob", account="team", post="6", data={
        "version": 1, "text_hash": log.commit("text of 6"), "state": "held", "approvers": ["dave"],
        "required": 1, "policy_sha256": "m1", "suggested_by": "dave", "adopted_from": "4"})
    log.add("post.adopted", actor="bob", account="team", post="4", data={"state": "adopted", "into": "6"})
    log.add("post.rejected", actor="dave", account="team", post="6",
            data={"version": 1, "state": "rejected", "policy_sha256": "m1"})
    _system_cancel(log, "5", "4", account="team", how="rejected")
    assert messages(log.verify(tmp_path / "honest.export")) == []

    log.submit("7", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _reply(log, "8", "7")
    _reply(log, "9", "7")
    log.submit("10", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    pending = _system_cancel(log, "8", "7")
    elsewhere = _system_cancel(log, "9", "2")
    alone = _system_cancel(log, "10", "1")
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {pending}: system cancelled post 8 with the post it replies to, 7, which was held: it had not ended",
        f"entry {elsewhere}: system cancelled post 9 for the post it replies to, 2, but it replies to 7",
        f"entry {alone}: system cancelled post 10 for the post it replies to, 1, but it replies to no post not yet out",
    ]


def _quote(log: SyntheticLog, post: str, quoted: str) -> int:
    """A quote of ``quoted`` at its version 1, written before that post went out, held for bob and dave."""
    return log.add("post.submitted", actor="carol", account="brand", post=post, data={
        "version": 1, "text_hash": log.commit(f"text of {post}"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1", "quote_of_post": quoted, "quote_of_version": 1,
    })


def _quote_cancel(log: SyntheticLog, post: str, quoted: str, *, how: str = "cancelled") -> int:
    """The gateway cancelling a quote with the post it quotes (``posts.cancel_waiting_replies``)."""
    return log.add("post.cancelled", actor="system", account="brand", post=post, data={
        "state": "cancelled", "version": 1, "quote_of_post": quoted,
        "reason": f"the post it quotes, {quoted}, was {how}: this quote does not go out without it"})


def test_quotes_cancelled_with_the_post_they_quote_pass_and_only_they(tmp_path: Path) -> None:
    """The post a held quote quotes taken back: the gateway cancels the quote, naming it. An
    honest log. A system cancel of a quote whose quoted post is still held (silencing a quote
    its approvers were about to approve), and of one naming a post it does not quote, are each
    named (before: a quote's cancel was read as a reply's naming no parent, the honest one too)."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _quote(log, "2", "1")
    log.add("post.cancelled", actor="carol", account="brand", post="1",
            data={"state": "cancelled", "policy_sha256": "p1"})
    _quote_cancel(log, "2", "1")
    assert messages(log.verify(tmp_path / "honest.export")) == []

    log.submit("3", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _quote(log, "4", "3")
    _quote(log, "5", "3")
    pending = _quote_cancel(log, "4", "3")
    elsewhere = _quote_cancel(log, "5", "1")
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {pending}: system cancelled post 4 with the post it quotes, 3, which was held: it had not ended",
        f"entry {elsewhere}: system cancelled post 5 for the post it quotes, 1, but it quotes 3",
    ]


def test_a_reply_is_stored_only_to_wait_for_a_post_waiting_or_out(tmp_path: Path) -> None:
    """Replies stored while their parent was held, scheduled, being sent, suggested or out: an
    honest log. One stored after its parent was cancelled (a cancel on another gateway that
    committed as the reply was read), after it failed, or after it was deleted, is named: the
    parent's end could not take it along, and it would wait for ever. Before, none was."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.policy("team", MANAGED, "m1")
    log.submit("1", author="alice", account="solo", state="held", approvers=["alice"], required=1, sha="s1")
    _reply(log, "2", "1", account="solo", author="alice", state="scheduled")
    log.add("post.approved", actor="alice", account="solo", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "s1"})
    _reply(log, "3", "1", account="solo", author="alice", state="scheduled")
    log.add("post.publishing", actor="system", account="solo", post="1",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["1"] or "")})
    _reply(log, "4", "1", account="solo", author="alice", state="scheduled")
    log.add("post.published", actor="system", account="solo", post="1",
            data={"remote_id": "r1", "url": "https://example.social/1", "version": 1})
    _reply(log, "5", "1", account="solo", author="alice", state="scheduled")
    log.submit("6", author="dave", account="team", state="suggested", sha="m1")
    _reply(log, "7", "6", account="team", author="dave", state="suggested")
    assert messages(log.verify(tmp_path / "honest.export")) == []

    log.submit("8", author="alice", account="solo", sha="s1")
    log.add("post.cancelled", actor="alice", account="solo", post="8",
            data={"state": "cancelled", "policy_sha256": "s1"})
    cancelled = _reply(log, "9", "8", account="solo", author="alice", state="scheduled")
    log.submit("10", author="alice", account="solo", sha="s1")
    log.add("post.publishing", actor="system", account="solo", post="10",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["10"] or "")})
    log.add("post.failed", actor="system", account="solo", post="10", data={"state": "failed", "attempt": 1})
    failed = _reply(log, "11", "10", account="solo", author="alice", state="scheduled")
    log.add("post.deleted", actor="alice", account="solo", post="1", data={"state": "deleted", "policy_sha256": "s1"})
    deleted = _reply(log, "12", "1", account="solo", author="alice", state="scheduled")
    elsewhere = _reply(log, "13", "6", account="solo", author="alice", state="scheduled")
    forever = "a reply waits only for a post waiting or out, and would wait for this one for ever"
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {cancelled}: post 9 was stored as a reply to 8, which was cancelled: {forever}",
        f"entry {failed}: post 11 was stored as a reply to 10, which was failed: {forever}",
        f"entry {deleted}: post 12 was stored as a reply to 1, which was deleted: {forever}",
        f"entry {elsewhere}: post 13 was stored as a reply to 6, which is not a post of solo",
    ]


def test_a_reply_sent_is_never_cancelled_or_retried_with_its_parent(tmp_path: Path) -> None:
    """A reply claimed once its parent went out, deferred by the platform, is left alone when
    the parent is deleted: an honest log. The gateway cancelling with its parent a reply it had
    sent (claimed, then deferred or failed on the platform; or published), or retrying one, is
    named: a reply sent waits for no parent. Before, only the published one was named, and
    only as a cancel its life does not allow."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    for reply in ("2", "3", "4", "5"):
        _reply(log, reply, "1", account="solo", author="alice", state="scheduled")
    _publish(log, "1", "solo")
    claims = {}
    for reply in ("2", "3", "4", "5"):
        claims[reply] = log.add("post.publishing", actor="system", account="solo", post=reply, data={
            "attempt": 1, "version": 1, "text_hash": log.commit(log.words[reply] or ""), "reply_to": "r1"})
    log.add("post.deferred", actor="system", account="solo", post="2",
            data={"state": "scheduled", "error": "come back later", "attempt": 1})
    log.add("post.deferred", actor="system", account="solo", post="3",
            data={"state": "scheduled", "error": "come back later", "attempt": 1})
    log.add("post.failed", actor="system", account="solo", post="4", data={"state": "failed", "attempt": 1})
    log.add("post.published", actor="system", account="solo", post="5",
            data={"remote_id": "r5", "url": "https://example.social/5", "version": 1})
    log.add("post.deleted", actor="alice", account="solo", post="1", data={"state": "deleted", "policy_sha256": "s1"})
    assert messages(log.verify(tmp_path / "honest.export")) == []

    deferred = _system_cancel(log, "3", "1", account="solo", how="deleted")
    failed = _system_cancel(log, "4", "1", account="solo", how="deleted")
    published = _system_cancel(log, "5", "1", account="solo", how="deleted")
    log.submit("6", author="alice", account="solo", sha="s1")
    _reply(log, "7", "6", account="solo", author="alice", state="scheduled")
    log.add("post.publishing", actor="system", account="solo", post="6",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["6"] or "")})
    log.add("post.published", actor="system", account="solo", post="6",
            data={"remote_id": "r6", "url": "https://example.social/6", "version": 1})
    claim = log.add("post.publishing", actor="system", account="solo", post="7", data={
        "attempt": 1, "version": 1, "text_hash": log.commit(log.words["7"] or ""), "reply_to": "r6"})
    log.add("post.failed", actor="system", account="solo", post="7", data={
        "state": "failed", "attempt": 1, "reply_to_post": "6"})
    retried = log.add("post.retried", actor="system", account="solo", post="7",
                      data={"state": "scheduled", "reply_to_post": "6", "policy_sha256": "s1"})
    sent = "a reply sent waits for no parent"
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {deferred}: system cancelled post 3 with the post it replies to, 1, but entry {claims['3']} "
        f"had sent it out: {sent}",
        f"entry {failed}: system cancelled post 4 with the post it replies to, 1, but entry {claims['4']} "
        f"had sent it out: {sent}",
        f"entry {published}: post.cancelled of post 5, which was published: its life does not go that way",
        f"entry {published}: system cancelled post 5 with the post it replies to, 1, but entry {claims['5']} "
        f"had sent it out: {sent}",
        f"entry {retried}: system retried post 7 with the post it replies to, 6, but entry {claim} "
        f"had sent it out: {sent}",
    ]


def test_a_reply_retried_with_its_parent_passes_and_only_then(tmp_path: Path) -> None:
    """A reply failed because its parent failed is retried by the gateway when the parent is:
    an honest log. A system retry of a reply that failed on the platform (not for its parent),
    and of one whose parent is still failed, are each named."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    _reply(log, "2", "1", account="solo", author="alice", state="scheduled")
    log.add("post.publishing", actor="system", account="solo", post="1",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["1"] or "")})
    log.add("post.failed", actor="system", account="solo", post="1", data={"state": "failed", "attempt": 1})
    log.add("post.failed", actor="system", account="solo", post="2", data={
        "state": "failed", "attempt": 0, "reply_to_post": "1",
        "error": "the post it replies to, 1, failed to go out: retrying it retries this one too"})
    log.add("post.retried", actor="alice", account="solo", post="1", data={"state": "scheduled", "policy_sha256": "s1"})
    log.add("post.retried", actor="system", account="solo", post="2",
            data={"state": "scheduled", "reply_to_post": "1", "policy_sha256": "s1"})
    _publish(log, "1", "solo")
    log.add("post.publishing", actor="system", account="solo", post="2",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["2"] or ""), "reply_to": "r1"})
    log.add("post.published", actor="system", account="solo", post="2",
            data={"remote_id": "r2", "url": "https://example.social/2", "version": 1})
    assert messages(log.verify(tmp_path / "honest.export")) == []

    log.submit("3", author="alice", account="solo", sha="s1")
    _reply(log, "4", "3", account="solo", author="alice", state="scheduled")
    _reply(log, "5", "3", account="solo", author="alice", state="scheduled")
    log.add("post.publishing", actor="system", account="solo", post="3",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["3"] or "")})
    log.add("post.failed", actor="system", account="solo", post="3", data={"state": "failed", "attempt": 1})
    log.add("post.failed", actor="system", account="solo", post="4", data={"state": "failed", "attempt": 0,
                                                                           "reply_to_post": "3"})
    log.add("post.failed", actor="system", account="solo", post="5", data={"state": "failed", "attempt": 1})
    still = log.add("post.retried", actor="system", account="solo", post="4",
                    data={"state": "scheduled", "reply_to_post": "3"})
    log.add("post.retried", actor="alice", account="solo", post="3", data={"state": "scheduled", "policy_sha256": "s1"})
    other = log.add("post.retried", actor="system", account="solo", post="5",
                    data={"state": "scheduled", "reply_to_post": "3"})
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {still}: system retried post 4 with the post it replies to, 3, which was failed",
        f"entry {other}: system retried post 5 with the post it replies to, 3, though it had not failed for that post",
    ]


def test_a_retry_or_a_delete_by_a_stranger_is_named(tmp_path: Path) -> None:
    """Only the author (still writing) or the owner retries a failed post or deletes a published one."""
    log = SyntheticLog()
    _solo_published(log)
    log.submit("2", author="alice", account="solo", sha="s1")
    log.add("post.publishing", actor="system", account="solo", post="2",
            data={"attempt": 1, "version": 1, "text_hash": log.commit(log.words["2"] or ""), "policy_sha256": "s1"})
    log.add("post.failed", actor="system", account="solo", post="2", data={"state": "failed", "policy_sha256": "s1"})
    retried = log.add("post.retried", actor="bob", account="solo", post="2",
                      data={"state": "scheduled", "policy_sha256": "s1"})
    deleted = log.add("post.deleted", actor="mallory", account="solo", post="1", data={"state": "deleted"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {retried}: bob retried post 2 but is neither its author writing for it nor the owner",
        f"entry {deleted}: mallory deleted post 1 but is neither its author writing for it nor the owner",
    ]


def test_what_goes_out_is_the_current_version(tmp_path: Path) -> None:
    """A co-signed post approved at version 1, then edited to version 2 and logged as still
    scheduled, cannot go out as version 1 (the words it now has were never approved)."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    log.add("post.edited", actor="carol", account="brand", post="1",
            data={"version": 2, "text_hash": log.commit("unapproved words"), "state": "scheduled"})
    claim = _publish(log, "1", "brand", version=1) - 1
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 1 went out at version 1, but its words are at version 2",
        f"entry {claim + 1}: post 1 was published at version 1, but its words are at version 2",
    ]


def _stale_claim_with_a_text_version() -> tuple[SyntheticLog, int, int]:
    """Alice's post, edited to version 2, is claimed sending its first words (their text since
    erased from beside the log) with the version written as text ("1"), then recorded published
    at version 2. The log, the claim's entry and the publication's."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    first = log.words.get("1") or ""
    log.add("post.edited", actor="alice", account="solo", post="1",
            data={"version": 2, "text_hash": log.commit("second words"), "state": "scheduled", "policy_sha256": "s1"})
    sent = log.commit(first, salt=b"fedcba9876543210")
    log.texts[sent] = (log.texts[sent][0], None)  # its text erased: only the version can tell
    claim = log.add("post.publishing", actor="system", account="solo", post="1",
                    data={"attempt": 1, "version": "1", "text_hash": sent})
    out = log.add("post.published", actor="system", account="solo", post="1",
                  data={"remote_id": "r1", "url": "https://example.social/1", "version": 2})
    return log, claim, out


def test_a_claim_whose_version_is_no_number_is_named_as_malformed(tmp_path: Path) -> None:
    """A forged log: a claim of a stale version written as text. Read as no version, the claim
    escaped the check that a claim sends the current version, and the log passed; it is named
    as malformed (and its publication, no claim before it). A claim that gives no version at
    all is not judged by one."""
    log, claim, out = _stale_claim_with_a_text_version()
    found = messages(log.verify(tmp_path / "x.export"))
    assert found == [
        f"entry {claim}: post.publishing has a malformed data.version",
        f"entry {out}: post.published of post 1, which was scheduled: its life does not go that way",
    ], found

    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    log.add("post.publishing", actor="system", account="solo", post="1",
            data={"attempt": 1, "text_hash": log.commit(log.words.get("1") or "")})
    log.add("post.published", actor="system", account="solo", post="1",
            data={"remote_id": "r1", "url": "https://example.social/1", "version": 1})
    assert messages(log.verify(tmp_path / "unversioned.export")) == []


async def test_byline_audit_verify_rejects_a_claim_whose_version_is_no_number(tmp_path: Path) -> None:
    """The real command, on the export of that forged log."""
    log, claim, _ = _stale_claim_with_a_text_version()
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {claim}: post.publishing has a malformed data.version" in said, said


def test_a_revision_is_its_writing_authors_and_only_where_words_go_out_at_once(tmp_path: Path) -> None:
    """``post.revised`` (new words for a published post) is replayed: by its author while they
    write, on an account that sends words out at once; a stranger's, or one on a co-signed
    account, is named."""
    log = SyntheticLog()
    _solo_published(log)
    stranger = log.add("post.revised", actor="mallory", account="solo", post="1",
                       data={"version": 2, "text_hash": log.commit("mallory's"), "state": "published"})
    log.add("post.revised", actor="alice", account="solo", post="1",
            data={"version": 3, "text_hash": log.commit("alice's"), "state": "published"})
    log.policy("brand", COSIGNED, "p1")
    log.submit("2", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "2", "bob")
    _approve(log, "2", "dave", state="scheduled")
    _publish(log, "2", "brand")
    cosigned = log.add("post.revised", actor="carol", account="brand", post="2",
                       data={"version": 2, "text_hash": log.commit("carol's"), "state": "published"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {stranger}: mallory revised post 1 but is not its author writing for solo",
        f"entry {cosigned}: post 2 was revised on brand, whose policy does not send words out at once",
    ]


def test_a_revision_is_judged_by_the_policy_it_was_decided_under(tmp_path: Path) -> None:
    """A revision decided on a direct policy and recorded just after the account turned
    co-signed (the platform had the new words by then) names the policy it was decided under,
    and is judged by it, as any action decided a moment before a change; recorded longer after
    the change than a gateway may take to see it, it is named."""
    log = SyntheticLog()
    _solo_published(log)
    log.policy("solo", {**COSIGNED, "owner": "alice", "writers": ["alice", "bob"]}, "s2", kind="policy.changed")
    log.add("post.revised", actor="alice", account="solo", post="1",
            data={"version": 2, "text_hash": log.commit("alice's"), "state": "published", "policy_sha256": "s1",
                  "policy_changed": "s2"})
    log.wait(600)
    late = log.add("post.revised", actor="alice", account="solo", post="1",
                   data={"version": 3, "text_hash": log.commit("alice's, later"), "state": "published",
                         "policy_sha256": "s1", "policy_changed": "s2"})
    change = late - 2
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {late}: alice revised a post of solo under policy s1, 602 s after entry {change} replaced it: "
        "longer than the 300 s a gateway may take to see a policy change",
    ]


# ---- a revision is in the log before its words can be on the platform ------------------------


def _revising(log: SyntheticLog, words: str, *, version: int = 2, actor: str = "alice", sha: str = "s1") -> int:
    """Alice's new words for post 1, sent to its platform."""
    return log.add("post.revising", actor=actor, account="solo", post="1", data={
        "version": version, "text_hash": log.commit(words), "state": "published", "remote_id": "r1",
        "content_sha256": None, "policy_sha256": sha})


def _revised(log: SyntheticLog, words: str, *, version: int = 2, **extra: Any) -> int:
    """Alice's new words for post 1, recorded."""
    return log.add("post.revised", actor="alice", account="solo", post="1", data={
        "version": version, "text_hash": log.commit(words), "state": "published", "remote_id": "r1",
        "content_sha256": None, "policy_sha256": "s1", **extra})


def _revision_failed(log: SyntheticLog, *, version: int = 2, actor: str = "system") -> int:
    return log.add("post.revision_failed", actor=actor, account="solo", post="1", data={
        "version": version, "state": "published", "remote_id": "r1",
        "error": "the platform did not take the edit (HTTP 422)"})


def test_a_revision_sent_then_recorded_or_failed_passes(tmp_path: Path) -> None:
    """The honest gateway's revisions: each sent (``post.revising``), then recorded, by the
    author's request or settled after a crash (``recovered``), or failed, the platform showing
    the words recorded before; then the post is deleted."""
    log = SyntheticLog()
    _solo_published(log)
    _revising(log, "Launch day, fixed")
    _revised(log, "Launch day, fixed")
    _revising(log, "Launch day, fixed again", version=3)
    _revision_failed(log, version=3)
    _revising(log, "Launch day, fixed at last", version=3)
    _revised(log, "Launch day, fixed at last", version=3, recovered=True)
    log.add("post.deleted", actor="alice", account="solo", post="1", data={"state": "deleted", "remote_id": "r1"})
    assert messages(log.verify(tmp_path / "x.export")) == []


def test_a_revision_recorded_other_than_it_was_sent_is_named(tmp_path: Path) -> None:
    """A gateway that sends one revision and records another: other words, another version,
    other media or options. Each is named against the entry that sent it."""
    log = SyntheticLog()
    _solo_published(log)
    sent = _revising(log, "Launch day, fixed")
    words = _revised(log, "Launch day, and buy our coin")
    sent_too = _revising(log, "Launch day, fixed again", version=3)
    version = _revised(log, "Launch day, fixed again", version=4)
    sent_last = log.add("post.revising", actor="alice", account="solo", post="1", data={
        "version": 5, "text_hash": log.commit("Launch day, with a picture"), "state": "published",
        "content_sha256": "a" * 64, "policy_sha256": "s1"})
    content = _revised(log, "Launch day, with a picture", version=5, content_sha256="b" * 64)
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {words}: post.revised of post 1 records other words than entry {sent} sent to its platform",
        f"entry {version}: post.revised of post 1 records version 4, but entry {sent_too} sent version 3 to its "
        "platform",
        f"entry {content}: post.revised of post 1 records other media or options than entry {sent_last} sent to "
        "its platform",
    ]


def test_a_revision_the_log_did_not_hold_first_is_named(tmp_path: Path) -> None:
    """Once the log holds a ``post.revising``, a revision recorded without one is named: its
    words were on the platform before the log held them. Within the grace after the first (an
    earlier replica of a rolling upgrade), it passes."""
    log = SyntheticLog()
    _solo_published(log)
    _revised(log, "before revisions were announced")  # an earlier Byline's: no post.revising anywhere yet
    _revising(log, "Launch day, fixed", version=3)
    _revised(log, "Launch day, fixed", version=3)
    _revised(log, "an earlier replica's", version=4)
    log.wait(POLICY_GRACE_SECONDS)
    unsent = _revised(log, "Launch day, unannounced", version=5)
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {unsent}: post.revised of post 1 follows no post.revising: its words were on the platform "
        "before the log held them",
    ]


def test_a_change_while_a_revision_is_unsettled_or_a_failure_not_of_it_is_named(tmp_path: Path) -> None:
    """A second revision, or a deletion, sent while one is on its way is named (the gateway
    holds the post for one change at a time); so is a failure by anyone but the gateway, of no
    revision sent, or of another version; and a revision sent by someone who may not revise."""
    log = SyntheticLog()
    _solo_published(log)
    first = _revising(log, "Launch day, A")
    second = _revising(log, "Launch day, B", version=3)
    # Saying the post is still published, as no deletion does (named too), it goes on to be revised.
    deleted_while = log.add("post.deleted", actor="alice", account="solo", post="1",
                            data={"state": "published", "remote_id": "r1"})
    none_open = _revision_failed(log, version=3)
    _revising(log, "Launch day, C", version=3)
    other_version = _revision_failed(log, version=4)
    _revising(log, "Launch day, D", version=3)
    by_alice = _revision_failed(log, version=3, actor="alice")
    stranger = _revising(log, "mallory's", version=3, actor="mallory")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {second}: post.revising of post 1 while the revision entry {first} sent to its platform was not "
        "settled: a published post's changes reach the platform one at a time, each recorded before the next",
        f"entry {deleted_while}: post.deleted of post 1 while the revision entry {second} sent to its platform "
        "was not settled: a published post's changes reach the platform one at a time, each recorded before "
        "the next",
        f"entry {deleted_while}: post.deleted of post 1, which was published, says it is published: its life "
        "takes it to deleted",
        f"entry {none_open}: post.revision_failed of post 1 at version 3, but no revision of it was sent to its "
        "platform",
        f"entry {other_version}: post.revision_failed of post 1 at version 4, but entry {other_version - 1} sent "
        "version 3",
        f"entry {by_alice}: alice recorded that a revision of post 1 failed: only the gateway does",
        f"entry {stranger}: mallory revised post 1 but is not its author writing for solo",
    ]


_REVISIONS: list[Fact] = [
    ("policy.loaded", "policy-file", "solo", None, ("s1", DIRECT, None)),
    ("post.submitted", "alice", "solo", "1", (1, "scheduled", (), 0, "s1")),
    ("post.publishing", "system", "solo", "1", ("s1", 1)),
    ("post.published", "system", "solo", "1", (1,)),
    ("post.revising", "alice", "solo", "1", (2, "s1")),
    ("post.revised", "alice", "solo", "1", (2, "s1")),
    ("post.revised", "alice", "solo", "1", (3, "s1")),
]
"""A revision sent and recorded, then one recorded a second later that was never sent."""


@pytest.mark.parametrize("untimed", [4, 6], ids=["first post.revising", "post.revised"])
def test_no_grace_for_a_revision_never_sent_where_a_time_is_unknown(untimed: int) -> None:
    """The grace for recording a revision that no ``post.revising`` sent runs from the time of
    the log's first ``post.revising`` to the revision's own: where either time is unknown (the
    verifier names the entry's ts), one recorded a second later is named; timed, it passes."""
    flat = [part for offset, fact in enumerate(_REVISIONS) for part in (offset, *fact)]
    times = [_stamps(second) for second in range(len(_REVISIONS))]
    timed = Replay()
    timed.feed_flat(10, flat, stamps="".join(times))
    assert timed.findings == []
    times[untimed] = " " * len(times[untimed])
    untimed_run = Replay()
    untimed_run.feed_flat(10, flat, stamps="".join(times))
    assert untimed_run.findings == [
        (16, "post.revised of post 1 follows no post.revising: its words were on the platform before the log "
             "held them"),
    ]


@pytest.mark.parametrize("kind", ["post.revising", "post.revised", "post.revision_failed"])
def test_a_revision_entry_that_names_no_version_is_named(tmp_path: Path, kind: str) -> None:
    """A revision sent, recorded or failed is matched with the rest of its revision by version:
    an entry that names none cannot be, and is named as malformed."""
    log = SyntheticLog()
    _solo_published(log)
    data: dict[str, Any] = {"state": "published", "remote_id": "r1"} | (
        {"error": "the platform did not take the edit (HTTP 422)"} if kind == "post.revision_failed"
        else {"text_hash": log.commit("Launch day, fixed"), "content_sha256": None, "policy_sha256": "s1"})
    bad = log.add(kind, actor="system" if kind == "post.revision_failed" else "alice", account="solo", post="1",
                  data=data)
    assert messages(log.verify(tmp_path / "x.export")) == [f"entry {bad}: {kind} lacks data.version"]


async def test_byline_audit_verify_rejects_a_revision_recorded_other_than_sent(tmp_path: Path) -> None:
    """The real command, on an export whose gateway sent one revision to the platform and
    recorded other words."""
    log = SyntheticLog()
    _solo_published(log)
    _revising(log, "Launch day, fixed")
    _revised(log, "Launch day, and buy our coin")
    said = await _named_by_the_command(log, tmp_path)
    assert "records other words than entry" in said, said


# ---- what went out is what was written and approved ----------------------------------------

SIGNED = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "dave"], required=1,
                 tier="co-signed", disclosure="—{author}")


def _approved_post(log: SyntheticLog, words: str = "Our results are in") -> None:
    """Carol writes post 1 on the co-signed brand, bob approves it."""
    log.policy("brand", SIGNED, "p1")
    log.add("post.submitted", actor="carol", account="brand", post="1", data={
        "version": 1, "text_hash": log.commit(words), "state": "held", "approvers": ["bob", "dave"],
        "required": 1, "policy_sha256": "p1",
    })
    log.add("post.approved", actor="bob", account="brand", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1"})


@pytest.mark.parametrize("sent", [
    "Buy our coin today\n\n—carol",  # other words under the right credit
    "Our results are in",  # the disclosure line dropped: carol's words under the owner's name
    "Our results are in\n\n—alice",  # credited to someone else
    "Our results are in\n\n—carol\nBuy our coin today",  # words added after the line
])
def test_words_out_that_are_not_the_approved_words_with_their_disclosure_are_named(
    tmp_path: Path, sent: str
) -> None:
    """A claim commits to what it sends: anything but the approved words with the policy's
    disclosure line naming who wrote them is named."""
    log = SyntheticLog()
    _approved_post(log)
    claim = _publish(log, "1", "brand", text=sent) - 1
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 1 sent out other words than its version 1 (written by carol)"
    ]


A_CAT = "a" * 64
A_COIN = "c" * 64


class _Leaving(SyntheticLog):
    """A synthetic log whose entries of one type leave one key of their data out."""

    def __init__(self, left_out: tuple[str, str] | None) -> None:
        super().__init__()
        self._left_out = left_out
        self.leave_after = POLICY_GRACE_SECONDS
        """Seconds before the entry that leaves its key out: past the grace of a rolling upgrade."""

    def add(self, type: str, *, actor: str, account: str | None = None, post: str | None = None,
            data: dict[str, Any] | None = None) -> int:
        if self._left_out is not None and type == self._left_out[0] and data is not None:
            data = {k: v for k, v in data.items() if k != self._left_out[1]}
            self.wait(self.leave_after)
        return super().add(type, actor=actor, account=account, post=post, data=data)


def _carrying(
    submitted: str | None, edited: str | None, claimed: str | None, *, keys: bool = True,
    left_out: tuple[str, str] | None = None, log: SyntheticLog | None = None,
) -> SyntheticLog:
    """Carol writes post 1 on the co-signed brand recording ``submitted`` as what it carries
    besides its words (``content_sha256``), then edits it to ``edited`` (when not None); bob
    approves it; a claim records ``claimed``. ``keys``: the entries record it at all (a log
    written before they did records nothing). ``left_out``: an entry type and a key of its
    data that entry leaves out (as a rogue gateway could write it)."""
    def content(value: str | None) -> dict[str, str | None]:
        return {"content_sha256": value or None} if keys else {}

    log = log if log is not None else _Leaving(left_out)
    log.policy("brand", SIGNED, "p1")
    log.add("post.submitted", actor="carol", account="brand", post="1", data={
        "version": 1, "text_hash": log.commit("Our mascot"), "state": "held", "approvers": ["bob", "dave"],
        "required": 1, "policy_sha256": "p1", **content(submitted),
    })
    version = 1
    if edited is not None:
        version = 2
        log.add("post.edited", actor="carol", account="brand", post="1", data={
            "version": 2, "text_hash": log.commit("Our mascot"), "state": "held", "policy_sha256": "p1",
            **content(edited),
        })
    log.add("post.approved", actor="bob", account="brand", post="1",
            data={"version": version, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1"})
    log.add("post.publishing", actor="system", account="brand", post="1", data={
        "attempt": 1, "version": version, "text_hash": log.commit("Our mascot\n\n—carol"), **content(claimed),
    })
    log.add("post.published", actor="system", account="brand", post="1",
            data={"remote_id": "r1", "url": "https://example.social/1", "version": version})
    return log


@pytest.mark.parametrize(("submitted", "edited", "claimed"), [
    (A_CAT, None, A_COIN),  # an upload or its alt text changed in the database after approval
    (None, None, A_COIN),  # media that nobody approved, added to a post of words alone
    (A_CAT, None, None),  # the approved image dropped
    (A_COIN, A_CAT, A_COIN),  # the content of the version before the last edit
])
def test_a_claim_carrying_other_media_or_options_than_its_version_is_named(
    tmp_path: Path, submitted: str | None, edited: str | None, claimed: str | None,
) -> None:
    """Before: a claim said nothing of what it sent besides words, and an image or alt text
    swapped in the database after the approvers saw the post went out and the log verified."""
    log = _carrying(submitted, edited, claimed)
    claim = len(log.entries) - 2
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 1 sent out other media or options than its version {2 if edited else 1} (an upload, "
        "its alt text, the content warning or visibility changed after it was written and approved)"
    ]


@pytest.mark.parametrize(("submitted", "edited", "claimed", "keys"), [
    (A_CAT, None, A_CAT, True),
    (None, None, None, True),
    (A_COIN, A_CAT, A_CAT, True),  # the edit's content is what the approval was for
    (A_CAT, None, A_COIN, False),  # a log from before entries recorded it: nothing to compare
])
def test_a_claim_carrying_its_versions_content_passes(
    tmp_path: Path, submitted: str | None, edited: str | None, claimed: str | None, keys: bool,
) -> None:
    assert messages(_carrying(submitted, edited, claimed, keys=keys).verify(tmp_path / "ok.export")) == []


_LEFT_OUT = ("of post 1 does not record what it carries besides its words (data.content_sha256), though entries "
             "before it did: what went out cannot be compared with what was approved")
"""How an entry of post 1 that leaves out what it carries is named, after its entry and kind."""


def test_a_claim_that_leaves_out_what_it_carries_is_named(tmp_path: Path) -> None:
    """Before: a rogue gateway's claim of an approved post with an image swapped after approval
    left ``content_sha256`` out, and the log verified: nothing compared what went out with what
    was approved. Once the log records what posts carry, every later version and claim must."""
    log = _carrying(A_CAT, None, A_COIN, left_out=("post.publishing", "content_sha256"))
    claim = len(log.entries) - 2
    assert messages(log.verify(tmp_path / "x.export")) == [f"entry {claim}: post.publishing {_LEFT_OUT}"]


def test_an_edit_that_leaves_out_what_it_carries_is_named(tmp_path: Path) -> None:
    """Before: an edit recording nothing of what the post carries made its claim's content go
    unchecked, whatever image or alt text it then sent."""
    log = _carrying(A_CAT, A_CAT, A_COIN, left_out=("post.edited", "content_sha256"))
    assert messages(log.verify(tmp_path / "x.export")) == [f"entry 2: post.edited {_LEFT_OUT}"]


@pytest.mark.parametrize(("after", "named"), [(10, False), (290, False), (310, True)])
def test_a_replica_of_the_earlier_byline_may_leave_it_out_for_the_grace(
    tmp_path: Path, after: int, named: bool
) -> None:
    """A rolling upgrade runs a replica of the earlier Byline, which records nothing of what
    posts carry, beside the first new one for a while: its claim just after the first entry
    that recorded it passes; one more than the grace (300 s) later is named."""
    log = _Leaving(("post.publishing", "content_sha256"))
    log.leave_after = after
    built = _carrying(A_CAT, None, A_CAT, log=log)
    claim = len(built.entries) - 2
    expected = [f"entry {claim}: post.publishing {_LEFT_OUT}"] if named else []
    assert messages(built.verify(tmp_path / "x.export")) == expected


def test_a_claim_recording_its_content_but_no_words_is_named(tmp_path: Path) -> None:
    """Before: a claim without ``text_hash`` sent words nobody approved, and its words went
    unchecked; a claim commits to the words it sends as to what else it carries."""
    log = _carrying(A_CAT, None, A_CAT, left_out=("post.publishing", "text_hash"))
    claim = len(log.entries) - 2
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: records what the post carries besides its words (data.content_sha256) but "
        "commits to no words (data.text_hash)"
    ]


@pytest.mark.parametrize("grace", [POLICY_GRACE_SECONDS, 0.0])
def test_a_malformed_content_hash_is_named(tmp_path: Path, grace: float) -> None:
    """Named once, for what it is, and not as left out as well: also where the claim comes past
    the grace a replica of the earlier Byline has to leave it out (with no grace at all)."""
    log = _carrying(A_CAT, None, "not a hash")
    claim = len(log.entries) - 2
    assert messages(log.verify(tmp_path / "x.export", policy_grace=grace)) == [
        f"entry {claim}: has a malformed data.content_sha256"
    ]


def test_a_malformed_content_hash_still_records_that_posts_carry_it(tmp_path: Path) -> None:
    """The first entry to record what a post carries, though malformed, records it: a claim past
    the grace that then leaves it out is named, not let through as from a log before it."""
    log = _carrying("not a hash", None, A_CAT, left_out=("post.publishing", "content_sha256"))
    claim = len(log.entries) - 2
    assert messages(log.verify(tmp_path / "x.export")) == [
        "entry 1: has a malformed data.content_sha256",
        f"entry {claim}: post.publishing {_LEFT_OUT}",
    ]


def test_the_disclosure_names_the_editors_in_the_order_they_edited(tmp_path: Path) -> None:
    """Alice writes, dave then bob edit (each an approver), the other approves: the words go out
    as the last edit left them, crediting alice, dave and bob in that order; bob before dave is named."""
    def edited(order: str) -> tuple[SyntheticLog, int]:
        log = SyntheticLog()
        log.policy("brand", summary(owner="owner", writers=["alice"], approvers=["bob", "dave", "erin"], required=1,
                                    tier="co-signed", disclosure="(by {author})"), "p1")
        log.add("post.submitted", actor="alice", account="brand", post="1", data={
            "version": 1, "text_hash": log.commit("draft"), "state": "held", "approvers": ["bob", "dave", "erin"],
            "required": 1, "policy_sha256": "p1",
        })
        for version, who in ((2, "dave"), (3, "bob")):
            log.add("post.edited", actor=who, account="brand", post="1", data={
                "version": version, "text_hash": log.commit(f"draft v{version}"), "state": "held",
                "policy_sha256": "p1",
            })
        log.add("post.approved", actor="erin", account="brand", post="1",
                data={"version": 3, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1"})
        return log, _publish(log, "1", "brand", version=3, text=f"draft v3\n\n(by alice, edited by {order})") - 1

    log, _ = edited("dave and bob")
    assert messages(log.verify(tmp_path / "ok.export")) == []
    log, claim = edited("bob and dave")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 1 sent out other words than its version 3 (written by alice and others)"
    ]


def test_the_owners_own_words_and_an_announcement_go_out_as_written(tmp_path: Path) -> None:
    """No disclosure line where the owner alone wrote: one added is named as well."""
    log = SyntheticLog()
    log.policy("brand", SIGNED, "p1")
    log.submit("1", author="alice", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    _approve(log, "1", "bob", state="scheduled")
    _publish(log, "1", "brand")
    log.submit("2", author="alice", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    _approve(log, "2", "bob", state="scheduled")
    claim = _publish(log, "2", "brand", text="text of 2\n\n—alice") - 1
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 2 sent out other words than its version 1 (written by alice)"
    ]


def test_a_policy_recorded_before_it_said_its_disclosure_is_held_to_the_words(tmp_path: Path) -> None:
    """Summaries recorded before they carried ``disclosure`` cannot rebuild the line: the words
    must still lead what went out, followed by nothing or by a line after a blank one."""
    old = {k: v for k, v in SIGNED.items() if k != "disclosure"}

    def sent(text: str) -> list[str]:
        log = SyntheticLog()
        log.policy("brand", old, "p1")
        log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
        _approve(log, "1", "bob", state="scheduled")
        _publish(log, "1", "brand", text=text)
        return messages(log.verify(tmp_path / "x.export"))

    assert sent("text of 1\n\n—carol") == []
    assert sent("text of 1") == []
    assert sent("text of 2\n\n—carol") == ["entry 3: post 1 sent out other words than its version 1 (written by carol)"]


def test_a_claim_again_sends_what_the_first_did_though_the_disclosure_changed(tmp_path: Path) -> None:
    """A lease ran out and the post is claimed again after the policy's disclosure changed: the
    gateway re-sends the words the first claim committed to (the platform may have them already),
    which is no forgery."""
    log = SyntheticLog()
    _approved_post(log)
    log.add("post.publishing", actor="system", account="brand", post="1",
            data={"attempt": 1, "version": 1, "text_hash": log.commit("Our results are in\n\n—carol"),
                  "policy_sha256": "p1"})
    log.policy("brand", {**SIGNED, "disclosure": "(posted by {author})"}, "p2", kind="policy.changed")
    _publish(log, "1", "brand", text="Our results are in\n\n—carol")
    assert messages(log.verify(tmp_path / "ok.export")) == []


# ---- approvals count for the disclosure line they were given under ---------------------------

RELINED = SIGNED | {"disclosure": "Posted by {author}"}
"""SIGNED with its disclosure line in other words."""


def _sent_under_a_new_line(
    *, approved_again: bool, old: bool = False, bound: bool = True,
) -> tuple[SyntheticLog, int]:
    """Bob approves carol's post under "—carol"; the admin changes the line; the post is claimed
    under the new policy with the new line (after it was held again and bob approved it anew,
    where ``approved_again``; ``old``: both summaries recorded before they said their
    disclosure; not ``bound``: approvals of an earlier Byline, which kept them through a change
    of the line and did not say they were bound to its text). The log, and the index of the claim."""
    log = SyntheticLog()
    first, then = (SIGNED, RELINED) if not old else tuple(
        {k: v for k, v in p.items() if k != "disclosure"} for p in (SIGNED, RELINED))
    marked = {"text_bound": True} if bound else {}
    log.policy("brand", first, "p1")
    log.add("post.submitted", actor="carol", account="brand", post="1", data={
        "version": 1, "text_hash": log.commit("Our results are in"), "state": "held", "approvers": ["bob", "dave"],
        "required": 1, "policy_sha256": "p1",
    })
    log.add("post.approved", actor="bob", account="brand", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1", **marked})
    log.policy("brand", then, "p2", kind="policy.changed")
    version = 1
    if approved_again:
        _redecide(log, "1", "brand", version=2, approvers=["bob", "dave"], required=1, sha="p2",
                  cause="disclosure_changed")
        log.add("post.approved", actor="bob", account="brand", post="1",
                data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p2", **marked})
        version = 2
    claim = _claimed(log, sha="p2", version=version, text="Our results are in\n\nPosted by carol")
    _out(log, version=version)
    return log, claim


LINE_CHANGED = ("entry {claim}: post 1 went out on brand with another disclosure line than its approvals were given "
                "under: 0 of them were given for the words it sent, where it needed 1")


def test_a_post_sent_with_another_disclosure_line_than_its_approvals_were_given_under_is_named(
    tmp_path: Path,
) -> None:
    """Sent with the new line on bob's approval of the old one: named (bob read other words than
    went out). Held again and approved anew under the new line: passes. Logs of an earlier
    Byline pass: summaries that did not say their disclosure cannot rebuild the line, and
    approvals that did not say they were bound to their text were kept through a change of it."""
    log, claim = _sent_under_a_new_line(approved_again=False)
    assert messages(log.verify(tmp_path / "x.export")) == [LINE_CHANGED.format(claim=claim)]
    log, _ = _sent_under_a_new_line(approved_again=True)
    assert messages(log.verify(tmp_path / "ok.export")) == []
    log, _ = _sent_under_a_new_line(approved_again=False, old=True)
    assert messages(log.verify(tmp_path / "old.export")) == []
    log, _ = _sent_under_a_new_line(approved_again=False, bound=False)
    assert messages(log.verify(tmp_path / "unbound.export")) == []


def _bound_elsewhere_then_unbound(log: SyntheticLog, *, wait: float) -> int:
    """Dave approves post 2 saying his approval is bound to its text; ``wait`` seconds later bob
    approves post 1 without saying so, under "—carol"; the line changes and post 1 goes out with
    the new line. The index of its claim."""
    log.policy("brand", SIGNED, "p1")
    for post in ("1", "2"):
        log.submit(post, author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1,
                   sha="p1")
    log.add("post.approved", actor="dave", account="brand", post="2", data={
        "version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1", "text_bound": True})
    log.wait(wait)
    log.add("post.approved", actor="bob", account="brand", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1"})
    log.policy("brand", RELINED, "p2", kind="policy.changed")
    return _claimed(log, sha="p2", text="text of 1\n\nPosted by carol")


def test_an_approval_that_leaves_out_its_binding_after_the_grace_is_held_to_its_text(tmp_path: Path) -> None:
    """Once the log holds an approval bound to its text, one that leaves it out is held to its
    text all the same past the grace (a rolling upgrade's earlier replicas): a gateway cannot
    escape the check by not saying it."""
    log = SyntheticLog()
    claim = _bound_elsewhere_then_unbound(log, wait=POLICY_GRACE_SECONDS + 60)
    _out(log)
    assert messages(log.verify(tmp_path / "late.export")) == [LINE_CHANGED.format(claim=claim)]
    log = SyntheticLog()
    _bound_elsewhere_then_unbound(log, wait=0)
    _out(log)
    assert messages(log.verify(tmp_path / "grace.export")) == []


def test_an_approval_that_names_no_policy_is_taken_as_given_for_what_went_out(tmp_path: Path) -> None:
    """An earlier Byline's approval named no policy: the line it was given under is unknown, and
    the claim under the new line is not named for it."""
    log = SyntheticLog()
    log.policy("brand", SIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    log.add("post.approved", actor="bob", account="brand", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "text_bound": True})
    log.policy("brand", RELINED, "p2", kind="policy.changed")
    _claimed(log, sha="p2", text="text of 1\n\nPosted by carol")
    _out(log)
    assert messages(log.verify(tmp_path / "ok.export")) == []


@pytest.mark.parametrize("bound", [False, "yes", 1])
def test_a_malformed_text_bound_is_named(tmp_path: Path, bound: object) -> None:
    """data.text_bound is true or absent: anything else is named (read as absent, an approval of
    an earlier line would let the new one out)."""
    log = SyntheticLog()
    log.policy("brand", SIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    approval = log.add("post.approved", actor="bob", account="brand", post="1", data={
        "version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1", "text_bound": bound})
    assert f"entry {approval}: post.approved has a malformed data.text_bound" in messages(
        log.verify(tmp_path / "x.export"))


async def test_byline_audit_verify_rejects_a_post_sent_with_a_disclosure_line_its_approvals_were_not_given_under(
    tmp_path: Path,
) -> None:
    """The real command, on an export whose post went out with the new disclosure line on an
    approval given under the old one."""
    log, claim = _sent_under_a_new_line(approved_again=False)
    said = await _named_by_the_command(log, tmp_path)
    assert LINE_CHANGED.format(claim=claim) in said, said


PAIRED = SIGNED | {"required": 2}
"""SIGNED asking both its approvers, bob and dave."""


def _approved_again(*, sha: str, again: str, dave: bool = True) -> tuple[SyntheticLog, int]:
    """Bob approves carol's post (held for two) under ``p1``, "—carol"; the policy becomes
    ``sha`` without the post held again; dave approves (unless not ``dave``), and bob approves
    again under ``again``, the entry saying it releases the post; it goes out under ``sha``.
    The log, and the index of bob's approval again."""
    log = SyntheticLog()
    log.policy("brand", PAIRED, "p1")
    log.add("post.submitted", actor="carol", account="brand", post="1", data={
        "version": 1, "text_hash": log.commit("Our results are in"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1",
    })
    bound = {"required": 2, "text_bound": True}
    log.add("post.approved", actor="bob", account="brand", post="1",
            data={"version": 1, "count": 1, "state": "held", "policy_sha256": "p1", **bound})
    if sha != "p1":
        changed = PAIRED | {"disclosure": "Posted by {author}"} if sha == "p2" else PAIRED | {"delay": "2m"}
        log.policy("brand", changed, sha, kind="policy.changed")
    if dave:
        log.add("post.approved", actor="dave", account="brand", post="1",
                data={"version": 1, "count": 1, "state": "held", "policy_sha256": sha, **bound})
    index = log.add("post.approved", actor="bob", account="brand", post="1",
                    data={"version": 1, "count": 2, "state": "scheduled", "policy_sha256": again, **bound})
    line = "Posted by carol" if sha == "p2" else "—carol"
    _claimed(log, sha=sha, text=f"Our results are in\n\n{line}")
    _out(log)
    return log, index


TWICE = ("entry {index}: bob approved post 1 (version 1) again, for the words they approved before: an approval "
         "counts once")


def test_an_approval_again_of_the_same_words_is_named(tmp_path: Path) -> None:
    """Bob's approval of words with the line before a change that held nothing again counted for
    none, and his approval again of the words with the new line is one of the two the post
    needs: passes. A rogue gateway's approval again by bob, which says it releases the post
    that only he approved, under the same policy, or under a changed one whose line sends the
    same words, is his one approval counted twice: named where it is given, and so is the
    publication. So is one beside dave's (an approval counts once, whatever came after it)."""
    log, _ = _approved_again(sha="p2", again="p2")
    assert messages(log.verify(tmp_path / "ok.export")) == []
    for sha in ("p1", "p3"):
        log, index = _approved_again(sha=sha, again=sha, dave=False)
        assert messages(log.verify(tmp_path / f"{sha}.export")) == [
            TWICE.format(index=index),
            f"entry {index + 2}: post 1 was published (version 1) with 1 of the 2 approvals it needed",
        ]
        log, index = _approved_again(sha=sha, again=sha)
        assert messages(log.verify(tmp_path / f"{sha}-dave.export")) == [TWICE.format(index=index)]


async def test_byline_audit_verify_rejects_an_approval_counted_twice(tmp_path: Path) -> None:
    """The real command, on an export where bob's second approval of the same words released
    a post that needed two approvers."""
    log, index = _approved_again(sha="p1", again="p1", dave=False)
    said = await _named_by_the_command(log, tmp_path)
    assert TWICE.format(index=index) in said, said


# ---- a claim recovered after the policy changed -------------------------------------------

MOVED_ON = SIGNED | {"approvers": ["dave", "erin"]}
"""SIGNED with bob replaced by erin among the approvers: bob's approval no longer counts."""


def _claimed(
    log: SyntheticLog, *, sha: str, version: int = 1, looks_only: str | None = None,
    text: str = "Our results are in\n\n—carol", key: Any = None,
) -> int:
    """A claim of ``_approved_post``'s post sending its words, or ``text`` (``looks_only``: a
    recovered claim that only looks for it on its platform, as the gateway records one the
    policy holds back), with the idempotency ``key`` it names, if any."""
    data: dict[str, Any] = {"attempt": 1, "version": version, "text_hash": log.commit(text), "policy_sha256": sha}
    if looks_only is not None:
        data["looks_only"] = looks_only
    if key is not None:
        data["idempotency_key"] = key
    return log.add("post.publishing", actor="system", account="brand", post="1", data=data)


def _out(log: SyntheticLog, *, version: int = 1, found: bool = False) -> int:
    """Post 1 recorded published (``found``: found on its platform by a recovered claim)."""
    data: dict[str, Any] = {"remote_id": "r1", "url": "https://example.social/1", "version": version}
    if found:
        data["found"] = True
    return log.add("post.published", actor="system", account="brand", post="1", data=data)


def _recovered_after_bob_was_replaced(looks_only: str | None, *, found: bool) -> tuple[SyntheticLog, int]:
    """Bob approves carol's post and its publisher claims it and dies; bob is replaced by erin
    among the approvers; the post is claimed again under the new policy and recorded published.
    The log, and the index of the claim again."""
    log = SyntheticLog()
    _approved_post(log)
    _claimed(log, sha="p1")
    log.policy("brand", MOVED_ON, "p2", kind="policy.changed")
    claim = _claimed(log, sha="p2", looks_only=looks_only)
    _out(log, found=found)
    return log, claim


def test_a_claim_recovered_after_an_approver_was_replaced_does_not_send_the_post(tmp_path: Path) -> None:
    """A claim again under the new policy that sends carol's post on bob's approval alone is
    named, as a first claim would be (before, a claim again was let send whatever the first
    would have); one that only looks for it is named if the post then went out without being
    found there, and passes when it was found (out already: it cannot be taken back)."""
    log, claim = _recovered_after_bob_was_replaced(None, found=False)
    assert messages(log.verify(tmp_path / "sent.export")) == [
        f"entry {claim}: post 1 went out on co-signed brand with 0 approvals from its approvers, "
        "where its policy asks for 1"
    ]
    log, claim = _recovered_after_bob_was_replaced("policy_changed", found=False)
    assert messages(log.verify(tmp_path / "looked.export")) == [
        f"entry {claim + 1}: post 1 was published after entry {claim} claimed it again only to look for it on its "
        "platform, and not found there (data.found): the policy in force would not let it go out"
    ]
    log, _ = _recovered_after_bob_was_replaced("policy_changed", found=True)
    assert messages(log.verify(tmp_path / "found.export")) == []


async def test_byline_audit_verify_rejects_a_recovered_claim_sent_without_the_approvals_asked_now(
    tmp_path: Path,
) -> None:
    """The real command, on an export whose post, claimed again after its approver was replaced,
    went out on the replaced approver's approval."""
    log, claim = _recovered_after_bob_was_replaced(None, found=False)
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {claim}: post 1 went out on co-signed brand with 0 approvals from its approvers" in said, said


def test_only_a_claim_recovered_to_look_holds_its_post_again_unsent(tmp_path: Path) -> None:
    """The honest recovery: claimed again only to look, not found, held again for dave or erin
    (decided again under the policy in force), approved by dave, sent: passes. A post claimed
    (sent) and then held again without a claim that only looked is named (it would go out a
    second time), and so is a first claim that says it only looks (no claim before sent it)."""
    log = SyntheticLog()
    _approved_post(log)
    _claimed(log, sha="p1")
    log.policy("brand", MOVED_ON, "p2", kind="policy.changed")
    _claimed(log, sha="p2", looks_only="policy_changed")
    _redecide(log, "1", "brand", version=2, approvers=["dave", "erin"], required=1, sha="p2", cause="policy_changed")
    log.add("post.approved", actor="dave", account="brand", post="1",
            data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p2"})
    _claimed(log, sha="p2", version=2)
    _out(log, version=2)
    assert messages(log.verify(tmp_path / "ok.export")) == []

    log = SyntheticLog()
    _approved_post(log)
    _claimed(log, sha="p1")
    log.policy("brand", MOVED_ON, "p2", kind="policy.changed")
    held = _redecide(log, "1", "brand", version=2, approvers=["dave", "erin"], required=1, sha="p2",
                     cause="policy_changed")
    assert messages(log.verify(tmp_path / "held.export")) == [
        f"entry {held}: post.redecided of post 1, which was publishing, and not claimed again to be looked for "
        "only (data.looks_only): a post sent out must be recorded as it went"
    ]

    log = SyntheticLog()
    _approved_post(log)
    first = _claimed(log, sha="p1", looks_only="policy_changed")
    assert messages(log.verify(tmp_path / "first.export")) == [
        f"entry {first}: post 1 was claimed to be looked for only (data.looks_only), but no claim before had sent it"
    ]


ANEW = MOVED_ON | {"disclosure": "Written by {author}"}
"""MOVED_ON, its disclosure line in other words: the same words go out with another line."""


def _approved_again_after_the_line_changed(
    log: SyntheticLog, *, edited: bool, key: str | None = None,
) -> tuple[int, int]:
    """carol's post claimed (sent, and not recorded out); the policy asks dave or erin, with
    another line; claimed again only to be looked for, not found, and held as version 2
    (``edited``: carol then edits its words, version 3); dave approves. Both claims name
    ``key``, if given. The first claim's entry, and the version approved."""
    _approved_post(log)
    first = _claimed(log, sha="p1", key=key)
    log.policy("brand", ANEW, "p2", kind="policy.changed")
    _claimed(log, sha="p2", looks_only="policy_changed", key=key)
    _redecide(log, "1", "brand", version=2, approvers=["dave", "erin"], required=1, sha="p2", cause="policy_changed")
    version = 3 if edited else 2
    if edited:
        log.add("post.edited", actor="carol", account="brand", post="1", data={
            "version": 3, "text_hash": log.commit("Our results are in, all of them"), "state": "held",
            "policy_sha256": "p2"})
    log.add("post.approved", actor="dave", account="brand", post="1",
            data={"version": version, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p2"})
    return first, version


SECOND_COPY = ("entry {claim}: post 1 was claimed again with other words than entry {first} sent, its own words and "
               "what it carries unchanged since, and that send's outcome open: had the platform taken it, this made "
               "a second copy (a claim again sends what it sent)")


@pytest.mark.parametrize(("edited", "sent", "named"), [
    pytest.param(False, "Our results are in\n\n—carol", None, id="the-same-post-sends-what-it-sent"),
    pytest.param(False, "Our results are in\n\nWritten by carol", SECOND_COPY, id="the-same-post-with-the-new-line"),
    pytest.param(True, "Our results are in, all of them\n\nWritten by carol", None, id="an-edit-sends-its-words"),
    pytest.param(True, "Our results are in\n\n—carol",
                 "entry {claim}: post 1 sent out other words than its version 3 (written by carol)",
                 id="an-edit-sends-the-old-words"),
])
def test_a_post_approved_again_sends_what_it_sent_unless_its_words_changed(
    tmp_path: Path, edited: bool, sent: str, named: str | None,
) -> None:
    """A post sent, its outcome open, held and approved again after the disclosure line changed:
    its words unchanged, it sends the words sent before (the platform may have that post), and
    new words with the new line are named, for the second copy they could make (before, they
    passed); edited, it is another post, which sends its new words with the line its policy asks
    (the words sent before are named, where before they passed as a claim again)."""
    log = SyntheticLog()
    first, version = _approved_again_after_the_line_changed(log, edited=edited)
    claim = _claimed(log, sha="p2", version=version, text=sent)
    expected = [] if named is None else [named.format(claim=claim, first=first)]
    assert expected == messages(log.verify(tmp_path / "x.export"))


async def test_byline_audit_verify_rejects_a_post_sent_again_with_the_new_line_under_a_new_key(tmp_path: Path) -> None:
    """The real command, on an export whose post, its first send's outcome open, was approved
    again and claimed with the new disclosure line under its new version's key: a second copy
    on a platform that had taken the first."""
    log = SyntheticLog()
    first, version = _approved_again_after_the_line_changed(log, edited=False)
    claim = log.add("post.publishing", actor="system", account="brand", post="1", data={
        "attempt": 1, "version": version, "idempotency_key": f"byline-1-v{version}", "recovering": False,
        "text_hash": log.commit("Our results are in\n\nWritten by carol"), "policy_sha256": "p2"})
    _out(log, version=version)
    said = await _named_by_the_command(log, tmp_path)
    assert SECOND_COPY.format(claim=claim, first=first) in said, said


def _picture_alone_recovered_after_a_line_came(log: SyntheticLog, sent: str) -> tuple[int, int]:
    """carol's post of no words (a picture alone) on brand with no disclosure line, approved by
    bob and claimed, sending no words under byline-1-v1 (and not recorded out); brand gains the
    line "—{author}"; the claim again after its lease ran out sends ``sent`` under that key, and
    the post is recorded published. The first claim's entry, and the claim again's."""
    log.policy("brand", SIGNED | {"disclosure": None}, "p1")
    log.add("post.submitted", actor="carol", account="brand", post="1", data={
        "version": 1, "text_hash": log.commit(""), "state": "held", "approvers": ["bob", "dave"],
        "required": 1, "policy_sha256": "p1",
    })
    log.add("post.approved", actor="bob", account="brand", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1"})
    first = _claimed(log, sha="p1", text="", key="byline-1-v1")
    log.policy("brand", SIGNED, "p2", kind="policy.changed")
    claim = _claimed(log, sha="p2", text=sent, key="byline-1-v1")
    _out(log)
    return first, claim


@pytest.mark.parametrize(("sent", "named"), [
    pytest.param("", False, id="sends-no-words-again"),
    pytest.param("\n\n—carol", True, id="sends-the-line-added-since"),
])
def test_a_claim_again_of_a_picture_alone_sends_no_words_again(tmp_path: Path, sent: str, named: bool) -> None:
    """A first send of no words at all is a send: its claim again sends no words again, and
    the disclosure line added since is named, for the words recorded that the platform, which
    gave back the first send's post, does not show."""
    log = SyntheticLog()
    first, claim = _picture_alone_recovered_after_a_line_came(log, sent)
    expected = [SECOND_COPY.format(claim=claim, first=first)] if named else []
    assert expected == messages(log.verify(tmp_path / "x.export"))


async def test_byline_audit_verify_rejects_a_picture_alone_claimed_again_with_a_line_added_since(
    tmp_path: Path,
) -> None:
    """The real command, on an export whose post of no words, its first send's outcome open,
    was claimed again with the disclosure line added since: what a gateway that read empty words
    sent as none sent."""
    log = SyntheticLog()
    first, claim = _picture_alone_recovered_after_a_line_came(log, "\n\n—carol")
    said = await _named_by_the_command(log, tmp_path)
    assert SECOND_COPY.format(claim=claim, first=first) in said, said


NEW_KEY = ("entry {claim}: post 1 was claimed again under the idempotency key {key}, where entry {first} sent the "
           "same words and content under byline-1-v1 and that send's outcome is open: had the platform taken it, "
           "this could make a second copy")


def _sent_then_claimed_again(log: SyntheticLog, life: str) -> tuple[int, int]:
    """carol's post, claimed under byline-1-v1, then on its way to a claim again by ``life``:
    ``recovered`` (its lease ran out), ``deferred`` (the platform's answer lost), ``decided``
    (claimed again only to look, not found, held as version 2 and approved), ``edited`` (that,
    and carol's new words as version 3 before the approval), ``failed`` (refused, and retried by
    carol). The first claim's entry, and the version the next claim sends."""
    if life in ("decided", "edited"):
        return _approved_again_after_the_line_changed(log, edited=life == "edited", key="byline-1-v1")
    _approved_post(log)
    first = _claimed(log, sha="p1", key="byline-1-v1")
    if life == "deferred":
        log.add("post.deferred", actor="system", account="brand", post="1",
                data={"state": "scheduled", "error": "the platform did not answer", "attempt": 1})
    elif life == "failed":
        log.add("post.failed", actor="system", account="brand", post="1",
                data={"state": "failed", "error": "refused", "attempt": 1, "policy_sha256": "p1"})
        log.add("post.retried", actor="carol", account="brand", post="1",
                data={"state": "scheduled", "policy_sha256": "p1"})
    return first, 1


@pytest.mark.parametrize(("life", "key", "named"), [
    pytest.param("recovered", "byline-1-v1", False, id="recovered-under-its-key"),
    pytest.param("recovered", "byline-1-v1-again", True, id="recovered-under-a-new-key"),
    pytest.param("deferred", "byline-1-v1", False, id="deferred-under-its-key"),
    pytest.param("deferred", "byline-1-v1-again", True, id="deferred-under-a-new-key"),
    pytest.param("decided", "byline-1-v1", False, id="decided-again-under-its-key"),
    pytest.param("decided", "byline-1-v2", True, id="decided-again-under-its-versions-key"),
    pytest.param("edited", "byline-1-v3", False, id="edited-under-its-versions-key"),
    pytest.param("failed", "byline-1-v1", False, id="retried-under-its-key"),
    pytest.param("failed", "byline-1-v1-again", False, id="retried-under-a-new-key"),
])
def test_a_claim_again_whose_send_is_open_names_its_key(tmp_path: Path, life: str, key: str, named: bool) -> None:
    """A claim again of a post, its words and content those its last claim sent and that send's
    outcome open (a lease run out, a deferral, a decision again after a lookup that missed it),
    names the key that claim sent with: another is named, for the second copy a platform that
    took the first would make under it (before, the verifier did not compare keys). An edit
    since is another post, under its version's key; a failure closes the send's outcome, and
    its retry passes under either key."""
    log = SyntheticLog()
    first, version = _sent_then_claimed_again(log, life)
    text = ("Our results are in, all of them\n\nWritten by carol" if life == "edited"
            else "Our results are in\n\n—carol")
    claim = _claimed(log, sha="p2" if life in ("decided", "edited") else "p1", version=version, text=text, key=key)
    _out(log, version=version)
    expected = [NEW_KEY.format(claim=claim, key=key, first=first)] if named else []
    assert expected == messages(log.verify(tmp_path / "x.export"))


def test_an_edit_the_log_gives_no_words_for_is_another_post_and_takes_its_own_key(tmp_path: Path) -> None:
    """Where the export gives no words (every text erased), an edit's words are unknown: it is
    another post all the same, and its claim under its version's key passes, where the claim
    before it, its outcome open, named another: unknown words before and after the edit must
    not read as unchanged."""
    log = SyntheticLog()
    _, version = _sent_then_claimed_again(log, "edited")
    _claimed(log, sha="p2", version=version, text="Our results are in, all of them\n\nWritten by carol",
             key=f"byline-1-v{version}")
    _out(log, version=version)
    log.texts = {digest: (salt, None) for digest, (salt, _) in log.texts.items()}  # erased, every one
    assert messages(log.verify(tmp_path / "no-texts.export")) == []


def test_claims_that_name_no_key_are_not_compared_and_a_malformed_key_is_named(tmp_path: Path) -> None:
    """A claim that names no key (entries from before claims recorded one) is not compared, in
    either place; a key that is no string is named as malformed rather than read as none."""
    log = SyntheticLog()
    _approved_post(log)
    _claimed(log, sha="p1")
    _claimed(log, sha="p1", key="byline-1-v1")
    _claimed(log, sha="p1")
    _claimed(log, sha="p1", key="byline-1-v1-again")
    _out(log)
    assert messages(log.verify(tmp_path / "old.export")) == []
    log = SyntheticLog()
    _approved_post(log)
    bad = _claimed(log, sha="p1", key=7)
    assert messages(log.verify(tmp_path / "bad.export")) == [
        f"entry {bad}: post.publishing has a malformed data.idempotency_key"
    ]


@pytest.mark.parametrize("life", ["recovered", "decided"])
async def test_byline_audit_verify_rejects_a_claim_again_under_a_new_key_while_its_send_is_open(
    tmp_path: Path, life: str,
) -> None:
    """The real command, on an export whose post, claimed and its outcome open, was claimed
    again with the same words under a new key: after its lease ran out, or held after a lookup
    that missed it and approved again (under its new version's key)."""
    log = SyntheticLog()
    first, version = _sent_then_claimed_again(log, life)
    key = f"byline-1-v{version}-again" if life == "recovered" else f"byline-1-v{version}"
    claim = _claimed(log, sha="p2" if life == "decided" else "p1", version=version, key=key)
    _out(log, version=version)
    said = await _named_by_the_command(log, tmp_path)
    assert NEW_KEY.format(claim=claim, key=key, first=first) in said, said


def test_a_publication_found_without_its_version_is_named_as_malformed(tmp_path: Path) -> None:
    """A post.published that says it was found but not at which version cannot be matched to
    the words the log holds: named, by its message, and not taken as the post found."""
    log = SyntheticLog()
    _approved_post(log)
    _claimed(log, sha="p1")
    log.policy("brand", MOVED_ON, "p2", kind="policy.changed")
    _claimed(log, sha="p2", looks_only="policy_changed")
    bad = log.add("post.published", actor="system", account="brand", post="1",
                  data={"remote_id": "r1", "url": "https://example.social/1", "found": True})
    found = messages(log.verify(tmp_path / "x.export"))
    assert found == [f"entry {bad}: post.published lacks data.version"], found


def _sent_again_after_carol_lost_her_role(log: SyntheticLog, *, looked: bool) -> int:
    """Carol's post on the direct brand, claimed (``looked``: sent, and claimed again only to be
    looked for once carol no longer writes); then decided again, as the gateway records it, but
    released where the lifecycle holds it (scheduled, its version kept, no one asked), and sent
    again. The index of the forged decision."""
    log.policy("brand", DIRECT | {"writers": ["alice", "carol"], "disclosure": "—{author}"}, "p1")
    log.add("post.submitted", actor="carol", account="brand", post="1", data={
        "version": 1, "text_hash": log.commit("Our results are in"), "state": "scheduled", "approvers": [],
        "required": 0, "policy_sha256": "p1"})
    if looked:
        _claimed(log, sha="p1")
    log.policy("brand", DIRECT | {"disclosure": "—{author}"}, "p2", kind="policy.changed")
    if looked:
        _claimed(log, sha="p2", looks_only="author_lost_role")
    released = log.add("post.redecided", actor="policy-file", account="brand", post="1", data={
        "cause": "author_lost_role", "state": "scheduled", "version": 1, "approvers": [], "required": 0,
        "policy_sha256": "p2"})
    _claimed(log, sha="p2")
    _out(log)
    return released


@pytest.mark.parametrize("looked", [True, False])
def test_a_post_decided_again_is_held_not_released(tmp_path: Path, looked: bool) -> None:
    """A decision again holds a post for people with a role (a suggestion stays one): one that
    says it released the post instead (scheduled) let the post of a writer the policy no longer
    names go out with no one deciding, from a claim that only looked for it or from waiting.
    Named; before, it verified."""
    log = SyntheticLog()
    forged = _sent_again_after_carol_lost_her_role(log, looked=looked)
    was = "publishing" if looked else "scheduled"
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {forged}: post.redecided of post 1, which was {was}, says it is scheduled: a post decided "
        "again is held"
    ]


def test_a_claim_that_only_looked_is_not_followed_by_a_release_or_a_publication_told_as_a_decision(
    tmp_path: Path,
) -> None:
    """After a claim again that only looked (bob, whose approval sent carol's post, no longer an
    approver), a decision again that says the post is scheduled (then sent on bob's approval
    under the policy just replaced) or published (out, without saying it was found) is named:
    only held is what follows it."""
    for state in ("scheduled", "published"):
        log = SyntheticLog()
        _approved_post(log)
        _claimed(log, sha="p1")
        log.policy("brand", MOVED_ON, "p2", kind="policy.changed")
        _claimed(log, sha="p2", looks_only="policy_changed")
        forged = log.add("post.redecided", actor="policy-file", account="brand", post="1", data={
            "cause": "policy_changed", "state": state, "version": 1, "approvers": ["bob", "dave"], "required": 1,
            "policy_sha256": "p1"})
        if state == "scheduled":
            _claimed(log, sha="p1")
            _out(log)
        assert messages(log.verify(tmp_path / f"{state}.export")) == [
            f"entry {forged}: post.redecided of post 1, which was publishing, says it is {state}: a post decided "
            "again is held"
        ], state


async def test_byline_audit_verify_rejects_a_post_released_by_a_decision_again(tmp_path: Path) -> None:
    """The real command, on an export whose post, claimed again only to look for it once its
    author lost her role, was then released by a decision again and sent."""
    log = SyntheticLog()
    forged = _sent_again_after_carol_lost_her_role(log, looked=True)
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {forged}: post.redecided of post 1, which was publishing, says it is scheduled" in said, said


# ---- how long a replaced policy may still be named -----------------------------------------


def _carol_removed(log: SyntheticLog) -> int:
    """Brand's writers are alice and carol under p1; p2 leaves carol out. The index of p2."""
    log.policy("brand", DIRECT | {"writers": ["alice", "carol"]}, "p1")
    return log.policy("brand", DIRECT, "p2", kind="policy.changed")


@pytest.mark.parametrize(("after", "named"), [(10, False), (299, False), (400, True)])
def test_a_replaced_policy_is_named_only_while_a_gateway_may_not_have_seen_the_change(
    tmp_path: Path, after: int, named: bool
) -> None:
    """Carol's post names the policy that let her write, replaced a moment before: a gateway that
    had not read the change yet. Minutes later it is a gateway acting on a policy the account no
    longer has: named."""
    log = SyntheticLog()
    change = _carol_removed(log)
    log.wait(after - 1)
    late = log.submit("1", author="carol", account="brand", sha="p1")
    found = messages(log.verify(tmp_path / "x.export"))
    assert found == ([
        f"entry {late}: carol submitted a post to brand under policy p1, {after} s after entry {change} replaced it: "
        "longer than the 300 s a gateway may take to see a policy change"
    ] if named else [])
    assert messages(log.verify(tmp_path / "y.export", policy_grace=600)) == []


def test_a_policy_named_long_before_the_log_records_it_is_named(tmp_path: Path) -> None:
    """An action may name the next policy a moment before its gateway records it; one recorded
    ten minutes after is a policy the log did not hold when it was acted on."""
    log = SyntheticLog()
    log.policy("brand", DIRECT, "p1")
    early = log.submit("1", author="alice", account="brand", sha="p2")
    log.wait(599)
    recorded = log.policy("brand", DIRECT, "p2", kind="policy.changed")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {early}: alice submitted a post to brand under policy p2, which entry {recorded} recorded 600 s "
        "later: longer than the 300 s a gateway may take to record a policy it reads"
    ]
    log = SyntheticLog()
    log.policy("brand", DIRECT, "p1")
    log.submit("1", author="alice", account="brand", sha="p2")
    log.policy("brand", DIRECT, "p2", kind="policy.changed")
    assert messages(log.verify(tmp_path / "y.export")) == []


def test_an_unnumbered_policy_record_after_numbered_ones_is_named(tmp_path: Path) -> None:
    """Records from before versions were numbered may name none; once an account's records are
    numbered, one that names none would slip past the count of versions: named."""
    log = SyntheticLog()
    log.add("policy.loaded", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": "p1", "policy": DIRECT, "version": 1})
    bad = log.policy("brand", DIRECT | {"writers": ["alice", "mallory"]}, "p2", kind="policy.changed")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: policy.changed for brand names no policy version, after records that did: "
        "only records from before versions were numbered may leave it out"
    ]
    log = SyntheticLog()
    log.policy("brand", DIRECT, "p1")
    log.add("policy.changed", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": "p2", "policy": DIRECT, "version": 2})
    assert messages(log.verify(tmp_path / "y.export")) == []


def test_an_approval_from_someone_the_policy_no_longer_names_does_not_send_a_post(tmp_path: Path) -> None:
    """Bob approves carol's post; the admin replaces bob with dave among the approvers before it
    goes out. A claim under the new policy with bob's approval alone is named; held again and
    approved by dave, it passes."""
    cosigned = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "carol"], required=1,
                       tier="co-signed")

    def logged(dave_approves: bool) -> tuple[SyntheticLog, int]:
        log = SyntheticLog()
        log.policy("brand", cosigned, "p1")
        log.submit("1", author="carol", account="brand", state="held", approvers=["bob"], required=1, sha="p1")
        log.add("post.approved", actor="bob", account="brand", post="1",
                data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p1"})
        log.policy("brand", cosigned | {"approvers": ["carol", "dave"]}, "p2", kind="policy.changed")
        version = 1
        if dave_approves:
            _redecide(log, "1", "brand", version=2, approvers=["dave"], required=1, sha="p2",
                      cause="policy_changed")
            log.add("post.approved", actor="dave", account="brand", post="1",
                    data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "p2"})
            version = 2
        log.add("post.publishing", actor="system", account="brand", post="1", data={
            "attempt": 1, "version": version, "text_hash": log.commit(log.words["1"] or ""), "policy_sha256": "p2"})
        log.add("post.published", actor="system", account="brand", post="1",
                data={"remote_id": "r1", "url": "https://example.social/1", "version": version})
        return log, len(log.entries) - 2

    log, claim = logged(dave_approves=False)
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 1 went out on co-signed brand with 0 approvals from its approvers, "
        "where its policy asks for 1"
    ]
    log, _ = logged(dave_approves=True)
    assert messages(log.verify(tmp_path / "ok.export")) == []


HELD_BY_A_RULE = summary(owner="alice", writers=["alice"], approvers=["bob", "carol"], required=1)
"""A direct account whose hold rule sends a post to bob or carol."""


def _released_by_bob_then_bob_removed(*, carol_approves: bool) -> tuple[SyntheticLog, int]:
    """Alice's post held by a rule on her direct account, released by bob; the admin takes bob
    off the approvers; the post is claimed under the new policy (after carol's approval of it,
    held again, where ``carol_approves``) and published. The log, and the index of the claim."""
    log = SyntheticLog()
    log.policy("desk", HELD_BY_A_RULE, "d1")
    log.submit("1", author="alice", account="desk", state="held", approvers=["bob", "carol"], required=1, sha="d1")
    log.add("post.approved", actor="bob", account="desk", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "d1"})
    log.policy("desk", HELD_BY_A_RULE | {"approvers": ["carol"]}, "d2", kind="policy.changed")
    version = 1
    if carol_approves:
        _redecide(log, "1", "desk", version=2, approvers=["carol"], required=1, sha="d2", cause="policy_changed")
        log.add("post.approved", actor="carol", account="desk", post="1",
                data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "d2"})
        version = 2
    claim = log.add("post.publishing", actor="system", account="desk", post="1", data={
        "attempt": 1, "version": version, "text_hash": log.commit(log.words["1"] or ""), "policy_sha256": "d2"})
    log.add("post.published", actor="system", account="desk", post="1",
            data={"remote_id": "r1", "url": "https://example.social/1", "version": version})
    return log, claim


def test_a_release_on_a_direct_account_by_someone_the_policy_no_longer_names_does_not_send_a_post(
    tmp_path: Path,
) -> None:
    """A claim under the new policy on bob's release alone is named, as on a co-signed account;
    held again and released by carol, it passes."""
    log, claim = _released_by_bob_then_bob_removed(carol_approves=False)
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 1 went out on desk with 0 approvals from its approvers, where it was held for 1"
    ]
    log, _ = _released_by_bob_then_bob_removed(carol_approves=True)
    assert messages(log.verify(tmp_path / "ok.export")) == []


async def test_byline_audit_verify_rejects_a_direct_post_sent_on_the_release_of_a_removed_approver(
    tmp_path: Path,
) -> None:
    """The real command, on an export whose rule-held post went out on bob's release after the
    policy in force at its claim no longer named him."""
    log, claim = _released_by_bob_then_bob_removed(carol_approves=False)
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {claim}: post 1 went out on desk with 0 approvals from its approvers" in said, said


# ---- rules the clean mutation run of 2026-12-05 found unpinned ------------------------------

ANNOUNCING = summary(owner="alice", writers=["alice"]) | {"announce": True}
TWO_VOICES = summary(owner="alice", writers=["alice", "carol"]) | {"announce": True}
LONG_P1, LONG_P2 = "1" * 64, "2" * 64


def _numbered(log: SyntheticLog, account: str, policy: dict[str, Any], sha: str, version: int,
              kind: str = "policy.changed") -> int:
    """A policy record naming its version, as every gateway now writes them."""
    return log.add(kind, actor="policy-file", account=account,
                   data={"file": f"{account}.yaml", "sha256": sha, "policy": policy, "version": version})


def _announcement(log: SyntheticLog, post: str, version: int, sha: str, *, account: str = "brand",
                  actor: str = "policy-file", state: str = "scheduled", required: int = 0,
                  submitted_under: str | None = None, announces: bool = True,
                  changed: tuple[str, ...] = ("writers",)) -> int:
    """The policy file's post announcing policy ``version`` (``sha``) of ``account``, saying it
    changed ``changed`` (by default what ``_voice_changed``'s version 2 changes)."""
    data: dict[str, Any] = {
        "version": 1, "text_hash": log.commit(f"announcement {post}"), "state": state, "approvers": [],
        "required": required, "policy_sha256": sha if submitted_under is None else submitted_under}
    if announces:
        data["announces"] = {"version": version, "policy_sha256": sha, "changed": list(changed)}
    return log.add("post.submitted", actor=actor, account=account, post=post, data=data)


def _voice_changed(log: SyntheticLog, account: str = "brand") -> None:
    """Version 1 has alice alone write; version 2 adds carol, and asks for announcements."""
    _numbered(log, account, ANNOUNCING, "p1", 1, kind="policy.loaded")
    _numbered(log, account, TWO_VOICES, "p2", 2)


def test_an_announcement_of_the_version_just_recorded_passes_on_each_account(tmp_path: Path) -> None:
    """Each account's version 2 changed its voice and is announced once, and goes out: the
    same version number on two accounts is two announcements, not one made twice."""
    log = SyntheticLog()
    for account, post in (("brand", "100"), ("team", "200")):
        _voice_changed(log, account)
        _announcement(log, post, 2, "p2", account=account)
        _publish(log, post, account)
    assert messages(log.verify(tmp_path / "x.export")) == []


NEVER_ANNOUNCED = ("policy version 2 of brand changed its voice where it or the policy it replaced asks for "
                   "announcements, and no announcement of it followed: a change of voice its followers were "
                   "promised and not told of")
NOT_JUST_RECORDED = ("post 100 announces policy version 2 of brand, which is not the version the log recorded "
                     "for it just before: an announcement without the policy change that caused it")


@pytest.mark.parametrize(("case", "expected"), [
    ("no change", "post 100 announces policy version 2 of brand, which changed nothing of the account's voice: "
                  "an announcement without the policy change that caused it"),
    ("no announcements asked", "post 100 announces policy version 2 of brand, which asks for no announcements, "
                               "nor did the policy it replaced"),
    ("a version never recorded", "post 100 announces policy version 3 of brand, which is not the version the log "
                                 "recorded for it just before: an announcement without the policy change that "
                                 "caused it"),
    ("another policy named", NOT_JUST_RECORDED),
    ("submitted under another policy", NOT_JUST_RECORDED),
    ("held", "announcement 100 was submitted as held needing 0 approvals: the policy file is its authorisation, "
             "it goes out at once"),
    ("needing an approval", "announcement 100 was submitted as scheduled needing 1 approvals: the policy file is "
                            "its authorisation, it goes out at once"),
    ("by a writer", "post 100 of brand is an announcement of a change of voice submitted by alice, not by the "
                    "policy file"),
    ("announcing nothing", "the policy file submitted post 100 to brand, which announces no policy version"),
])
def test_an_announcement_no_policy_change_caused_is_named_for_what_it_lacks(
    tmp_path: Path, case: str, expected: str
) -> None:
    """Each forged announcement is named at its entry, and with what is wrong with it; one that
    is no announcement of version 2 leaves that change of voice unannounced, named besides."""
    log = SyntheticLog()
    if case == "no change":
        _numbered(log, "brand", ANNOUNCING, "p1", 1, kind="policy.loaded")
        _numbered(log, "brand", ANNOUNCING | {"delay_seconds": 60}, "p2", 2)
    elif case == "no announcements asked":
        _numbered(log, "brand", DIRECT, "p1", 1, kind="policy.loaded")
        _numbered(log, "brand", {k: v for k, v in TWO_VOICES.items() if k != "announce"}, "p2", 2)
    else:
        _voice_changed(log)
    bad = {
        "a version never recorded": lambda: _announcement(log, "100", 3, "p2"),
        "another policy named": lambda: _announcement(log, "100", 2, "p1", submitted_under="p2"),
        "submitted under another policy": lambda: _announcement(log, "100", 2, "p2", submitted_under="p1"),
        "held": lambda: _announcement(log, "100", 2, "p2", state="held"),
        "needing an approval": lambda: _announcement(log, "100", 2, "p2", required=1),
        "by a writer": lambda: _announcement(log, "100", 2, "p2", actor="alice"),
        "announcing nothing": lambda: _announcement(log, "100", 2, "p2", announces=False),
    }.get(case, lambda: _announcement(log, "100", 2, "p2"))()
    unannounced = [f"entry 1: {NEVER_ANNOUNCED}"] if case in (
        "a version never recorded", "by a writer", "announcing nothing") else []
    assert messages(log.verify(tmp_path / "x.export")) == [f"entry {bad}: {expected}", *unannounced]


def test_a_second_announcement_of_one_version_is_named(tmp_path: Path) -> None:
    """Two gateways must not both announce one change: the second is named."""
    log = SyntheticLog()
    _voice_changed(log)
    _announcement(log, "100", 2, "p2")
    again = _announcement(log, "101", 2, "p2")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {again}: post 101 announces policy version 2 of brand a second time"
    ]


QUIET_ALICE = summary(owner="alice", writers=["alice"])


@pytest.mark.parametrize(("version_2", "expected"), [
    (QUIET_ALICE, "policy version 2 of brand stopped the announcements the policy it replaced asked for, and no "
                  "announcement of it followed: its followers were promised they would be told, and not told the "
                  "promise ended"),
    (summary(owner="alice", writers=["alice", "carol"]),
     "policy version 2 of brand changed its voice and stopped the announcements the policy it replaced asked for, "
     "and no announcement of it followed: its followers were promised they would be told, and not told the "
     "promise ended"),
])
def test_an_end_of_announcements_no_announcement_follows_is_named(
    tmp_path: Path, version_2: dict[str, Any], expected: str,
) -> None:
    """A version that stops the announcements its policy replaced asked for is owed an
    announcement, with the voice as it was or changed; none following is named at it."""
    log = SyntheticLog()
    _numbered(log, "brand", ANNOUNCING, "p1", 1, kind="policy.loaded")
    _numbered(log, "brand", version_2, "p2", 2)
    assert messages(log.verify(tmp_path / "x.export")) == [f"entry 1: {expected}"]


@pytest.mark.parametrize(("version_2", "said", "expected"), [
    (QUIET_ALICE, (), "post 100 says policy version 2 of brand changed nothing, where the log shows it changed "
                      "announce: it leaves unsaid that the announcements ended"),
    (TWO_VOICES, ("writers", "announce"), "post 100 says policy version 2 of brand changed writers, announce, "
                                          "where the log shows it changed writers: an end of announcements the "
                                          "log does not show"),
    (TWO_VOICES, ("owner",), "post 100 says policy version 2 of brand changed owner, where the log shows it "
                             "changed writers"),
    (summary(owner="alice", writers=["alice", "carol"]), ("announce",),
     "post 100 says policy version 2 of brand changed announce, where the log shows it changed writers, announce"),
    (summary(owner="alice", writers=["alice", "carol"]), ("announce", "writers"), None),
])
def test_an_announcement_says_what_its_version_changed(
    tmp_path: Path, version_2: dict[str, Any], said: tuple[str, ...], expected: str | None,
) -> None:
    """What an announcement says it announces (``data.announces.changed``) is what the log
    shows its version changed, in any order: the parts of the voice, and ``announce`` for the
    end of the announcements; one saying other is named at its entry."""
    log = SyntheticLog()
    _numbered(log, "brand", ANNOUNCING, "p1", 1, kind="policy.loaded")
    _numbered(log, "brand", version_2, "p2", 2)
    at = _announcement(log, "100", 2, "p2", changed=said)
    assert messages(log.verify(tmp_path / "x.export")) == ([f"entry {at}: {expected}"] if expected else [])


@pytest.mark.parametrize("announces", [
    {"version": 2, "policy_sha256": "p2"},
    {"version": 2, "policy_sha256": "p2", "changed": "writers"},
    {"version": 2, "policy_sha256": "p2", "changed": ["writers", 1]},
    {"version": "2", "policy_sha256": "p2", "changed": ["writers"]},
    {"version": 2, "changed": ["writers"]},
    [2, "p2", ["writers"]],
])
def test_an_announcement_that_does_not_say_what_it_announces_is_malformed(
    tmp_path: Path, announces: Any,
) -> None:
    """Every announcement Byline makes says what its version changed, the version as a number
    and the policy it names: one without the list, or with one of other than names, without a
    version or a policy, or not an object at all, is malformed (and the change it was to
    announce is owed)."""
    log = SyntheticLog()
    _voice_changed(log)
    at = log.add("post.submitted", actor="policy-file", account="brand", post="100", data={
        "version": 1, "text_hash": log.commit("announcement 100"), "state": "scheduled", "approvers": [],
        "required": 0, "policy_sha256": "p2", "announces": announces})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {at}: post.submitted has a malformed data.announces", f"entry 1: {NEVER_ANNOUNCED}"]


def test_an_announcement_waiting_to_go_out_is_not_held_by_a_policy_removal(tmp_path: Path) -> None:
    """An announcement answers to the version it announces, not to a writer's role: the policy
    going and coming back before it is claimed leaves it to go out as it was."""
    log = SyntheticLog()
    _voice_changed(log)
    _announcement(log, "100", 2, "p2")
    log.add("policy.removed", actor="policy-file", account="brand", data={"file": "brand.yaml", "version": 3})
    _numbered(log, "brand", TWO_VOICES, "p2", 4, kind="policy.loaded")
    _publish(log, "100", "brand")
    assert messages(log.verify(tmp_path / "x.export")) == []


def test_a_removal_is_numbered_like_any_policy_record(tmp_path: Path) -> None:
    """A removal names its version (the account's next record); one that names another is named."""
    def removal(version: int) -> tuple[SyntheticLog, int]:
        log = SyntheticLog()
        _numbered(log, "brand", DIRECT, "p1", 1, kind="policy.loaded")
        at = log.add("policy.removed", actor="policy-file", account="brand",
                     data={"file": "brand.yaml", "version": version})
        return log, at

    log, _ = removal(2)
    assert messages(log.verify(tmp_path / "ok.export")) == []
    log, bad = removal(3)
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: policy.removed for brand says policy version 3, but it is the account's policy record "
        "number 2: a version recorded twice, or one left out"
    ]


@pytest.mark.parametrize(("after", "named"), [(300, False), (301, True)])
def test_the_policy_removed_judges_an_action_naming_it_for_the_grace_and_no_longer(
    tmp_path: Path, after: int, named: bool
) -> None:
    """After the policy went, an action naming it is judged by it for as long as a gateway may
    take to see the change, 300 s and not a second more; past that it is named, with the removal
    and the policy's first twelve hex digits."""
    log = SyntheticLog()
    log.policy("brand", DIRECT, LONG_P1)
    removed = log.add("policy.removed", actor="policy-file", account="brand", data={"file": "brand.yaml"})
    log.wait(after - 1)
    late = log.submit("1", author="alice", account="brand", sha=LONG_P1)
    assert messages(log.verify(tmp_path / "x.export")) == ([
        f"entry {late}: alice submitted a post to brand under policy 111111111111, {after} s after entry {removed} "
        "replaced it: longer than the 300 s a gateway may take to see a policy change"
    ] if named else [])


def test_a_policy_recorded_late_is_named_by_its_first_twelve_digits(tmp_path: Path) -> None:
    """The finding for a policy recorded long after an action named it shows its short name."""
    log = SyntheticLog()
    log.policy("brand", DIRECT, LONG_P1)
    early = log.submit("1", author="alice", account="brand", sha=LONG_P2)
    log.wait(400)
    recorded = log.policy("brand", DIRECT, LONG_P2, kind="policy.changed")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {early}: alice submitted a post to brand under policy 222222222222, which entry {recorded} recorded "
        "401 s later: longer than the 300 s a gateway may take to record a policy it reads"
    ]


def test_a_profile_byline_names_a_version_the_log_recorded_before_it(tmp_path: Path) -> None:
    """A byline set for version 1 after version 1 is recorded passes; one for version 2 is named."""
    log = SyntheticLog()
    _numbered(log, "brand", DIRECT, "p1", 1, kind="policy.loaded")
    log.add("profile.updated", actor="system", account="brand",
            data={"version": 1, "text": "Written by: alice", "platform": "sandbox"})
    bad = log.add("profile.updated", actor="system", account="brand",
                  data={"version": 2, "text": "Written by: alice", "platform": "sandbox"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: profile.updated for brand names policy version 2, which the log has not recorded for it "
        "(it has 1)"
    ]


def _stamps(*seconds: int) -> str:
    """Entry times, as ``Chunk.stamps`` holds them: ``seconds`` after midnight, one an entry."""
    return "".join(f"2026-01-01T00:{s // 60:02d}:{s % 60:02d}.000000Z" for s in seconds)


def test_the_replay_one_fact_at_a_time_compares_words_and_content_and_follows_policy_changes() -> None:
    """``feed`` with the words and content each entry commits to finds what ``feed_flat`` does:
    a claim sending other words, and other media, than its version; and a policy change
    between two entries is followed (by the policy each action names)."""
    facts: list[tuple[Fact, str | None, str | None]] = [
        (("policy.loaded", "policy-file", "solo", None, ("s1", DIRECT, None)), None, None),
        (("policy.changed", "policy-file", "solo", None, ("s2", DIRECT, None)), None, None),
        (("post.submitted", "alice", "solo", "1", (1, "scheduled", (), 0, "s1")), "hello", "c1"),
        (("post.publishing", "system", "solo", "1", ("s2", 1)), "goodbye", "c2"),
    ]
    one, run = Replay(), Replay()
    for offset, (fact, words, content) in enumerate(facts):
        one.feed(20 + offset, fact, words, content)
    run.feed_flat(20, [part for offset, (fact, _, _) in enumerate(facts) for part in (offset, *fact)],
                  words={2: "hello", 3: "goodbye"}, contents={2: "c1", 3: "c2"})
    for replay in (one, run):
        assert replay.findings == [
            (23, "post 1 sent out other words than its version 1 (written by alice)"),
            (23, "post 1 sent out other media or options than its version 1 (an upload, its alt text, the content "
                 "warning or visibility changed after it was written and approved)"),
        ]


def test_entry_times_are_read_for_the_run_being_fed() -> None:
    """A run starting at entry 10 reads its own times: the action 400 s after the change is
    named; an entry with no time (the verifier names its ts) is judged by the policy it names."""
    facts: list[Fact] = [
        ("policy.loaded", "policy-file", "brand", None, ("p1", DIRECT | {"writers": ["alice", "carol"]}, None)),
        ("policy.changed", "policy-file", "brand", None, ("p2", DIRECT, None)),
        ("post.submitted", "carol", "brand", "1", (1, "scheduled", (), 0, "p1")),
    ]
    flat = [part for offset, fact in enumerate(facts) for part in (offset, *fact)]
    late = Replay()
    late.feed_flat(10, flat, stamps=_stamps(0, 1, 401))
    assert late.findings == [(12, "carol submitted a post to brand under policy p1, 400 s after entry 11 replaced "
                                  "it: longer than the 300 s a gateway may take to see a policy change")]
    untimed = Replay()
    untimed.feed_flat(10, flat, stamps=_stamps(0) + " " * len(_stamps(0)) + _stamps(401))
    assert untimed.findings == []


def test_no_grace_for_leaving_content_out_after_an_untimed_first_record_of_it() -> None:
    """The grace for leaving out what a post carries runs from the time of the first entry that
    recorded it: where that time is unknown, a version a second later that leaves it out is
    named; timed, the same version passes."""
    facts: list[Fact] = [
        ("policy.loaded", "policy-file", "solo", None, ("s1", DIRECT, None)),
        ("post.submitted", "alice", "solo", "1", (1, "scheduled", (), 0, "s1")),
        ("post.submitted", "alice", "solo", "2", (1, "scheduled", (), 0, "s1")),
    ]
    flat = [part for offset, fact in enumerate(facts) for part in (offset, *fact)]
    untimed = Replay()
    untimed.feed_flat(10, flat, stamps=_stamps(0) + " " * len(_stamps(0)) + _stamps(2), contents={1: "c1"})
    assert untimed.findings == [
        (12, "post.submitted of post 2 does not record what it carries besides its words (data.content_sha256), "
             "though entries before it did: what went out cannot be compared with what was approved"),
    ]
    timed = Replay()
    timed.feed_flat(10, flat, stamps=_stamps(0, 1, 2), contents={1: "c1"})
    assert timed.findings == []


def test_a_co_signed_summary_asking_no_approvals_still_asks_one(tmp_path: Path) -> None:
    """A co-signed policy that names approvers asks for at least one approval, whatever count
    its summary says: a post submitted there needing none is named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED | {"required": 0}, "p1")
    bad = log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=0,
                     sha="p1")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: post 1 was submitted to co-signed brand as held needing 0 approvals, not held for 1"
    ]


def test_the_suggester_a_submission_names_put_words_into_it(tmp_path: Path) -> None:
    """A post naming its suggester (``suggested_by``) without the suggestion it came from: the
    suggester's approval is still an approval of their own words."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.add("post.submitted", actor="carol", account="brand", post="1", data={
        "version": 1, "text_hash": log.commit("text of 1"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1", "suggested_by": "bob"})
    bad = _approve(log, "1", "bob")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: bob approved post 1 (version 1), which has their words"
    ]


def test_the_disclosure_credits_the_suggester_of_an_adopted_post(tmp_path: Path) -> None:
    """Carol adopts erin's suggestion: what goes out credits both, as the policy's line says;
    leaving erin out is named."""
    policy = SIGNED | {"suggesters": ["erin"]}

    def sent(text: str) -> list[str]:
        log = SyntheticLog()
        log.policy("brand", policy, "p1")
        log.submit("s", author="erin", account="brand", state="suggested", sha="p1")
        log.add("post.adopted", actor="carol", account="brand", post="s",
                data={"state": "adopted", "version": 1, "policy_sha256": "p1"})
        log.add("post.submitted", actor="carol", account="brand", post="1", data={
            "version": 1, "text_hash": log.commit("text of s"), "state": "held", "approvers": ["bob", "dave"],
            "required": 1, "policy_sha256": "p1", "suggested_by": "erin", "adopted_from": "s"})
        _approve(log, "1", "bob", state="scheduled")
        _publish(log, "1", "brand", text=text)
        return messages(log.verify(tmp_path / "x.export"))

    assert sent("text of s\n\n—carol, suggested by erin") == []
    assert sent("text of s\n\n—carol") == [
        "entry 5: post 1 sent out other words than its version 1 (written by carol)"
    ]


def test_a_claim_counts_the_approvals_of_the_approvers_named_now_and_a_claim_again_too(
    tmp_path: Path
) -> None:
    """Bob and dave approve; the admin then replaces dave with erin. A first claim under the new
    policy has one approval from its approvers of the two it asks: named. So is a claim again
    after a lease ran out that sends it: the gateway sends no recovered claim the policy in force
    would hold (it only looks for it on its platform, ``looks_only``); before, a claim again was
    let send what the first claim, made before the change, was judged to send."""
    def logged(claimed_before: bool) -> tuple[SyntheticLog, int]:
        log = SyntheticLog()
        log.policy("brand", COSIGNED, "p1")
        log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2,
                   sha="p1")
        _approve(log, "1", "bob")
        _approve(log, "1", "dave", state="scheduled")
        claim = {"attempt": 1, "version": 1, "text_hash": log.commit("text of 1"), "policy_sha256": "p1"}
        if claimed_before:
            log.add("post.publishing", actor="system", account="brand", post="1", data=claim)
        log.policy("brand", COSIGNED | {"approvers": ["bob", "carol", "erin"]}, "p2", kind="policy.changed")
        at = log.add("post.publishing", actor="system", account="brand", post="1",
                     data=claim | {"attempt": 2, "policy_sha256": "p2"})
        log.add("post.published", actor="system", account="brand", post="1",
                data={"remote_id": "r1", "url": "https://example.social/1", "version": 1})
        return log, at

    log, claim = logged(claimed_before=False)
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {claim}: post 1 went out on co-signed brand with 1 approvals from its approvers, "
        "where its policy asks for 2"
    ]
    log, claim = logged(claimed_before=True)
    assert messages(log.verify(tmp_path / "again.export")) == [
        f"entry {claim}: post 1 went out on co-signed brand with 1 approvals from its approvers, "
        "where its policy asks for 2"
    ]


def test_a_claim_whose_text_is_not_kept_is_not_compared(tmp_path: Path) -> None:
    """A claim again whose text was erased from beside the log (only its hash is left) is not
    judged on its words, though the first claim's were."""
    log = SyntheticLog()
    log.policy("brand", SIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    _approve(log, "1", "bob", state="scheduled")
    claim = {"attempt": 1, "version": 1, "text_hash": log.commit("text of 1\n\n—carol"), "policy_sha256": "p1"}
    log.add("post.publishing", actor="system", account="brand", post="1", data=claim)
    erased = log.commit("text of 1\n\n—carol", salt=b"fedcba9876543210")
    log.texts[erased] = (log.texts[erased][0], None)
    log.add("post.publishing", actor="system", account="brand", post="1",
            data=claim | {"attempt": 2, "text_hash": erased})
    assert messages(log.verify(tmp_path / "x.export")) == []


@pytest.mark.parametrize("policy", [
    summary(owner="bob", writers=["bob"], tier="delayed"),  # its delay not in the summary
    summary(owner="bob", writers=["bob"]) | {"delay_seconds": 600},  # a delay without the tier
])
def test_a_revision_is_named_where_words_wait_by_tier_or_by_delay(tmp_path: Path, policy: dict[str, Any]) -> None:
    """A delayed tier and a delay each keep words from going out at once: a revision is named."""
    log = SyntheticLog()
    log.policy("slow", policy, "d1")
    log.submit("1", author="bob", account="slow", sha="d1")
    _publish(log, "1", "slow")
    bad = log.add("post.revised", actor="bob", account="slow", post="1",
                  data={"version": 2, "text_hash": log.commit("bob's"), "state": "published"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: post 1 was revised on slow, whose policy does not send words out at once"
    ]


def test_a_revision_or_a_deletion_with_no_policy_in_force_is_named(tmp_path: Path) -> None:
    """Once the account's policy went, a revision or a deletion naming none is named; a revised
    post is at its revision's version, and an approval of it is named for that too."""
    log = SyntheticLog()
    _solo_published(log)
    log.add("post.revised", actor="alice", account="solo", post="1",
            data={"version": 2, "text_hash": log.commit("alice's"), "state": "published"})
    approved = log.add("post.approved", actor="bob", account="solo", post="1",
                       data={"version": 1, "count": 1, "required": 1, "state": "published"})
    log.add("policy.removed", actor="policy-file", account="solo", data={"file": "solo.yaml"})
    revised = log.add("post.revised", actor="alice", account="solo", post="1",
                      data={"version": 3, "text_hash": log.commit("alice's again"), "state": "published"})
    deleted = log.add("post.deleted", actor="alice", account="solo", post="1", data={"state": "deleted"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {approved}: post.approved of post 1, which was published: its life does not go that way",
        f"entry {approved}: bob approved post 1 but is not one of its approvers",
        f"entry {approved}: approval of version 1 of post 1, which is at version 2",
        f"entry {revised}: alice revised a post of solo, which had no policy in force",
        f"entry {deleted}: alice deleted a post of solo, which had no policy in force",
    ]


def test_a_retry_is_judged_by_the_policy_it_names(tmp_path: Path) -> None:
    """Alice owned the account when she retried bob's failed post, under the policy a change
    replaced a moment before: judged by that policy, the retry passes."""
    log = SyntheticLog()
    log.policy("solo", summary(owner="alice", writers=["bob"]), "s1")
    log.submit("1", author="bob", account="solo", sha="s1")
    log.add("post.publishing", actor="system", account="solo", post="1",
            data={"attempt": 1, "version": 1, "text_hash": log.commit("text of 1"), "policy_sha256": "s1"})
    log.add("post.failed", actor="system", account="solo", post="1", data={"state": "failed"})
    log.policy("solo", summary(owner="dave", writers=["bob"]), "s2", kind="policy.changed")
    log.add("post.retried", actor="alice", account="solo", post="1", data={"state": "scheduled", "policy_sha256": "s1"})
    assert messages(log.verify(tmp_path / "x.export")) == []


def test_a_system_cancel_follows_the_parent_an_edit_names_and_only_a_known_post(tmp_path: Path) -> None:
    """A reply whose edit made it reply to another post is cancelled with that post, not with
    the one it replied to before; a cancel naming a post never submitted, and one for a
    suggestion adopted into no post the log holds, are each named (and each reply where it
    was stored naming them)."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    log.submit("3", author="alice", account="solo", sha="s1")
    _reply(log, "2", "1", account="solo", author="alice", state="scheduled")
    log.add("post.edited", actor="alice", account="solo", post="2", data={
        "version": 2, "text_hash": log.commit("reply, edited"), "state": "scheduled", "policy_sha256": "s1",
        "options": {"reply_to_post": "3"}})
    log.add("post.cancelled", actor="alice", account="solo", post="1", data={"state": "cancelled",
                                                                             "policy_sha256": "s1"})
    old = _system_cancel(log, "2", "1", account="solo")
    stored = _reply(log, "4", "9", account="solo", author="alice", state="scheduled")
    unknown = _system_cancel(log, "4", "9", account="solo")
    log.policy("team", MANAGED, "m1")
    log.submit("s", author="dave", account="team", state="suggested", sha="m1")
    log.add("post.adopted", actor="bob", account="team", post="s",
            data={"state": "adopted", "version": 1, "policy_sha256": "m1"})
    stored_late = _reply(log, "5", "s", account="team", author="bob", state="scheduled")
    adopted = _system_cancel(log, "5", "s", account="team")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {old}: system cancelled post 2 for the post it replies to, 1, but it replies to 3",
        f"entry {stored}: post 4 was stored as a reply to 9, which is not a post of solo",
        f"entry {unknown}: system cancelled post 4 for the post it replies to, 9, which is not a post of solo",
        f"entry {stored_late}: post 5 was stored as a reply to s, which was adopted: a reply waits only for a "
        "post waiting or out, and would wait for this one for ever",
        f"entry {adopted}: system cancelled post 5 with the post it replies to, s, which was adopted: it had not ended",
    ]


def test_only_the_gateways_failure_lets_it_retry_a_reply_with_its_parent(tmp_path: Path) -> None:
    """A failure recorded by a person, naming the parent, is not the gateway's: a system retry
    of the reply on its strength is named."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    _reply(log, "2", "1", account="solo", author="alice", state="scheduled")
    log.add("post.publishing", actor="system", account="solo", post="1",
            data={"attempt": 1, "version": 1, "text_hash": log.commit("text of 1")})
    log.add("post.failed", actor="system", account="solo", post="1", data={"state": "failed", "attempt": 1})
    log.add("post.failed", actor="alice", account="solo", post="2",
            data={"state": "failed", "attempt": 0, "reply_to_post": "1"})
    log.add("post.retried", actor="alice", account="solo", post="1", data={"state": "scheduled", "policy_sha256": "s1"})
    bad = log.add("post.retried", actor="system", account="solo", post="2",
                  data={"state": "scheduled", "reply_to_post": "1", "policy_sha256": "s1"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: system retried post 2 with the post it replies to, 1, though it had not failed for that post"
    ]


THREADGATE = "app.bsky.feed.threadgate"
POSTGATE = "app.bsky.feed.postgate"


def _gates(log: SyntheticLog, post: str, who: str, *, account: str, sha: str | None, gate: str = THREADGATE,
           settings: Any = None) -> int:
    """Who may reply to (or quote) a published post, changed through Byline (with what it now
    says, ``settings``, as Byline records it since it shows it on the public pages)."""
    return log.add("post.gates_changed", actor=who, account=account, post=post, data={
        "gate": gate, "cid": "bafyreigate", "remote_id": f"at://did:plc:x/app.bsky.feed.post/{post}",
        "state": "published", **({"policy_sha256": sha} if sha else {}),
        **({"settings": settings} if settings is not None else {}),
    })


def test_gates_changed_by_a_writer_or_the_owner_of_a_published_post_pass(tmp_path: Path) -> None:
    """A co-signed account's writer hides a reply, its owner closes replies, a managed account's
    writer and its suggesting owner set who may quote: settings need no approvals, on any tier."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.policy("team", MANAGED, "m1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    _publish(log, "1", "brand")
    _gates(log, "1", "carol", account="brand", sha="p1")
    _gates(log, "1", "alice", account="brand", sha="p1", gate=POSTGATE)
    log.submit("2", author="bob", account="team", sha="m1")
    _publish(log, "2", "team")
    _gates(log, "2", "bob", account="team", sha="m1", gate=POSTGATE)
    _gates(log, "2", "dave", account="team", sha=None)
    report = log.verify(tmp_path / "ok.export")
    assert messages(report) == []
    assert report.ok


def test_gates_changed_by_someone_who_may_not_post_or_of_a_post_not_out_are_named(tmp_path: Path) -> None:
    """A forged log: an approver, a stranger and a writer the policy dropped change a post's
    gates; gates change on a post still held, on one deleted, on one of another account, and
    a gate that is none: each is named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    _publish(log, "1", "brand")
    approver = _gates(log, "1", "bob", account="brand", sha="p1")
    stranger = _gates(log, "1", "mallory", account="brand", sha="p1")
    held = log.submit("2", author="carol", account="brand", state="held", approvers=["bob", "dave"],
                      required=2, sha="p1")
    early = _gates(log, "2", "carol", account="brand", sha="p1")
    elsewhere = _gates(log, "1", "alice", account="solo", sha="s1")
    log.submit("3", author="alice", account="solo", sha="s1")
    _publish(log, "3", "solo")
    other = _gates(log, "3", "alice", account="solo", sha="s1", gate="app.bsky.feed.post")
    log.add("post.deleted", actor="alice", account="solo", post="3", data={"state": "deleted", "policy_sha256": "s1"})
    gone = _gates(log, "3", "alice", account="solo", sha="s1")
    log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p2", kind="policy.changed")
    log.add("post.redecided", actor="policy-file", account="brand", post="2", data={
        "cause": "author_lost_role", "state": "held", "version": 1, "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p2"})
    dropped = _gates(log, "1", "carol", account="brand", sha="p2")
    assert held < early
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {approver}: bob changed who may reply to or quote post 1 but may not post on brand",
        f"entry {stranger}: mallory changed who may reply to or quote post 1 but may not post on brand",
        f"entry {early}: post.gates_changed of post 2, which was held: its life does not go that way",
        f"entry {elsewhere}: post.gates_changed names solo for post 1, which is a post of brand",
        f"entry {other}: post.gates_changed of post 3 names app.bsky.feed.post, which is no threadgate or postgate",
        f"entry {gone}: post.gates_changed of post 3, which was deleted: its life does not go that way",
        f"entry {dropped}: carol changed who may reply to or quote post 1 but may not post on brand",
    ]


def test_gates_changed_are_judged_by_the_policy_they_name(tmp_path: Path) -> None:
    """A forged log: carol, a writer only since p2, changes a gate naming p1, under which she
    was not (judged by p1, not the policy in force); alice names a policy the log never records
    (named at the end, with what she did)."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED | {"writers": ["alice"]}, "p1")
    log.submit("1", author="alice", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    _publish(log, "1", "brand")
    log.policy("brand", COSIGNED, "p2", kind="policy.changed")
    stale = _gates(log, "1", "carol", account="brand", sha="p1")
    _gates(log, "1", "carol", account="brand", sha="p2")
    ghost = _gates(log, "1", "alice", account="brand", sha=GHOST, gate=POSTGATE)
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {stale}: carol changed who may reply to or quote post 1 but may not post on brand",
        f"entry {ghost}: alice changed the {POSTGATE} of a post of brand under policy abababababab, which the "
        "log never records",
    ]


async def test_byline_audit_verify_rejects_a_gates_change_by_a_writer_the_policy_in_force_dropped(
    tmp_path: Path,
) -> None:
    """The real command, on the log a gateway would write had it recorded a change of who may
    reply to carol's post checked before a reload dropped her as writer: the change naming the
    policy that dropped her, and one naming the policy it replaced past the grace, are named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", "dave", state="scheduled")
    _publish(log, "1", "brand")
    replaced = log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p2", kind="policy.changed")
    dropped = _gates(log, "1", "carol", account="brand", sha="p2")
    log.wait(POLICY_GRACE_SECONDS)
    stale = _gates(log, "1", "carol", account="brand", sha="p1", gate=POSTGATE)
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {dropped}: carol changed who may reply to or quote post 1 but may not post on brand" in said, said
    assert (f"entry {stale}: carol changed the {POSTGATE} of a post of brand under policy p1, "
            f"{POLICY_GRACE_SECONDS + 2:.0f} s after entry {replaced} replaced it") in said, said


def _gates_for_an_hour(log: SyntheticLog, *, last_after: float) -> tuple[int, int, int]:
    """Alice's post 1 on solo: its threadgate changed 30 times, a second apart, from its first
    change on (and post 2's once, beside them), then once more ``last_after`` seconds after the
    first: the indexes of the first change, the 30th and the last."""
    log.policy("solo", DIRECT, "s1")
    for post in ("1", "2"):
        log.submit(post, author="alice", account="solo", sha="s1")
        _publish(log, post, "solo")
    changes = [_gates(log, "1", "alice", account="solo", sha="s1", gate=POSTGATE if n % 2 else THREADGATE)
               for n in range(CHANGES_PER_HOUR)]
    _gates(log, "2", "alice", account="solo", sha="s1")  # another post's: a budget of its own
    log.wait(last_after - (CHANGES_PER_HOUR + 1))  # each entry is a second after the one before
    return changes[0], changes[-1], _gates(log, "1", "alice", account="solo", sha="s1")


async def test_byline_audit_verify_rejects_a_31st_change_of_a_posts_gates_within_an_hour(tmp_path: Path) -> None:
    """The real command, on a forged log (signed as Byline signs it, no other rule broken): a
    post's gates changed 30 times, and a 31st time a microsecond less than an hour after the
    first, when the gateway would have refused it (429). That change is named, with the 30
    before it in its hour; post 2's change in the same hour is not.
    (Before: the log verified.)"""
    log = SyntheticLog()
    first, thirtieth, last = _gates_for_an_hour(log, last_after=3600 - 0.000001)
    stamp = "2026-01-01T13:00:07.999999Z"  # the first change at 12:00:08
    said = (f"entry {last}: who may reply to or quote post 1 changed at {stamp}, past its budget: entries {first} "
            f"to {thirtieth} changed it 30 times in the hour before, and a post's may change 30 times in any hour")
    assert messages(log.verify(tmp_path / "past.export")) == [said]
    assert said in await _named_by_the_command(log, tmp_path)


async def test_byline_audit_verify_passes_30_changes_of_a_posts_gates_in_the_hour_up_to_each(tmp_path: Path) -> None:
    """The real command, on the same log but for the 31st change: made exactly an hour after the
    first, it finds 29 in its hour (the gateway leaves the moment an hour before out of it, as a
    change leaves the budget an hour after it was made), and the log verifies."""
    log = SyntheticLog()
    _gates_for_an_hour(log, last_after=3600)
    assert messages(log.verify(tmp_path / "within.export")) == []
    export = log.write(tmp_path / "within.export")
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code == 0, result.text


def test_a_gates_changed_entry_without_its_gate_is_named(tmp_path: Path) -> None:
    """An entry that does not say which gate changed cannot be judged, and is named as malformed."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    _publish(log, "1", "solo")
    bad = log.add("post.gates_changed", actor="alice", account="solo", post="1",
                  data={"cid": None, "state": "published", "policy_sha256": "s1"})
    found = messages(log.verify(tmp_path / "x.export"))
    assert found == [f"entry {bad}: post.gates_changed lacks data.gate or has a malformed data.cid"], found


def test_a_gate_removed_passes_and_one_whose_cid_is_no_text_is_named(tmp_path: Path) -> None:
    """A gate deleted on the platform is recorded with no CID (data.cid null) and passes; a CID
    that is no text is named as malformed."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    _publish(log, "1", "solo")
    log.add("post.gates_changed", actor="alice", account="solo", post="1",
            data={"gate": POSTGATE, "cid": None, "state": "published", "policy_sha256": "s1"})
    bad = log.add("post.gates_changed", actor="alice", account="solo", post="1",
                  data={"gate": POSTGATE, "cid": 5, "state": "published", "policy_sha256": "s1"})
    found = messages(log.verify(tmp_path / "x.export"))
    assert found == [f"entry {bad}: post.gates_changed lacks data.gate or has a malformed data.cid"], found


def test_gates_changed_whose_settings_are_not_what_the_pages_could_show_are_named(tmp_path: Path) -> None:
    """A forged log: the settings the public page and webhooks put in words must be a summary
    of the gate the entry names. Ones of the other gate, a count of lists where no list rule
    lets anyone reply, a rule no threadgate has, and no object at all are each named; the
    summaries Byline writes, and an entry from before it wrote any, pass."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", sha="s1")
    _publish(log, "1", "solo")
    _gates(log, "1", "alice", account="solo", sha="s1")
    _gates(log, "1", "alice", account="solo", sha="s1",
           settings={"replies": ["mention", "list"], "lists": 2, "hidden_replies": 3})
    _gates(log, "1", "alice", account="solo", sha="s1", gate=POSTGATE, settings={"quotes": "off", "detached_quotes": 0})
    swapped = _gates(log, "1", "alice", account="solo", sha="s1", settings={"quotes": "off", "detached_quotes": 0})
    listless = _gates(log, "1", "alice", account="solo", sha="s1",
                      settings={"replies": ["mention"], "lists": 1, "hidden_replies": 0})
    unknown = _gates(log, "1", "alice", account="solo", sha="s1",
                     settings={"replies": ["anyone-who-pays"], "lists": 0, "hidden_replies": 0})
    words = _gates(log, "1", "alice", account="solo", sha="s1", gate=POSTGATE, settings="Quotes: on")
    found = messages(log.verify(tmp_path / "forged.export"))
    threadgate = "post.gates_changed: data.settings of a threadgate"
    assert found == [
        f"entry {swapped}: {threadgate} must say replies, lists and hidden_replies",
        f"entry {listless}: {threadgate} counts its lists or hidden replies wrongly",
        f"entry {unknown}: {threadgate} must say replies, lists and hidden_replies",
        f"entry {words}: post.gates_changed: data.settings must be an object",
    ], found


async def test_gates_a_claim_sent_with_that_are_not_what_the_public_card_could_say_are_named(tmp_path: Path) -> None:
    """A forged log: a claim's ``data.gates`` (who may reply or quote as the post went out, put in
    words on its public card and checked there) must be one or two distinct gates, threadgate
    first, each with a summary of its own kind. A postgate's settings under a threadgate, a gate
    twice, the two out of order, a gate without settings, an empty list and words for settings
    are each named; what Byline writes passes, and so does a claim with no gates."""
    tg = {"gate": THREADGATE, "settings": {"replies": ["follower"], "lists": 0, "hidden_replies": 1}}
    pg = {"gate": POSTGATE, "settings": {"quotes": "off", "detached_quotes": 0}}
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    sent: dict[str, Any] = {"good": [tg, pg], "one": [pg], "none": None}
    bad: dict[str, Any] = {
        "swapped": [{"gate": THREADGATE, "settings": pg["settings"]}], "twice": [tg, tg], "order": [pg, tg],
        "bare": [{"gate": POSTGATE}], "empty": [], "words": [{"gate": POSTGATE, "settings": "Quotes: off"}],
    }
    at = {}
    for post, gates in {**sent, **bad}.items():
        log.submit(post, author="alice", account="solo", sha="s1")
        at[post] = log.add("post.publishing", actor="system", account="solo", post=post, data={
            "attempt": 1, "version": 1, "text_hash": log.commit(log.words.get(post) or ""),
            **({"gates": gates} if gates is not None else {}),
        })
        log.add("post.published", actor="system", account="solo", post=post,
                data={"remote_id": f"r{post}", "url": f"https://example.social/{post}", "version": 1})
    said = messages(log.verify(tmp_path / "forged.export"))
    # A claim that cannot be read leaves its publication out of turn, named too.
    knock_on = [m for m in said if "which was scheduled: its life does not go that way" in m]
    assert [m.split("post.published of post ")[1].split(",")[0] for m in knock_on] == list(bad), said
    found = [m for m in said if m not in knock_on]
    shape = ("post.publishing: data.gates must name a threadgate, a postgate or both, in that order, "
             "each with its settings")
    swapped = "post.publishing: data.settings of a threadgate must say replies, lists and hidden_replies"
    assert found == [
        f"entry {at['swapped']}: {swapped}",
        f"entry {at['twice']}: {shape}",
        f"entry {at['order']}: {shape}",
        f"entry {at['bare']}: {shape}",
        f"entry {at['empty']}: post.publishing: data.gates must list one or two gates",
        f"entry {at['words']}: post.publishing: data.settings must be an object",
    ], found
    export = log.write(tmp_path / "cli.export")
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code != 0 and f"entry {at['order']}: {shape}" in result.text, result.text


# ---- a post goes out no earlier than the log says it is due ------------------------------------


def _scheduled(log: SyntheticLog, post: str, *, author: str, account: str, sha: str, due: str | None) -> int:
    """A post.submitted as the gateway writes it for a post that waits (or not) until ``due``."""
    return log.add("post.submitted", actor=author, account=account, post=post, data={
        "version": 1, "text_hash": log.commit(f"text of {post}"), "state": "scheduled", "approvers": [],
        "required": 0, "policy_sha256": sha, "publish_at": due,
    })


def _claim(log: SyntheticLog, post: str, account: str, version: int = 1) -> int:
    return log.add("post.publishing", actor="system", account=account, post=post,
                   data={"attempt": 1, "version": version, "text_hash": log.commit(log.words.get(post) or "")})


def test_a_delayed_post_sent_before_its_cooling_off_ended_is_named(tmp_path: Path) -> None:
    """A forged log: the database moved a delayed post's time to now, and it went out a few
    seconds after it was written, where its submission said it was due five minutes later, and
    an edit restarted the window: the claim is named, with the entry whose time it broke."""
    log = SyntheticLog()
    log.policy("pencil", PENCIL, "d1")
    _scheduled(log, "1", author="bob", account="pencil", sha="d1", due=log.time(300))
    due = log.time(600)
    edit = log.add("post.edited", actor="bob", account="pencil", post="1", data={
        "version": 2, "text_hash": log.commit("second thoughts"), "state": "scheduled", "publish_at": due,
        "policy_sha256": "d1",
    })
    early = _claim(log, "1", "pencil", version=2)
    log.add("post.published", actor="system", account="pencil", post="1",
            data={"remote_id": "r1", "url": "https://example.social/1", "version": 2})
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {early}: post 1 went out at {log.time(-2)}, 599 s before {due}, when entry {edit} said it was "
        "due: more than the 2 s a claim may be early",
    ]


def test_an_approved_post_sent_before_the_time_approved_is_named(tmp_path: Path) -> None:
    """A forged log: the writer asked for tomorrow, the approvers approved that, and it went out
    at once: the claim is named for the time the approval that scheduled it recorded."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "1", "bob")
    tomorrow = log.time(86_400)
    scheduled = log.add("post.approved", actor="dave", account="brand", post="1", data={
        "version": 1, "count": 2, "required": 2, "state": "scheduled", "publish_at": tomorrow,
        "policy_sha256": "p1"})
    early = _claim(log, "1", "brand")
    found = messages(log.verify(tmp_path / "forged.export"))
    assert found == [
        f"entry {early}: post 1 went out at {log.time(-1)}, 86399 s before {tomorrow}, when entry {scheduled} "
        "said it was due: more than the 2 s a claim may be early",
    ], found


def test_honest_times_pass(tmp_path: Path) -> None:
    """What the gateway logs honestly is not named: a direct post due at once; a delayed post
    sent at its time; one failed and retried, sent at once; one held again by an edit after its
    approval and sent the moment the new approval scheduled it; a claim within the grace; a post
    decided again after a policy change, sent when approved again; and entries from before
    times were logged."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.policy("pencil", PENCIL, "d1")
    log.policy("brand", COSIGNED, "p1")
    _scheduled(log, "1", author="alice", account="solo", sha="s1", due=log.time())
    _publish(log, "1", "solo")
    _scheduled(log, "2", author="bob", account="pencil", sha="d1", due=log.time(300))
    log.wait(300)
    _publish(log, "2", "pencil")
    _scheduled(log, "3", author="alice", account="solo", sha="s1", due=log.time(1.5))
    _claim(log, "3", "solo")  # a second early: within the grace
    log.add("post.failed", actor="system", account="solo", post="3", data={"state": "failed", "attempt": 1})
    log.add("post.retried", actor="alice", account="solo", post="3", data={"state": "scheduled", "policy_sha256": "s1"})
    _claim(log, "3", "solo")
    log.submit("4", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "4", "bob")
    log.add("post.approved", actor="dave", account="brand", post="4", data={
        "version": 1, "count": 2, "required": 2, "state": "scheduled", "publish_at": log.time(3600),
        "policy_sha256": "p1"})
    log.add("post.edited", actor="carol", account="brand", post="4", data={
        "version": 2, "text_hash": log.commit("carol's words v2"), "state": "held", "publish_at": None,
        "approvers": ["bob", "dave"], "required": 2, "policy_sha256": "p1"})
    _approve(log, "4", "bob", version=2)
    log.add("post.approved", actor="dave", account="brand", post="4", data={
        "version": 2, "count": 2, "required": 2, "state": "scheduled", "publish_at": log.time(),
        "policy_sha256": "p1"})
    _publish(log, "4", "brand", version=2)
    log.submit("5", author="alice", account="solo", sha="s1")  # no time logged: nothing to compare
    _publish(log, "5", "solo")
    assert messages(log.verify(tmp_path / "ok.export")) == []


@pytest.mark.parametrize("due", [
    "tomorrow",
    # A time, but not as Byline writes one: compared as text with the claim's, it would misjudge it.
    "2027-01-01T10:00:00+00:00",
    "2027-01-01T10:00:00.000000",
    "2027-13-01T10:00:00.000000Z",  # Byline's shape, but no time
])
def test_a_malformed_time_is_named(tmp_path: Path, due: str) -> None:
    """A time that is not one, or not in the entries' own form, cannot be compared with the claim,
    and is named as malformed."""
    log = SyntheticLog()
    log.policy("pencil", PENCIL, "d1")
    bad = _scheduled(log, "1", author="bob", account="pencil", sha="d1", due=due)
    assert messages(log.verify(tmp_path / "x.export")) == [f"entry {bad}: has a malformed data.publish_at"]


async def test_byline_audit_verify_rejects_a_post_sent_before_it_was_due(tmp_path: Path) -> None:
    """The real command, on an export whose delayed post went out before its window ended; its
    ``--due-grace`` widened past the gap lets it pass."""
    log = SyntheticLog()
    log.policy("pencil", PENCIL, "d1")
    _scheduled(log, "1", author="bob", account="pencil", sha="d1", due=log.time(300))
    _publish(log, "1", "pencil")
    await _named_then_passed_with_grace(log, tmp_path, ("post 1 went out at", "s before"), grace="600")


async def _named_by_the_command(log: SyntheticLog, tmp_path: Path) -> str:
    """The real ``byline audit verify`` on ``log``'s export, which it must reject: what it said."""
    export = log.write(tmp_path / "forged.export")
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code != 0, result.text
    return result.text


async def _named_then_passed_with_grace(
    log: SyntheticLog, tmp_path: Path, said: tuple[str, ...], *, grace: str,
) -> None:
    """The real ``byline audit verify`` on ``log``'s export: it fails, saying each of ``said``,
    and passes with ``--due-grace`` widened to ``grace`` seconds."""
    text = await _named_by_the_command(log, tmp_path)
    assert all(words in text for words in said), text
    wide = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export",
                        str(tmp_path / "forged.export"), "--no-state", "--no-progress", "--due-grace", grace)
    assert wide.code == 0, wide.text


def _edited_reply(log: SyntheticLog, post: str, parent: str, due: str, edited: str) -> int:
    """A reply to ``parent`` on solo, due at ``due``, then edited while it waits for its parent
    (the edit recording ``edited``, the publisher's wait); returns the submission's entry."""
    at = log.add("post.submitted", actor="alice", account="solo", post=post, data={
        "version": 1, "text_hash": log.commit(f"text of {post}"), "state": "scheduled", "approvers": [],
        "required": 0, "policy_sha256": "s1", "publish_at": due, "reply_to_post": parent})
    log.add("post.edited", actor="alice", account="solo", post=post, data={
        "version": 2, "text_hash": log.commit(f"text of {post}, fixed"), "state": "scheduled",
        "publish_at": edited, "policy_sha256": "s1"})
    return at


def test_an_edited_reply_is_not_sent_before_the_time_its_edit_recorded(tmp_path: Path) -> None:
    """A reply's edit while it waits for its parent records the later of its new cooling-off and
    the time the publisher put it at to wait; the publisher brings forward only a reply left as
    it was put to wait, so an edited one sent before the time its edit recorded is named, the
    cooling-off the edit started cut short (as Byline did before it checked that a reply was
    left as it was put to wait)."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    log.submit("1", author="alice", account="solo", state="held", approvers=["alice"], required=1, sha="s1")
    on_time = _edited_reply(log, "2", "1", log.time(-300), log.time(-200)) + 1
    due = log.time(400)
    forged = _edited_reply(log, "3", "1", log.time(), due) + 1
    log.add("post.approved", actor="alice", account="solo", post="1",
            data={"version": 1, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "s1"})
    _publish(log, "1", "solo")
    _publish(log, "2", "solo", version=2)
    early = _claim(log, "3", "solo", version=2)
    assert on_time < forged
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {early}: post 3 went out at {log.time(-1)}, 393 s before {due}, when entry {forged} said it was "
        "due: more than the 2 s a claim may be early",
    ]


def test_a_claim_may_be_early_by_the_grace_and_no_more(tmp_path: Path) -> None:
    """A claim exactly the grace (2 s) before the time its submission recorded passes; a
    quarter of a second more is named, with the submission's entry."""
    log = SyntheticLog()
    log.policy("solo", DIRECT, "s1")
    _scheduled(log, "1", author="alice", account="solo", sha="s1", due=log.time(3))
    _claim(log, "1", "solo")
    due = log.time(3.25)
    submitted = _scheduled(log, "2", author="alice", account="solo", sha="s1", due=due)
    early = _claim(log, "2", "solo")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {early}: post 2 went out at {log.time(-1)}, 2 s before {due}, when entry {submitted} said it was "
        "due: more than the 2 s a claim may be early",
    ]


def test_a_retry_sends_at_once(tmp_path: Path) -> None:
    """A retried post is due at once: a claim sent early is named, but the claim after its
    failure and retry is judged by no time, not named again for the submission's."""
    log = SyntheticLog()
    log.policy("pencil", PENCIL, "d1")
    _scheduled(log, "1", author="bob", account="pencil", sha="d1", due=log.time(300))
    early = _claim(log, "1", "pencil")
    log.add("post.failed", actor="system", account="pencil", post="1", data={"state": "failed", "attempt": 1})
    log.add("post.retried", actor="bob", account="pencil", post="1", data={"state": "scheduled", "policy_sha256": "d1"})
    _claim(log, "1", "pencil")
    found = messages(log.verify(tmp_path / "x.export"))
    assert [m.split(":")[0] for m in found] == [f"entry {early}"], found


def test_the_replay_one_fact_at_a_time_reads_each_entrys_time_and_due() -> None:
    """``feed`` given each entry's time and due time finds what ``feed_flat`` does: a claim
    sent before the time its submission recorded; without an entry time, or with one that is
    no time, there is nothing to compare and nothing is named."""
    due = "2026-01-01T00:05:00.000000Z"
    facts: list[tuple[Fact, str | None]] = [
        (("policy.loaded", "policy-file", "solo", None, ("s1", DIRECT, None)), None),
        (("post.submitted", "alice", "solo", "1", (1, "scheduled", (), 0, "s1")), due),
        (("post.publishing", "system", "solo", "1", None), None),
    ]
    stamps = _stamps(0, 1, 2)
    size = len(stamps) // 3
    one, run, untimed, garbled = Replay(), Replay(), Replay(), Replay()
    for offset, (fact, when) in enumerate(facts):
        one.feed(20 + offset, fact, due=when, stamp=stamps[offset * size:(offset + 1) * size])
        untimed.feed(20 + offset, fact, due=when)
        garbled.feed(20 + offset, fact, due=when, stamp=stamps[offset * size:(offset + 1) * size - 1])
    run.feed_flat(20, [part for offset, (fact, _) in enumerate(facts) for part in (offset, *fact)],
                  stamps=stamps, dues={1: due})
    for replay in (one, run):
        assert replay.findings == [
            (22, f"post 1 went out at 2026-01-01T00:00:02.000000Z, 298 s before {due}, when entry 21 said it was "
                 "due: more than the 2 s a claim may be early"),
        ]
    assert (untimed.findings, garbled.findings) == ([], [])


def test_a_post_decided_again_waits_for_no_time_before_it(tmp_path: Path) -> None:
    """A delayed post held for a new decision by a policy change is due once approved, not at
    the time its submission recorded: approved (by an entry that records no time) and sent
    at once, it is not named."""
    log = SyntheticLog()
    log.policy("pencil", PENCIL, "d1")
    _scheduled(log, "1", author="carol", account="pencil", sha="d1", due=log.time(300))
    log.policy("pencil", {**PENCIL, "writers": ["bob"]}, "d2", kind="policy.changed")
    _redecide(log, "1", "pencil", version=2, approvers=["bob"], required=1, sha="d2")
    log.add("post.approved", actor="bob", account="pencil", post="1",
            data={"version": 2, "count": 1, "required": 1, "state": "scheduled", "policy_sha256": "d2"})
    _claim(log, "1", "pencil", version=2)
    assert messages(log.verify(tmp_path / "x.export")) == []


# ---- an approval counts only before its post's hold expires -------------------------------------


def _held_until(
    log: SyntheticLog, post: str, deadline: str | None, *, author: str = "carol", sha: str = "p1",
) -> int:
    """A post.submitted as the gateway writes it for a post held on brand until ``deadline``,
    under policy ``sha``."""
    return log.add("post.submitted", actor=author, account="brand", post=post, data={
        "version": 1, "text_hash": log.commit(f"text of {post}"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": sha, "publish_at": None, "expires_at": deadline,
    })


def _held_anew(log: SyntheticLog, post: str, *, version: int, deadline: str) -> int:
    """carol's edit of a post on brand released before, which holds it anew until ``deadline``,
    as the gateway writes it."""
    return log.add("post.edited", actor="carol", account="brand", post=post, data={
        "version": version, "text_hash": log.commit(f"carol's words v{version}"), "state": "held",
        "publish_at": None, "expires_at": deadline, "approvers": ["bob", "dave"], "required": 2,
        "policy_sha256": "p1"})


def _releases(log: SyntheticLog, post: str, who: str = "dave", version: int = 1, **recorded: Any) -> int:
    """The approval that reaches the count and schedules the post, at once; as the gateway
    writes it, recording that the hold's deadline is gone, unless ``recorded`` says otherwise."""
    return log.add("post.approved", actor=who, account="brand", post=post, data={
        "version": version, "count": 2, "required": 2, "state": "scheduled", "publish_at": log.time(),
        "policy_sha256": "p1", **{"expires_at": None, **recorded}})


def _held_and_approved_once(deadline_in: float, waited: float) -> tuple[SyntheticLog, str, int]:
    """A log with brand co-signed: carol's post 1 held until ``deadline_in`` seconds on, bob's
    approval (one of the two it needs), and ``waited`` seconds gone by. The log, the deadline
    and the submission's entry."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    deadline = log.time(deadline_in)
    submitted = _held_until(log, "1", deadline)
    _approve(log, "1", "bob")
    log.wait(waited)
    return log, deadline, submitted


def _late_approval(post: str, at: str, late: int, deadline: str, entry: int) -> str:
    return (f"post {post} was approved at {at}, {late} s after {deadline}, when entry {entry} said its hold "
            "expired: more than the 2 s an approval may be late")


def test_an_approval_after_the_holds_deadline_is_named(tmp_path: Path) -> None:
    """A forged log: the hold's deadline moved later in the database, so an approval an hour
    and more after the deadline its submission recorded released the post, and it went out:
    the approval is named, with the entry whose deadline it broke."""
    log, deadline, submitted = _held_and_approved_once(3600, waited=3700)
    at = log.time()
    late = _releases(log, "1")
    _publish(log, "1", "brand")
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {late}: " + _late_approval("1", at, 102, deadline, submitted),
    ]


def test_approvals_before_a_deadline_or_after_one_since_moved_in_the_log_pass(tmp_path: Path) -> None:
    """What the gateway logs honestly is not named: the last approval a second before the
    deadline; one after the deadline of its first hold but before the new one an edit that held
    it again recorded; one after its submission's deadline once a decision again held it anew
    with a later one; and, from a log written before edits recorded deadlines, one after the
    submission's deadline once an edit held the post again (its deadline unknown)."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held_until(log, "1", log.time(60))
    _approve(log, "1", "bob")
    log.wait(57)
    _releases(log, "1")  # a second before the deadline
    _publish(log, "1", "brand")
    _held_until(log, "2", log.time(60))
    _approve(log, "2", "bob")
    _releases(log, "2")
    _held_anew(log, "2", version=2, deadline=log.time(86_400))
    log.wait(3600)
    _approve(log, "2", "bob", version=2)
    _releases(log, "2", version=2)
    _publish(log, "2", "brand", version=2)
    _held_until(log, "3", log.time(60))
    log.wait(30)
    _redecide(log, "3", "brand", version=2, approvers=["bob", "dave"], required=2, sha="p1",
              cause="policy_changed")
    _redecide(log, "3", "brand", version=3, approvers=["bob", "dave"], required=2, sha="p1",
              cause="policy_changed", expires_at=log.time(86_400))
    log.wait(3600)
    _approve(log, "3", "bob", version=3)
    _releases(log, "3", version=3)
    _publish(log, "3", "brand", version=3)
    _held_until(log, "4", log.time(60))
    _approve(log, "4", "bob")
    _releases(log, "4")
    log.add("post.edited", actor="carol", account="brand", post="4", data={
        "version": 2, "text_hash": log.commit("carol's words v2"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1"})
    log.wait(3600)
    _approve(log, "4", "bob", version=2)
    _releases(log, "4", version=2)
    _publish(log, "4", "brand", version=2)
    assert messages(log.verify(tmp_path / "ok.export")) == []


def test_a_deadline_moved_by_a_later_entry_is_the_one_approvals_answer_to(tmp_path: Path) -> None:
    """The deadline is the last one the log recorded: an edit that held the post again an hour
    later, and a decision again after that, each moves it, and an approval after the last is
    named for it; the grace lets an approval two seconds late pass, and no more."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held_until(log, "1", log.time(60))
    _approve(log, "1", "bob")
    _releases(log, "1")
    log.wait(3600)
    edited = log.time(600)
    _held_anew(log, "1", version=2, deadline=edited)
    deadline = log.time(60)
    again = _redecide(log, "1", "brand", version=3, approvers=["bob", "dave"], required=2, sha="p1",
                      cause="policy_changed", expires_at=deadline)
    log.wait(120)
    at = log.time()
    late = _approve(log, "1", "bob", version=3)
    _held_until(log, "2", log.time(3))
    _approve(log, "2", "bob")
    log.wait(3)
    _approve(log, "2", "dave")  # the deadline plus the grace, to the second: passes
    grace = log.time(0.75)
    submitted = _held_until(log, "3", grace)
    log.wait(2)
    over = _approve(log, "3", "bob")
    assert edited > deadline
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {late}: " + _late_approval("1", at, 61, deadline, again),
        f"entry {over}: " + _late_approval("3", log.time(-1), 2, grace, submitted),
    ]


def test_a_hold_expired_instead_of_decided_again_passes(tmp_path: Path) -> None:
    """A policy change takes carol off the writers while her held post is past its deadline:
    the gateway expires it in the change's transaction rather than hold it anew, and that
    answers what the change owed it; an approval after the expiry is still named."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held_until(log, "1", log.time(60))
    log.wait(120)
    log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p2", kind="policy.changed")
    log.add("post.expired", actor="system", account="brand", post="1", data={"state": "expired", "version": 1})
    bad = log.add("post.approved", actor="bob", account="brand", post="1",
                  data={"version": 1, "count": 1, "required": 2, "state": "held", "policy_sha256": "p2"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {bad}: post.approved of post 1, which was expired: its life does not go that way",
    ]


def _expires(log: SyntheticLog, post: str, account: str = "brand", version: int = 1) -> int:
    """The gateway's expiry of a held post, as it writes it."""
    return log.add("post.expired", actor="system", account=account, post=post,
                   data={"state": "expired", "version": version})


def _early_expiry(post: str, at: str, early: int, deadline: str, entry: int) -> str:
    return (f"post {post} expired at {at}, {early} s before {deadline}, when entry {entry} said its hold "
            "expired: more than the 2 s an expiry may be early")


def test_a_hold_expired_before_its_deadline_is_named(tmp_path: Path) -> None:
    """A forged log: the hold's deadline moved earlier in the database, so the sweep expired
    carol's post an hour after it was held, where its submission said it was held a day (its
    approvers never got to approve it); another's deadline, moved later by an edit that held it
    anew, is the one its expiry answers to. Each expiry is named with the entry whose deadline
    it broke; the grace lets one two seconds early pass, and no more."""
    log, day, submitted = _held_and_approved_once(86_400, waited=3600)
    at = log.time()
    early = _expires(log, "1")
    _held_until(log, "2", log.time(60))
    _approve(log, "2", "bob")
    _releases(log, "2")
    anew = log.time(86_400)
    edited = _held_anew(log, "2", version=2, deadline=anew)
    log.wait(120)
    at_2 = log.time()
    early_2 = _expires(log, "2", version=2)
    _held_until(log, "3", log.time(4))
    log.wait(1)
    _expires(log, "3")  # two seconds before the deadline, the grace to the second: passes
    grace = log.time(3.25)
    held = _held_until(log, "4", grace)
    over = _expires(log, "4")
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {early}: " + _early_expiry("1", at, 82_798, day, submitted),
        f"entry {early_2}: " + _early_expiry("2", at_2, 86_279, anew, edited),
        f"entry {over}: " + _early_expiry("4", log.time(-1), 2, grace, held),
    ]


def test_a_hold_with_no_deadline_is_never_expired(tmp_path: Path) -> None:
    """A forged log: carol's held post, parked with no deadline when brand's policy was removed
    (the decision again records none: it waits for a policy and a decision), is expired a day
    later. Named: the gateway expires only a hold past its deadline. The same post decided again
    once the policy is back, with a deadline, expires after it and passes."""
    def parked(expire_late: bool) -> tuple[SyntheticLog, int, int]:
        log = SyntheticLog()
        log.policy("brand", COSIGNED, "p1")
        _held_until(log, "1", log.time(86_400))
        log.add("policy.removed", actor="policy-file", account="brand", data={"previous_sha256": "p1"})
        parked_at = _redecide(log, "1", "brand", version=1, approvers=["bob", "dave"], required=2, sha=None,
                              cause="policy_removed", expires_at=None)
        log.wait(86_400)
        if expire_late:
            log.policy("brand", COSIGNED, "p1", kind="policy.changed")
            _redecide(log, "1", "brand", version=2, approvers=["bob", "dave"], required=2, sha="p1",
                      cause="policy_changed", expires_at=log.time(86_400))
            log.wait(86_400)
        return log, parked_at, _expires(log, "1", version=2 if expire_late else 1)

    log, parked_at, expired = parked(expire_late=False)
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {expired}: post 1 expired, but entry {parked_at} held it with no deadline: a hold without one "
        "waits for a decision and never expires",
    ]
    log, _, _ = parked(expire_late=True)
    assert messages(log.verify(tmp_path / "honest.export")) == []


def test_expiries_at_their_deadline_or_with_none_recorded_pass(tmp_path: Path) -> None:
    """What the gateway logs honestly is not named: an expiry at the deadline its submission
    recorded, one after it, one after a deadline an approval that kept the post held left as it
    was, and, from a log written before entries recorded deadlines, an expiry at any time."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held_until(log, "1", log.time(60))
    log.wait(58)
    _expires(log, "1")  # at the deadline, to the second
    _held_until(log, "2", log.time(60))
    log.wait(3600)
    _expires(log, "2")
    _held_until(log, "3", log.time(120))
    _approve(log, "3", "bob")
    log.wait(120)
    _expires(log, "3")
    log.submit("4", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _expires(log, "4")
    assert messages(log.verify(tmp_path / "ok.export")) == []


async def test_byline_audit_verify_rejects_a_hold_expired_early(tmp_path: Path) -> None:
    """The real command, on an export whose post was expired an hour after it was held for a
    day; its ``--due-grace`` widened past the gap lets it pass."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held_until(log, "1", log.time(86_400))
    log.wait(3600)
    _expires(log, "1")
    await _named_then_passed_with_grace(log, tmp_path, ("post 1 expired at", "s before",
                                                        "more than the 2 s an expiry may be early"), grace="90000")


def _held_reply(log: SyntheticLog, post: str, parent: str, deadline: str) -> int:
    """carol's reply to ``parent`` on brand, held until ``deadline`` as it waits for it."""
    return log.add("post.submitted", actor="carol", account="brand", post=post, data={
        "version": 1, "text_hash": log.commit(f"text of {post}"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1", "publish_at": None, "expires_at": deadline,
        "reply_to_post": parent})


def _cancelled_with(log: SyntheticLog, post: str, parent: str) -> int:
    """The gateway's cancellation of reply ``post`` with ``parent``, as it writes it."""
    return log.add("post.cancelled", actor="system", account="brand", post=post, data={
        "state": "cancelled", "version": 1, "reply_to_post": parent,
        "reason": f"the post it replies to, {parent}, was expired: this reply does not go out without it"})


def test_a_reply_cancelled_with_a_hold_a_policy_change_expired_passes(tmp_path: Path) -> None:
    """A change takes carol off the writers while her held post is past its deadline and her
    reply to it is not: the post expires and the reply is cancelled with it in the change's
    transaction, which answers what the change owed the reply. A cancellation by the gateway
    of her other reply, whose parent it left held (owed a decision, not ended), is named, and so
    is that parent, never decided again. Before, the honest cancellation was named as well."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held_until(log, "1", log.time(60))
    _held_until(log, "3", log.time(86_400))
    log.wait(30)
    _held_reply(log, "2", "1", log.time(86_400))
    _held_reply(log, "4", "3", log.time(86_400))
    log.wait(120)
    change = log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p2", kind="policy.changed")
    log.add("post.expired", actor="system", account="brand", post="1", data={"state": "expired", "version": 1})
    _cancelled_with(log, "2", "1")
    forged = _cancelled_with(log, "4", "3")
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {forged}: system cancelled post 4 with the post it replies to, 3, which was held: it had not ended",
        f"entry {change}: post 3 was never decided again after this change: carol no longer writes for brand",
    ]


def test_a_malformed_deadline_is_named(tmp_path: Path) -> None:
    """A deadline that is not a time cannot be compared with an approval, and is named as malformed."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    bad = _held_until(log, "1", "tomorrow")
    assert messages(log.verify(tmp_path / "x.export")) == [f"entry {bad}: has a malformed data.expires_at"]


def test_the_replay_one_fact_at_a_time_reads_each_entrys_deadline() -> None:
    """``feed`` given each entry's deadline finds what ``feed_flat`` does: an approval after the
    deadline its submission recorded; without the entry's time nothing is compared."""
    deadline = "2026-01-01T00:00:01.000000Z"
    facts: list[tuple[Fact, str | None]] = [
        (("policy.loaded", "policy-file", "brand", None, ("p1", COSIGNED, None)), None),
        (("post.submitted", "carol", "brand", "1", (1, "held", ("bob", "dave"), 2, "p1")), deadline),
        (("post.approved", "bob", "brand", "1", (1, "held", "p1")), None),
    ]
    stamps = _stamps(0, 1, 9)
    size = len(stamps) // 3
    one, run, untimed = Replay(), Replay(), Replay()
    for offset, (fact, when) in enumerate(facts):
        one.feed(20 + offset, fact, deadline=when, stamp=stamps[offset * size:(offset + 1) * size])
        untimed.feed(20 + offset, fact, deadline=when)
    run.feed_flat(20, [part for offset, (fact, _) in enumerate(facts) for part in (offset, *fact)],
                  stamps=stamps, deadlines={1: deadline})
    for replay in (one, run):
        assert replay.findings == [
            (22, _late_approval("1", "2026-01-01T00:00:09.000000Z", 8, deadline, 21)),
        ]
    assert untimed.findings == []


async def test_byline_audit_verify_rejects_an_approval_after_the_deadline(tmp_path: Path) -> None:
    """The real command, on an export whose post was approved an hour after its hold expired;
    its ``--due-grace`` widened past the gap lets it pass."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    _held_until(log, "1", log.time(60))
    _approve(log, "1", "bob")
    log.wait(3600)
    _releases(log, "1")
    _publish(log, "1", "brand")
    await _named_then_passed_with_grace(log, tmp_path, ("post 1 was approved at", "said its hold expired"),
                                        grace="4000")


def test_a_deadline_later_than_the_policy_lets_a_hold_last_is_named(tmp_path: Path) -> None:
    """A forged log: the policy lets a hold last an hour, and a submission, an edit that held the
    post again and a decision again each record a deadline a day out, so approvals a day late
    would pass. Each is named; the deadlines the policy allows (to the grace) pass, an edit of
    a post still held keeps its hold's deadline unjudged, and a policy recorded before summaries
    said how long a hold lasts judges none."""
    log = SyntheticLog()
    log.policy("brand", {**COSIGNED, "expire_after_seconds": 3600}, "p1")
    day = log.time(86_400)
    submitted = _held_until(log, "1", day)
    _held_until(log, "2", log.time(3602))
    _approve(log, "2", "bob")
    _releases(log, "2")
    edited_day = log.time(86_400)
    edited = _held_anew(log, "2", version=2, deadline=edited_day)
    _held_anew(log, "2", version=3, deadline=edited_day)
    again_day = log.time(86_400)
    again = _redecide(log, "2", "brand", version=4, approvers=["bob", "dave"], required=2, sha="p1",
                      cause="policy_changed", expires_at=again_day)
    log.policy("old", COSIGNED, "o1")
    log.add("post.submitted", actor="carol", account="old", post="3", data={
        "version": 1, "text_hash": log.commit("text of 3"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "o1", "publish_at": None, "expires_at": log.time(86_400 * 365)})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {submitted}: post 1 was held until {day}, 86400 s after entry {submitted}, where its policy "
        "lets a hold last 3600 s",
        f"entry {edited}: post 2 was held until {edited_day}, 86400 s after entry {edited}, where its policy "
        "lets a hold last 3600 s",
        f"entry {again}: post 2 was held until {again_day}, 86400 s after entry {again}, where its policy "
        "lets a hold last 3600 s",
    ]


def test_a_holds_length_is_judged_by_the_policy_its_entry_names(tmp_path: Path) -> None:
    """A forged log: brand's policy let a hold last an hour, and was replaced a moment ago by one
    that lets it last two days. A submission and a decision again that name the policy replaced
    (a gateway that had not read the change yet) and hold a post a day are named by the hour it
    allows, not passed by the two days of the one in force; one that names it minutes after the
    change is named for that."""
    log = SyntheticLog()
    log.policy("brand", {**COSIGNED, "expire_after_seconds": 3600}, "p1")
    change = log.policy("brand", {**COSIGNED, "expire_after_seconds": 2 * 86_400}, "p2", kind="policy.changed")
    day = log.time(86_400)
    submitted = _held_until(log, "1", day)
    _held_until(log, "2", log.time(86_400), sha="p2")
    again_day = log.time(86_400)
    again = _redecide(log, "2", "brand", version=1, approvers=["bob", "dave"], required=2, sha="p1",
                      cause="policy_changed", expires_at=again_day)
    log.wait(400)
    late = _held_until(log, "3", log.time(3600))
    after = late - change + 400
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {submitted}: post 1 was held until {day}, 86400 s after entry {submitted}, where its policy "
        "lets a hold last 3600 s",
        f"entry {again}: post 2 was held until {again_day}, 86400 s after entry {again}, where its policy "
        "lets a hold last 3600 s",
        f"entry {late}: carol submitted a post to brand under policy p1, {after} s after entry {change} replaced "
        "it: longer than the 300 s a gateway may take to see a policy change",
        f"entry {late}: post 3 was held under policy p1, {after} s after entry {change} replaced it: longer than "
        "the 300 s a gateway may take to see a policy change",
    ]


@pytest.mark.parametrize(("kind", "actor", "data", "was", "goes"), [
    ("post.cancelled", "carol", {"state": "scheduled", "version": 1}, "held", "cancelled"),
    ("post.rejected", "bob", {"state": "scheduled", "version": 1}, "held", "rejected"),
    ("post.expired", "system", {"state": "scheduled", "version": 1}, "held", "expired"),
    ("post.approved", "bob", {"state": "published", "version": 1}, "held", "held or scheduled"),
    ("post.edited", "carol", {"state": "scheduled", "version": 2, "approvers": ["bob", "dave"], "required": 1},
     "held", "held"),
])
def test_an_event_that_says_its_post_is_where_its_life_does_not_take_it_is_named(
    tmp_path: Path, kind: str, actor: str, data: dict[str, Any], was: str, goes: str,
) -> None:
    """A cancellation, rejection or expiry of carol's held post that says it is still scheduled,
    an approval that says it is out, or her edit that says it is released (an edit holds a post
    anew, never releases one): taken at its word, the post would go out with no one approving
    it (the claim after it judged as a released post's), or with no claim recorded. Named, with
    where the post's life takes it; before, each verified."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("1", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=1, sha="p1")
    if kind == "post.edited":
        data = {**data, "text_hash": log.commit("carol's words v2")}
    forged = log.add(kind, actor=actor, account="brand", post="1", data={**data, "policy_sha256": "p1"})
    assert f"entry {forged}: {kind} of post 1, which was {was}, says it is {data['state']}: its life takes it " \
           f"to {goes}" in messages(log.verify(tmp_path / "forged.export"))


@pytest.mark.parametrize("twin", ["Alice", "aIice"])
def test_a_policy_naming_one_person_two_ways_is_named(tmp_path: Path, twin: str) -> None:
    """A forged log whose policy makes alice a writer and ``twin`` (a name that reads as hers) a
    co-signer, and whose post by alice goes out on bob's approval and ``twin``'s: the policy's
    entry is named, as the gateway refuses such a file. Before, the log verified, one person
    having co-signed her own words under a second spelling of her name."""
    log = SyntheticLog()
    bad = log.policy("brand", summary(owner="alice", writers=["alice"], approvers=["bob", twin],
                                      required=2, tier="co-signed"), "p1")
    log.submit("1", author="alice", account="brand", state="held", approvers=["bob", twin], required=2, sha="p1")
    _approve(log, "1", "bob")
    _approve(log, "1", twin, state="scheduled")
    _publish(log, "1", "brand")
    report = log.verify(tmp_path / "twin.export")
    assert messages(report) == [
        f"entry {bad}: the policy for brand names one person two ways, 'alice' and '{twin}': "
        "their approvals would count as two people's"
    ]


# ---- a pending revision: a published post's new words held as a post of their own -----------


def _cosigned_published_with_a_pending_revision(
    log: SyntheticLog, post: str = "2", pending: str = "3", words: str = "Launch day, fixed",
) -> None:
    """Carol's ``post`` out on co-signed ``brand`` (its policy recorded first, for post 2), and
    her pending revision of it, ``pending``, saying ``words``, held for two of its approvers."""
    if post == "2":
        log.policy("brand", COSIGNED, "p1")
    log.submit(post, author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, post, "bob")
    _approve(log, post, "dave", state="scheduled")
    _publish(log, post, "brand")
    log.add("post.submitted", actor="carol", account="brand", post=pending, data={
        "version": 1, "text_hash": log.commit(words), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1", "revises": post})


def _revision_of_2(log: SyntheticLog, kind: str, words: str, **extra: Any) -> int:
    """Post 2's revision entry; naming a pending revision, it says what it carries (nothing, by default)."""
    carried = {"revision_content_sha256": None} if "revision" in extra else {}
    return log.add(kind, actor="carol", account="brand", post="2", data={
        "version": 2, "text_hash": log.commit(words), "state": "published", "remote_id": "r2",
        "policy_sha256": "p1", **carried, **extra})


def test_a_revision_released_by_its_approvals_passes(tmp_path: Path) -> None:
    """The honest gateway's pending revision on a co-signed account: approved by two of its
    approvers, then sent and recorded naming it, with its words."""
    log = SyntheticLog()
    _cosigned_published_with_a_pending_revision(log)
    _approve(log, "3", "bob")
    _approve(log, "3", "dave", state="scheduled")
    _revision_of_2(log, "post.revising", "Launch day, fixed", revision="3")
    _revision_of_2(log, "post.revised", "Launch day, fixed", revision="3")
    assert messages(log.verify(tmp_path / "x.export")) == []


def test_a_revision_carrying_other_than_its_pending_revision_was_approved_with_is_named(tmp_path: Path) -> None:
    """A revision released by its pending revision that says it carries other options than its
    approved version (another content warning, say), or nothing where it carried some, is
    named; one saying them malformed is named as such; the one carrying them passes."""
    log = SyntheticLog()
    _cosigned_published_with_a_pending_revision(log)
    log.add("post.edited", actor="carol", account="brand", post="3", data={
        "version": 2, "text_hash": log.commit("Launch day, fixed"), "state": "held", "policy_sha256": "p1",
        "content_sha256": "a" * 64})
    _approve(log, "3", "bob", version=2)
    _approve(log, "3", "dave", version=2, state="scheduled")
    other = _revision_of_2(log, "post.revising", "Launch day, fixed", revision="3", content_sha256="c" * 64,
                           revision_content_sha256="b" * 64)
    none = _revision_of_2(log, "post.revised", "Launch day, fixed", revision="3", content_sha256="c" * 64,
                          revision_content_sha256=None)
    _cosigned_published_with_a_pending_revision(log, "4", "5", "Sale ends Friday")
    _approve(log, "5", "bob")
    _approve(log, "5", "dave", state="scheduled")
    malformed = log.add("post.revising", actor="carol", account="brand", post="4", data={
        "version": 2, "text_hash": log.commit("Sale ends Friday"), "state": "published", "remote_id": "r4",
        "policy_sha256": "p1", "revision": "5", "content_sha256": None, "revision_content_sha256": "B" * 64})
    silent = log.add("post.revised", actor="carol", account="brand", post="4", data={
        "version": 2, "text_hash": log.commit("Sale ends Friday"), "state": "published", "remote_id": "r4",
        "policy_sha256": "p1", "revision": "5", "content_sha256": None})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {malformed}: post.revising has a malformed data.revision_content_sha256",
        f"entry {silent}: post.revised names a pending revision but lacks data.revision_content_sha256",
        f"entry {other}: post.revising of post 2 sends other media or options than its revision 3 was approved "
        "with at version 2 (the content warning, visibility or an upload changed after its approvers saw it)",
        f"entry {none}: post.revised of post 2 sends other media or options than its revision 3 was approved "
        "with at version 2 (the content warning, visibility or an upload changed after its approvers saw it)",
    ]


def _revised_without_the_approvals() -> tuple[SyntheticLog, int, int]:
    """A forged log: a co-signed post revised through its pending revision with one approval of
    the two it was held for, and another revised with words its revision was not approved with."""
    log = SyntheticLog()
    _cosigned_published_with_a_pending_revision(log)
    _approve(log, "3", "bob", state="scheduled")  # the gateway's word that one was enough
    short = _revision_of_2(log, "post.revising", "Launch day, fixed", revision="3")
    _revision_of_2(log, "post.revised", "Launch day, fixed", revision="3")
    _cosigned_published_with_a_pending_revision(log, "4", "5", "Sale ends Friday")
    _approve(log, "5", "bob")
    _approve(log, "5", "dave", state="scheduled")
    other = log.add("post.revising", actor="carol", account="brand", post="4", data={
        "version": 2, "text_hash": log.commit("Sale ends never, buy our coin"), "state": "published",
        "remote_id": "r4", "policy_sha256": "p1", "revision": "5", "revision_content_sha256": None})
    return log, short, other


def test_a_revision_without_its_approvals_is_named(tmp_path: Path) -> None:
    """A revision of a co-signed post sent through a pending revision with fewer approvals than
    it was held for, or with other words than it was approved with, is named."""
    log, short, other = _revised_without_the_approvals()
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {short}: post 2 was sent its revision 3 (version 1) with 1 of the 2 approvals it needed",
        f"entry {other}: post 4 was sent other words than its revision 5 was approved with",
    ]


async def test_the_command_rejects_a_revision_without_its_approvals(tmp_path: Path) -> None:
    """The real command, on the export of that forged log."""
    log, short, _ = _revised_without_the_approvals()
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {short}: post 2 was sent its revision 3 (version 1) with 1 of the 2 approvals it needed" in said


def test_a_pending_revision_cancelled_by_the_gateway_only_with_its_post(tmp_path: Path) -> None:
    """The gateway cancels a pending revision only once the post it revises is deleted; a second
    pending revision of one post, and one of a post not out, are named."""
    log = SyntheticLog()
    _cosigned_published_with_a_pending_revision(log)
    early = log.add("post.cancelled", actor="system", account="brand", post="3",
                    data={"state": "cancelled", "version": 1, "revises": "2"})
    log.add("post.submitted", actor="carol", account="brand", post="6", data={
        "version": 1, "text_hash": log.commit("Launch day, fixed again"), "state": "held",
        "approvers": ["bob", "dave"], "required": 2, "policy_sha256": "p1", "revises": "2"})
    second = log.add("post.submitted", actor="carol", account="brand", post="7", data={
        "version": 1, "text_hash": log.commit("Launch day, fixed twice"), "state": "held",
        "approvers": ["bob", "dave"], "required": 2, "policy_sha256": "p1", "revises": "2"})
    log.add("post.deleted", actor="carol", account="brand", post="2", data={"state": "deleted", "remote_id": "r2"})
    log.add("post.cancelled", actor="system", account="brand", post="6",
            data={"state": "cancelled", "version": 1, "revises": "2"})
    log.submit("8", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    unpublished = log.add("post.submitted", actor="carol", account="brand", post="9", data={
        "version": 1, "text_hash": log.commit("not out yet"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1", "revises": "8"})
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {early}: system cancelled post 3, a pending revision of 2, which was not deleted",
        f"entry {second}: post 7 was stored as a second pending revision of 2",
        f"entry {unpublished}: post 9 was stored as a revision of 8, which is not a published post carol wrote "
        "for brand",
    ]


def _revised_by_its_editor_then_approved_by_them() -> tuple[SyntheticLog, int]:
    """A forged log: bob writes words into carol's pending revision, which dave and erin approve
    and which goes out; her next revision of the post keeps his words, and goes out on his
    approval and dave's, one that counts for none (he wrote some of those words) and one that does."""
    log = SyntheticLog()
    log.policy("brand", summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "dave", "erin"],
                                required=2, tier="co-signed"), "p1")
    gate = {"approvers": ["bob", "dave", "erin"], "required": 2}
    log.submit("2", author="carol", account="brand", state="held", sha="p1", **gate)
    _approve(log, "2", "bob")
    _approve(log, "2", "dave", state="scheduled")
    _publish(log, "2", "brand")
    log.add("post.submitted", actor="carol", account="brand", post="3", data={
        "version": 1, "text_hash": log.commit("Doors at 10"), "state": "held", "policy_sha256": "p1",
        "revises": "2", **gate})
    log.add("post.edited", actor="bob", account="brand", post="3", data={
        "version": 2, "text_hash": log.commit("Doors at 10, bar at 8"), "state": "held", "policy_sha256": "p1"})
    _approve(log, "3", "dave", version=2)
    _approve(log, "3", "erin", version=2, state="scheduled")
    _revision_of_2(log, "post.revising", "Doors at 10, bar at 8", revision="3")
    _revision_of_2(log, "post.revised", "Doors at 10, bar at 8", revision="3")
    log.add("post.submitted", actor="carol", account="brand", post="4", data={
        "version": 1, "text_hash": log.commit("Doors at 10, bar at 8!"), "state": "held", "policy_sha256": "p1",
        "revises": "2", **gate})
    _approve(log, "4", "bob")
    _approve(log, "4", "dave", state="scheduled")
    sent = log.add("post.revising", actor="carol", account="brand", post="2", data={
        "version": 3, "text_hash": log.commit("Doors at 10, bar at 8!"), "state": "published", "remote_id": "r2",
        "policy_sha256": "p1", "revision": "4", "revision_content_sha256": None})
    return log, sent


def test_a_revision_approved_by_a_writer_of_the_one_before_is_named(tmp_path: Path) -> None:
    """Words written into a pending revision are the post's once it goes out: a later revision's
    approval by their writer counts for none, and its release on it is named. Before, it verified."""
    log, sent = _revised_by_its_editor_then_approved_by_them()
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {sent - 2}: bob approved post 4 (version 1), which has their words",
        f"entry {sent}: post 2 was sent its revision 4 (version 1) with 1 of the 2 approvals it needed",
    ]


async def test_the_command_rejects_a_revision_approved_by_a_writer_of_the_one_before(tmp_path: Path) -> None:
    """The real command, on the export of that forged log."""
    log, sent = _revised_by_its_editor_then_approved_by_them()
    said = await _named_by_the_command(log, tmp_path)
    assert f"entry {sent}: post 2 was sent its revision 4 (version 1) with 1 of the 2 approvals it needed" in said


@pytest.mark.parametrize("decided_again", [True, False])
def test_a_revision_whose_author_lost_their_role_goes_out_only_once_decided_again(
    tmp_path: Path, decided_again: bool,
) -> None:
    """Carol's pending revision held anew for people with a role once she no longer writes, then
    approved by two of them, goes out as any post decided again does: it passes (before, the
    honest gateway's log was named). Released with no such decision, it is named."""
    log = SyntheticLog()
    _cosigned_published_with_a_pending_revision(log)
    log.policy("brand", {**COSIGNED, "writers": ["alice"]}, "p2", kind="policy.changed")
    version = 1
    if decided_again:
        version = 2
        _redecide(log, "3", "brand", version=version, approvers=["bob", "carol", "dave"], required=2, sha="p2")
    _approve(log, "3", "bob", version=version)
    _approve(log, "3", "dave", version=version, state="scheduled")
    sent = _revision_of_2(log, "post.revising", "Launch day, fixed", revision="3", policy_sha256="p2")
    _revision_of_2(log, "post.revised", "Launch day, fixed", revision="3", policy_sha256="p2")
    said = messages(log.verify(tmp_path / "x.export"))
    if decided_again:
        assert said == []
    else:
        assert f"entry {sent}: carol revised post 2 but is not its author writing for brand" in said


def _released_revision_on(log: SyntheticLog, post: str, pending: str, sha: str) -> None:
    """Carol's ``post`` out on co-signed ``brand`` under policy ``sha`` (its claim naming it), and
    her pending revision of it, ``pending``, approved by two co-signers: released, due."""
    log.submit(post, author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha=sha)
    _approve(log, post, "bob")
    _approve(log, post, "dave", state="scheduled")
    log.add("post.publishing", actor="system", account="brand", post=post,
            data={"attempt": 1, "version": 1, "text_hash": log.commit(f"text of {post}"), "policy_sha256": sha})
    log.add("post.published", actor="system", account="brand", post=post,
            data={"remote_id": f"r{post}", "url": f"https://example.social/{post}", "version": 1})
    _released_pending(log, post, pending, sha)


def _released_pending(log: SyntheticLog, post: str, pending: str, sha: str) -> None:
    """Carol's pending revision ``pending`` of her published ``post``, approved by two co-signers."""
    log.add("post.submitted", actor="carol", account="brand", post=pending, data={
        "version": 1, "text_hash": log.commit(f"new words of {post}"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": sha, "revises": post})
    _approve(log, pending, "bob")
    _approve(log, pending, "dave", state="scheduled")


def _given_up(log: SyntheticLog, pending: str, post: str, sha: str | None, *, actor: str = "system") -> int:
    """``actor``'s word that the pending revision ``pending`` of ``post`` can never be made."""
    return log.add("post.failed", actor=actor, account="brand", post=pending, data={
        "state": "failed", "version": 1, "error": "brand is no longer where the post is", "revises": post,
        **({} if sha is None else {"policy_sha256": sha})})


def _revisions_given_up() -> tuple[SyntheticLog, list[int]]:
    """A log of pending revisions given up: honestly (the account moved to another platform, or
    to another Mastodon server, a policy of its own), and forged (the account where the post went
    out, under the very policy, or, on a platform with one server, under another policy of it;
    by a person; of a revision already sent to the platform)."""
    log = SyntheticLog()
    masto = {**COSIGNED, "platform": "mastodon"}
    log.policy("brand", masto, "p1")
    _released_revision_on(log, "2", "3", "p1")
    forged = [_given_up(log, "3", "2", "p1")]
    _released_revision_on(log, "4", "5", "p1")
    forged.append(_given_up(log, "5", "4", None))  # an older gateway's, naming no policy: the one in force
    _released_revision_on(log, "6", "7", "p1")
    forged.append(_given_up(log, "7", "6", "p1", actor="carol"))
    _released_revision_on(log, "8", "9", "p1")
    log.add("post.revising", actor="carol", account="brand", post="8", data={
        "version": 2, "text_hash": log.commit("new words of 8"), "state": "published", "remote_id": "r8",
        "policy_sha256": "p1", "revision": "9", "revision_content_sha256": None})
    forged.append(_given_up(log, "9", "8", "p1"))  # sent: settled by the post's own entries, never failed
    log.policy("brand", {**masto, "writers": ["alice", "carol", "erin"]}, "p2", kind="policy.changed")
    _released_pending(log, "2", "11", "p2")
    _given_up(log, "11", "2", "p2")  # maybe another server: the log cannot tell
    log.policy("brand", {**COSIGNED, "platform": "x"}, "p3", kind="policy.changed")
    _released_pending(log, "2", "14", "p3")
    _given_up(log, "14", "2", "p3")  # on x, where the post is not: honest
    _released_revision_on(log, "12", "13", "p3")
    log.policy("brand", {**COSIGNED, "platform": "x", "writers": ["alice", "carol", "erin"]}, "p4",
               kind="policy.changed")
    forged.append(_given_up(log, "13", "12", "p4"))  # x is one server: nothing moved
    return log, forged


def test_a_pending_revision_given_up_only_where_the_log_shows_why(tmp_path: Path) -> None:
    """The gateway gives up a released pending revision (``post.failed`` naming the post it
    revises) only where its account left where the post went out: another platform, or another
    policy on one whose servers number their own posts. Given up while the account stayed, by a
    person, or once sent to the platform, it silenced words its approvers let out: named (before,
    every such failure verified)."""
    log, forged = _revisions_given_up()
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {forged[0]}: system failed post 3, a pending revision of 2, while its account was still where 2 "
        "went out (mastodon): nothing kept the revision from being made",
        f"entry {forged[1]}: system failed post 5, a pending revision of 4, while its account was still where 4 "
        "went out (mastodon): nothing kept the revision from being made",
        f"entry {forged[2]}: carol failed post 7, a pending revision of 6: only the gateway gives one up",
        f"entry {forged[3]}: system failed post 9, a pending revision of 8, which was publishing: only one "
        "released by its approvals or its time, and not sent, is given up",
        f"entry {forged[4]}: system failed post 13, a pending revision of 12, while its account was still where 12 "
        "went out (x): nothing kept the revision from being made",
    ]


async def test_the_command_rejects_a_pending_revision_given_up_for_nothing(tmp_path: Path) -> None:
    """The real command, on the export of that forged log."""
    log, forged = _revisions_given_up()
    said = await _named_by_the_command(log, tmp_path)
    assert (f"entry {forged[0]}: system failed post 3, a pending revision of 2, while its account was still where "
            "2 went out (mastodon): nothing kept the revision from being made") in said, said


LINED = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "dave", "erin"], required=2,
                tier="co-signed", disclosure="—{author}")
_THREE = {"approvers": ["bob", "dave", "erin"], "required": 2}


def _lined_pending(log: SyntheticLog, post: str, pending: str, words: str, *, sha: str = "p1") -> None:
    """Carol's ``post`` out on ``brand`` (policy ``LINED``) and her pending revision of it saying ``words``."""
    log.submit(post, author="carol", account="brand", state="held", sha=sha, **_THREE)
    _approve(log, post, "bob")
    _approve(log, post, "dave", state="scheduled")
    _publish(log, post, "brand", text=f"text of {post}\n\n—carol")
    log.add("post.submitted", actor="carol", account="brand", post=pending, data={
        "version": 1, "text_hash": log.commit(words), "state": "held", "policy_sha256": sha, "revises": post,
        **_THREE})


def _bound(log: SyntheticLog, post: str, who: str, *, version: int = 1, state: str = "held", sha: str = "p1") -> int:
    """``who``'s approval of ``post``, given for its words with the disclosure line of policy ``sha``."""
    return log.add("post.approved", actor=who, account="brand", post=post, data={
        "version": version, "count": 1, "required": 2, "state": state, "policy_sha256": sha, "text_bound": True})


def _sent_with_line(log: SyntheticLog, kind: str, post: str, pending: str, words: str, line: str | None,
                    *, sha: str = "p1") -> int:
    """Post ``post``'s revision entry released by ``pending``, saying the disclosure line ``line``."""
    return log.add(kind, actor="carol", account="brand", post=post, data={
        "version": 2, "text_hash": log.commit(words), "state": "published", "remote_id": f"r{post}",
        "policy_sha256": sha, "revision": pending, "revision_content_sha256": None,
        **({} if line is None else {"disclosure_line": line})})


def _revisions_with_lines() -> tuple[SyntheticLog, list[int]]:
    """Revisions released by their pending revisions, saying the disclosure line they went out
    with: honestly, and forged (a line hiding the co-signer who edited the words; a record of
    another line than was sent; a line left unsaid, well past the first said; a line other than
    the approvals were given for, the policy's line changed since)."""
    log = SyntheticLog()
    log.policy("brand", LINED, "p1")
    _lined_pending(log, "2", "3", "Launch day, fixed")
    _bound(log, "3", "bob")
    _bound(log, "3", "dave", state="scheduled")
    _sent_with_line(log, "post.revising", "2", "3", "Launch day, fixed", "—carol")
    _sent_with_line(log, "post.revised", "2", "3", "Launch day, fixed", "—carol")
    _lined_pending(log, "4", "5", "Doors at 10")
    log.add("post.edited", actor="bob", account="brand", post="5", data={
        "version": 2, "text_hash": log.commit("Doors at 10, free drinks"), "state": "held", "policy_sha256": "p1"})
    _bound(log, "5", "dave", version=2)
    _bound(log, "5", "erin", version=2, state="scheduled")
    hidden = _sent_with_line(log, "post.revising", "4", "5", "Doors at 10, free drinks", "—carol")
    _sent_with_line(log, "post.revised", "4", "5", "Doors at 10, free drinks", "—carol")
    _lined_pending(log, "6", "7", "Sale on Friday")
    _bound(log, "7", "bob")
    _bound(log, "7", "dave", state="scheduled")
    _sent_with_line(log, "post.revising", "6", "7", "Sale on Friday", "—carol")
    recorded = _sent_with_line(log, "post.revised", "6", "7", "Sale on Friday", "—carol and the brand team")
    log.wait(POLICY_GRACE_SECONDS + 1)
    _lined_pending(log, "8", "9", "Quiz at 8")
    _bound(log, "9", "bob")
    _bound(log, "9", "dave", state="scheduled")
    unsaid = _sent_with_line(log, "post.revising", "8", "9", "Quiz at 8", None)
    _sent_with_line(log, "post.revised", "8", "9", "Quiz at 8", "—carol")
    _lined_pending(log, "10", "11", "Talk at 4")
    _bound(log, "11", "bob")
    _bound(log, "11", "dave", state="scheduled")
    log.policy("brand", {**LINED, "disclosure": "(by {author})"}, "p2", kind="policy.changed")
    other = _sent_with_line(log, "post.revising", "10", "11", "Talk at 4", "(by carol)", sha="p2")
    return log, [hidden, recorded, unsaid, other]


def test_a_revision_sent_with_another_disclosure_line_than_approved_is_named(tmp_path: Path) -> None:
    """The entries that send and record a revision released by its pending revision say the
    disclosure line it went out with after its words (``disclosure_line``): the line the policy
    asks for, crediting whoever wrote into it, and the line its approvals were given for. A line
    hiding an editor, one recorded other than sent, one left unsaid once lines are said, and one
    its approvals were not given for are named (before, the log held the words alone, and any
    line passed)."""
    log, (hidden, recorded, unsaid, other) = _revisions_with_lines()
    assert messages(log.verify(tmp_path / "x.export")) == [
        f"entry {hidden}: post.revising of post 4 sends the disclosure line '—carol' with its words, where the "
        "policy it names asks for '—carol, edited by bob': other words went out than were written and approved",
        f"entry {recorded}: post.revised of post 6 records the disclosure line '—carol and the brand team', but "
        f"entry {recorded - 1} sent '—carol' to its platform",
        f"entry {unsaid}: post.revising of post 8 does not say the disclosure line it sends with its words "
        "(data.disclosure_line), though entries before it did: what went out cannot be compared with what was "
        "approved",
        f"entry {other}: post 10 was sent its revision 11 with another disclosure line than its approvals were "
        "given under: 0 of them were given for the words it sent, where it needed 2",
    ]


async def test_the_command_rejects_a_revision_hiding_who_wrote_it(tmp_path: Path) -> None:
    """The real command, on the export of that forged log."""
    log, (hidden, *_) = _revisions_with_lines()
    said = await _named_by_the_command(log, tmp_path)
    assert (f"entry {hidden}: post.revising of post 4 sends the disclosure line '—carol' with its words, where the "
            "policy it names asks for '—carol, edited by bob'") in said, said


def test_a_revision_entry_with_a_malformed_disclosure_line_is_named(tmp_path: Path) -> None:
    """A disclosure line that is no text is named as such, not read as none said."""
    log = SyntheticLog()
    log.policy("brand", LINED, "p1")
    _lined_pending(log, "2", "3", "Launch day, fixed")
    _bound(log, "3", "bob")
    _bound(log, "3", "dave", state="scheduled")
    bad = log.add("post.revising", actor="carol", account="brand", post="2", data={
        "version": 2, "text_hash": log.commit("Launch day, fixed"), "state": "published", "remote_id": "r2",
        "policy_sha256": "p1", "revision": "3", "revision_content_sha256": None, "disclosure_line": ["—carol"]})
    assert f"entry {bad}: post.revising has a malformed data.disclosure_line" in messages(
        log.verify(tmp_path / "x.export"))


def _answering_reply(log: SyntheticLog, post: str, parent: str, *, version: int | None = 1) -> int:
    """A reply to ``parent``, written before it went out, held for bob and dave, recording the
    parent's version its approvals answer (none, as an earlier Byline wrote it, for None)."""
    return log.add("post.submitted", actor="carol", account="brand", post=post, data={
        "version": 1, "text_hash": log.commit(f"text of {post}"), "state": "held", "approvers": ["bob", "dave"],
        "required": 2, "policy_sha256": "p1", "reply_to_post": parent,
        **({"answers_post": parent, "answers_version": version} if version is not None else {}),
    })


def test_a_reply_sent_after_its_parent_went_out_with_other_words_is_named(tmp_path: Path) -> None:
    """bob and dave approve a reply to post 1's version 1; carol edits post 1, they approve its
    version 2 and it goes out, and so does the reply: named, as it answers words its approvers
    never saw it answer. A reply whose parent went out at the version it answers passes, or at
    a later one of the same words (decided again), and so does one an earlier Byline wrote
    without a version before the log held one; one written without past the grace after is
    named (before: each passed)."""
    log = SyntheticLog()
    log.policy("brand", COSIGNED, "p1")
    log.submit("5", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    _answering_reply(log, "6", "5", version=None)
    for post in ("1", "3"):
        log.submit(post, author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2,
                   sha="p1")
        _answering_reply(log, str(int(post) + 1), post)
        for reply in (post, str(int(post) + 1)):
            _approve(log, reply, "bob")
            _approve(log, reply, "dave", state="scheduled")
    # Decided again, post 3 has a new version of the same words: the reply still answers them.
    _redecide(log, "3", "brand", version=2, approvers=["bob", "dave"], required=2, sha="p1")
    _approve(log, "3", "bob", version=2)
    _approve(log, "3", "dave", version=2, state="scheduled")
    _publish(log, "3", "brand", version=2)
    _publish(log, "4", "brand")
    _edit(log, "1", "carol", 2, sha="p1")
    _approve(log, "1", "bob", version=2)
    _approve(log, "1", "dave", version=2, state="scheduled")
    _publish(log, "1", "brand", version=2)
    for post in ("5", "6"):
        _approve(log, post, "bob")
        _approve(log, post, "dave", state="scheduled")
    _publish(log, "5", "brand")
    _publish(log, "6", "brand")
    assert messages(log.verify(tmp_path / "honest.export")) == []

    sent = _publish(log, "2", "brand") - 1
    log.wait(POLICY_GRACE_SECONDS + 1)
    log.submit("7", author="carol", account="brand", state="held", approvers=["bob", "dave"], required=2, sha="p1")
    unbound = _answering_reply(log, "8", "7", version=None)
    assert messages(log.verify(tmp_path / "forged.export")) == [
        f"entry {sent}: post 2 is sent replying to post 1, its approvals given while that post's words were its "
        "version 1, but post 1 was published at version 2: the reply answers words its approvers did not see it answer",
        f"entry {unbound}: post 8 replies to post 7, not yet out, but its entry records no version of it "
        "(data.answers_post and answers_version) that its approvals answer",
    ]
