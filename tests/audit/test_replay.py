"""The replayed rules catch what a rogue gateway could log, and pass what an honest one does."""

from __future__ import annotations

from pathlib import Path

from tests.audit.synthetic import SyntheticLog, messages, summary

COSIGNED = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "carol", "dave"],
                   required=2, tier="co-signed")
DIRECT = summary(owner="alice", writers=["alice"])
MANAGED = summary(owner="dave", writers=["bob"], suggesters=["dave"], tier="managed")


def _publish(log: SyntheticLog, post: str, account: str, version: int = 1) -> int:
    log.add("post.publishing", actor="system", account=account, post=post,
            data={"attempt": 1, "version": version, "text_hash": log.commit(f"out {post}")})
    return log.add("post.published", actor="system", account=account, post=post,
                   data={"remote_id": f"r{post}", "url": f"https://example.social/{post}", "version": version})


def _approve(log: SyntheticLog, post: str, who: str, version: int = 1, state: str = "held") -> int:
    return log.add("post.approved", actor=who, account="brand", post=post,
                   data={"version": version, "count": 1, "required": 2, "state": state})


def _redecide(
    log: SyntheticLog, post: str, account: str, *, version: int, approvers: list[str], required: int,
    sha: str | None, cause: str = "author_lost_role",
) -> int:
    """What the gateway records when a policy change holds a pending post for a new decision."""
    return log.add("post.redecided", actor="policy-file", account=account, post=post, data={
        "cause": cause, "state": "held", "version": version, "approvers": approvers,
        "required": required, "policy_sha256": sha,
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
    _approve(log, "1", "bob")
    bad = _publish(log, "1", "brand")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: post 1 was published (version 1) with 1 of the 2 approvals it needed"
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
    _approve(log, "1", "bob", version=2)
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
        f"entry {bad}: post 1 was published (version 2) with 0 of the 1 approvals it needed"
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
    _publish(log, "1", "brand")
    report = log.verify(tmp_path / "x.export")
    assert messages(report) == [
        f"entry {bad}: post 1 was submitted to co-signed brand as scheduled needing 0 approvals, not held for 2"
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
