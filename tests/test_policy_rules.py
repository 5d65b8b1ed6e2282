"""The policy side's pure functions, exactly: verdicts, gates, times, credits, who may act and
whose approval counts, the loader's issues (file, line, key, message), the registry's changes
and the summary recorded in the log.

Expected values are written out from the README's "Writing a policy" and the docstrings, not
computed by the code under test.
"""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from gateway.policy.announce import URL_BUDGET, render
from gateway.policy.byline import public_page
from gateway.policy.credit import contributors, credit
from gateway.policy.engine import (
    Act,
    Decision,
    Gate,
    Outcome,
    Reason,
    RuleVerdict,
    check_rules,
    counts_toward,
    decide,
    disclosed_text,
    gate_for,
    may,
    publish_time,
)
from gateway.policy.loader import (
    LoadedPolicy,
    PolicyChange,
    PolicyFileError,
    PolicyIssue,
    PolicyRegistry,
    _child,
    _key_line,
    check_dir,
    load_file,
    parse_policy,
    policy_files,
)
from gateway.policy.models import Policy, RateLimit, Rule, RuleAction, parse_duration
from gateway.policy.text import mastodon_length
from tests.conftest import TEST_POLICIES as POLICIES
from tests.conftest import write_policy

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _policy(name: str, text: str | None = None) -> Policy:
    return parse_policy(textwrap.dedent(text or POLICIES[name]), name=f"{name}.yaml", expected_account=name)


def _issues(text: str, name: str) -> list[PolicyIssue]:
    with pytest.raises(PolicyFileError) as info:
        parse_policy(textwrap.dedent(text), name=f"{name}.yaml", expected_account=name)
    return info.value.issues


DIRECT = _policy("direct")
DELAYED = _policy("delayed")
COSIGNED = _policy("cosigned")
MANAGED = _policy("managed")

RULED = _policy(
    "ruled",
    """
    account: ruled
    platform: sandbox
    tier: direct
    owner: alice
    rules:
      - {name: check, action: hold, any_words: [rumour], reason: Check it}
      - {name: fine, action: allow, any_words: [satire], reason: Marked as satire}
      - {name: late, action: hold, any_words: [tonight], reason: Too late}
      - {name: never, action: block, any_words: [slur], reason: Not okay}
    """,
)
HOLD_CHECK = Reason(rule="check", action=RuleAction.HOLD, reason="Check it")


# ---- the engine ----------------------------------------------------------------------------


def test_block_keeps_the_holds_gathered_before_it() -> None:
    """A block stops the chain and still reports the holds of the rules before it."""
    assert check_rules(RULED, "a rumour with a slur") == RuleVerdict(
        blocked_by=Reason(rule="never", action=RuleAction.BLOCK, reason="Not okay"), holds=(HOLD_CHECK,)
    )


def test_allow_ends_the_chain_with_the_holds_so_far() -> None:
    """An allow stops later rules (hold and block alike) but keeps earlier holds."""
    assert check_rules(RULED, "satire: a rumour tonight, slur") == RuleVerdict(blocked_by=None, holds=(HOLD_CHECK,))


def test_the_content_warning_goes_through_the_rules_too() -> None:
    """Each text a reader sees runs the chain: a block in the warning blocks, holds gather once
    each, and an allow in the text does not excuse the warning (nor the other way round)."""
    late = Reason(rule="late", action=RuleAction.HOLD, reason="Too late")
    never = Reason(rule="never", action=RuleAction.BLOCK, reason="Not okay")
    assert check_rules(RULED, "fine words", "a slur") == RuleVerdict(blocked_by=never, holds=())
    assert check_rules(RULED, "a rumour", "rumour tonight") == RuleVerdict(blocked_by=None, holds=(HOLD_CHECK, late))
    assert check_rules(RULED, "satire, a slur", "tonight") == RuleVerdict(blocked_by=None, holds=(late,))
    assert check_rules(RULED, "tonight", "satire, a slur") == RuleVerdict(blocked_by=None, holds=(late,))
    assert check_rules(RULED, "fine words", None, "") == RuleVerdict(blocked_by=None, holds=())
    assert decide(RULED, author="alice", text="fine", now=datetime(2026, 1, 1, tzinfo=UTC), requested=None,
                  suggestion=False, seen=("a slur",)) == never


def test_rule_matches_a_plain_string() -> None:
    """Rule.matches takes a plain string as well as a MatchText."""
    words = Rule(name="w", action=RuleAction.HOLD, any_words=("fired",), reason="r")
    pattern = Rule(name="p", action=RuleAction.HOLD, regex="(?i)scandal", reason="r")
    assert (words.matches("You're FIRED"), pattern.matches("A Scandal"), words.matches("hired")) == (True, True, False)


def test_gate_when_the_author_is_the_only_approver() -> None:
    """A post by the only approver still needs one approval, from nobody left: it can only expire."""
    policy = _policy(
        "solo",
        """
        account: solo
        platform: sandbox
        tier: co-signed
        owner: alice
        suggesters: [bob]
        approvals: {required: 1, from: [bob], expire_after: 2h}
        """,
    )
    assert gate_for(policy, "bob") == Gate(approvers=(), required=1, expire_after=timedelta(hours=2))


def test_gate_without_approvers_is_the_owner_for_a_day() -> None:
    """Where the policy names no approvers, the owner confirms, within 24 hours."""
    assert gate_for(DIRECT, "alice") == Gate(approvers=("alice",), required=1, expire_after=timedelta(hours=24))


def test_publish_time_waits_for_the_delay_and_the_requested_time() -> None:
    """A post goes out after the delay, or at the requested time if that is later."""
    ten = NOW + timedelta(minutes=10)
    assert publish_time(DELAYED, NOW, None) == ten
    assert publish_time(DELAYED, NOW, NOW + timedelta(minutes=1)) == ten
    assert publish_time(DELAYED, NOW, NOW + timedelta(hours=1)) == NOW + timedelta(hours=1)


def test_decide_schedules_at_the_requested_time() -> None:
    """A scheduled post keeps the later time its author asked for."""
    later = NOW + timedelta(hours=3)
    assert decide(DELAYED, author="bob", text="hello", now=NOW, requested=later, suggestion=False) == Decision(
        outcome=Outcome.SCHEDULED, reasons=(), gate=None, publish_at=later
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"author": "alice"}, "alice"),
        ({"author": "alice", "editors": ["carol"]}, "alice, edited by carol"),
        ({"author": "alice", "editors": ["carol", "bob"]}, "alice, edited by carol and bob"),
        ({"author": "alice", "editors": ["bob", "carol", "dave"]}, "alice, edited by bob, carol and dave"),
        ({"author": "alice", "editors": ["carol", "alice", "carol", "bob"]}, "alice, edited by carol and bob"),
        ({"author": "bob", "suggested_by": "dave"}, "bob, suggested by dave"),
        (
            {"author": "bob", "editors": ["dave", "carol"], "suggested_by": "dave"},
            "bob, suggested by dave, edited by carol",
        ),
        ({"author": "dave", "suggested_by": "dave"}, "dave"),
    ],
)
def test_credit_wording(kwargs: dict[str, object], expected: str) -> None:
    """The credit names everyone once, the author first, editors in order joined by "and"."""
    assert credit(**kwargs) == expected  # type: ignore[arg-type]


def test_contributors_are_author_editors_and_suggester() -> None:
    """Contributors are exactly the people who put words in; no suggester adds nobody."""
    assert contributors(author="alice", editors=["alice"]) == frozenset({"alice"})
    assert contributors(author="bob", editors=["carol"], suggested_by="dave") == frozenset({"bob", "carol", "dave"})


def test_disclosure_only_when_someone_but_the_owner_wrote() -> None:
    """The disclosure is added for other voices, the suggester included, and never without a template."""
    assert disclosed_text(COSIGNED, author="alice", text="hi") == "hi"
    assert disclosed_text(COSIGNED, author="alice", text="hi", suggested_by="dave") == "hi\n\n—alice, suggested by dave"
    assert disclosed_text(COSIGNED, author="carol", text="hi", editors=["bob"]) == "hi\n\n—carol, edited by bob"
    assert disclosed_text(DIRECT, author="bob", text="hi", editors=["carol"]) == "hi"


def test_approval_counts_only_from_an_approver_other_than_the_author() -> None:
    """Only a listed approver counts, never the author (even for words no longer theirs), nor a contributor."""
    assert counts_toward(COSIGNED, "bob", author="carol", contributed=frozenset({"carol"})) is True
    assert counts_toward(COSIGNED, "erin", author="carol", contributed=frozenset({"carol"})) is False
    assert counts_toward(COSIGNED, "carol", author="carol", contributed=frozenset({"bob"})) is False
    assert counts_toward(COSIGNED, "dave", author="carol", contributed=frozenset({"carol", "dave"})) is False


def test_suggester_acts_as_author_only_on_suggestions() -> None:
    """A suggester who is not a writer cancels their suggestion, but not a post unless it is one."""
    assert may(MANAGED, "dave", Act.CANCEL, author="dave", approvers=()) is False
    assert may(MANAGED, "dave", Act.CANCEL, author="dave", approvers=(), suggested=True) is True
    assert may(MANAGED, "erin", Act.CANCEL, author="erin", approvers=(), suggested=True) is False


def test_writer_who_is_also_listed_as_suggester_writes() -> None:
    """A writer listed among suggesters keeps a writer's rights on both kinds of post."""
    policy = _policy(
        "both",
        """
        account: both
        platform: sandbox
        tier: direct
        owner: alice
        writers: [alice, carol]
        suggesters: [carol, dave]
        """,
    )
    assert [may(policy, "carol", Act.CANCEL, author="carol", approvers=(), suggested=s) for s in (False, True)] == [
        True,
        True,
    ]
    assert may(policy, "carol", Act.ADOPT, author="dave", approvers=(), suggested=True) is True


def test_author_never_approves_their_own_post() -> None:
    """An approver who wrote the post cannot approve it, even if the stored gate lists them."""
    every = ("bob", "carol", "dave")
    assert may(COSIGNED, "carol", Act.APPROVE, author="carol", approvers=every) is False
    assert may(COSIGNED, "bob", Act.APPROVE, author="carol", approvers=every) is True


# ---- models --------------------------------------------------------------------------------


def test_duration_zero_and_bad_values() -> None:
    """A bare 0 is no delay; other bare numbers are refused with the duration hint."""
    assert parse_duration(0) == timedelta(0)
    assert parse_duration("1d2h3m4s") == timedelta(days=1, hours=2, minutes=3, seconds=4)
    for bad in (1, 5, "", "5x"):
        with pytest.raises(ValueError, match=r"^a duration such as 30s, 15m, 24h, 2d or 1h30m$"):
            parse_duration(bad)


def test_rate_limit_parses_and_refuses_with_a_hint() -> None:
    """rate_limit reads COUNT/UNIT; anything else names the key and shows the form."""
    text = POLICIES["direct"] + "    rate_limit: {}\n"
    assert _policy("direct", text.format("30/h")).rate_limit == RateLimit(count=30, seconds=3600)
    assert [str(i) for i in _issues(text.format("30 an hour"), "direct")] == [
        "direct.yaml:16: rate_limit: a rate such as 30/h (per s, m, h or d)"
    ]


def test_refused_regex_is_not_logged_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    """RE2's own error log stays quiet: the refusal goes to the admin, with the pattern's reason."""
    with pytest.raises(ValidationError, match="lookarounds"):
        Rule(name="r", action=RuleAction.HOLD, regex="(?=quiet-please)x", reason="r")
    assert capfd.readouterr().err == ""


def test_summary_is_what_changes_of_voice_are_judged_by() -> None:
    """The summary lists tier, platform, people, quorum, delay, how long a hold lasts, disclosure
    and rules, sorted where unordered."""
    assert COSIGNED.summary() == {
        "tier": "co-signed",
        "platform": "sandbox",
        "owner": "alice",
        "writers": ["alice", "carol"],
        "approvers": ["bob", "carol", "dave"],
        "required": 2,
        "suggesters": [],
        "delay_seconds": 60,
        "expire_after_seconds": 86400,
        "disclosure": "—{author}",
        "rules": [],
    }
    assert DIRECT.summary() == {
        "tier": "direct",
        "platform": "sandbox",
        "owner": "alice",
        "writers": ["alice"],
        "approvers": [],
        "required": 0,
        "suggesters": [],
        "delay_seconds": 0,
        "expire_after_seconds": 86400,
        "disclosure": None,
        "rules": [
            {"name": "breaking-news", "action": "hold", "reason": "Check the full story first"},
            {"name": "no-slurs", "action": "block", "reason": "Not okay to post"},
        ],
    }
    assert MANAGED.summary()["suggesters"] == ["dave"]
    assert MANAGED.summary()["disclosure"] == MANAGED.disclosure is not None


# ---- text ----------------------------------------------------------------------------------


def test_mastodon_counts_bare_domains_and_a_closing_mention() -> None:
    """Mastodon counts a bare domain as written (no scheme, no URL) and a trailing @user@domain as @user."""
    assert mastodon_length("read example.com") == 16
    assert mastodon_length("thanks @alice@example.social") == len("thanks @alice")
    assert mastodon_length("see https://example.com/a then @bob@example.social") == 4 + 23 + 6 + 4


# ---- the loader ----------------------------------------------------------------------------


def test_issue_text_and_json() -> None:
    """An issue reads file[:line][: key]: message, and shows the same four fields as JSON."""
    bare = PolicyIssue(file="a.yaml", line=None, key="", message="cannot read")
    full = PolicyIssue(file="a.yaml", line=3, key="tier", message="bad")
    assert (str(bare), str(full)) == ("a.yaml: cannot read", "a.yaml:3: tier: bad")
    assert full.to_json() == {"file": "a.yaml", "line": 3, "key": "tier", "message": "bad"}
    assert str(PolicyFileError([bare, full])) == "a.yaml: cannot read; a.yaml:3: tier: bad"


def test_child_finds_keys_and_items_only() -> None:
    """_child returns a mapping's value or a sequence's item, and None for anything else."""
    root = yaml.compose("a: 1\nb:\n  - x\n  - y\n")
    seq = _child(root, "b")
    assert isinstance(seq, yaml.SequenceNode)
    item = _child(seq, 1)
    assert item is not None and item.value == "y"
    assert [_child(root, "zz"), _child(root, 0), _child(seq, 2), _child(seq, "x"), _child(item, 0)] == [None] * 5


def test_key_line_follows_the_path_and_stops_where_it_ends() -> None:
    """The line is that of the deepest node found: the item of a list, or the document itself."""
    root = yaml.compose("# policy\naccount: x\nrules:\n  - name: a\n  - name: b\n    action: hold\n")
    assert _key_line(root, []) == 2
    assert _key_line(root, ["owner"]) == 2
    assert _key_line(root, ["rules", 1, "reason"]) == 5
    assert _key_line(root, ["rules", 1, "action"]) == 6
    assert _key_line(root, ["rules", 9, "name"]) == 3


def test_missing_keys_point_at_the_document_or_the_list_item() -> None:
    """A missing top-level key points at the document's first line, one in a rule at that rule."""
    text = """
        # a policy without an owner
        account: nobody
        platform: sandbox
        tier: direct
        rules:
          - {name: a, action: hold, any_words: [x], reason: r}
          - name: b
            action: hold
            any_words: [y]
    """
    assert [(i.line, i.key) for i in _issues(textwrap.dedent(text).lstrip(), "nobody")] == [
        (2, "owner"),
        (7, "rules.1.reason"),
    ]


def test_duplicate_keys_are_found_at_every_depth() -> None:
    """A key given twice is found inside a list item and a nested mapping, each with its line."""
    text = """
        account: dup
        platform: sandbox
        tier: co-signed
        owner: alice
        rules:
          - name: a
            name: b
            action: hold
            any_words: [x]
            reason: r
          - {name: c, action: hold, any_words: [y], reason: r}
        approvals:
          required: 1
          required: 1
          from: [bob]
    """
    assert [str(i) for i in _issues(textwrap.dedent(text).lstrip(), "dup")] == [
        "dup.yaml:7: name: key appears twice",
        "dup.yaml:14: required: key appears twice",
    ]


def test_a_key_twice_in_a_mapping_used_again_by_alias_is_said_once() -> None:
    """A mapping with a key given twice, used again through aliases: one issue, at its line, not
    one each time an alias brings the mapping back."""
    text = """
        account: dup
        platform: sandbox
        tier: direct
        owner: alice
        rules:
          - &rule {name: a, name: b, action: hold, any_words: [x], reason: r}
          - *rule
          - *rule
    """
    issues = [str(i) for i in _issues(textwrap.dedent(text).lstrip(), "dup")]
    assert [i for i in issues if "twice" in i] == ["dup.yaml:6: name: key appears twice"]
    under_keys = "account: dup\nplatform: sandbox\ntier: direct\nowner: alice\nx-a: &m {k: 1, k: 2}\nx-b: *m\n"
    assert [str(i) for i in _issues(under_keys, "dup") if "twice" in str(i)] == ["dup.yaml:5: k: key appears twice"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", PolicyIssue(file="x.yaml", line=1, key="", message="expected a mapping of keys")),
        ("# nothing yet\n", PolicyIssue(file="x.yaml", line=1, key="", message="expected a mapping of keys")),
        ("- a list\n- of things\n", PolicyIssue(file="x.yaml", line=1, key="", message="expected a mapping of keys")),
        ("just words\n", PolicyIssue(file="x.yaml", line=1, key="", message="expected a mapping of keys")),
        (
            "account: x\nplatform: sandbox\ntier: [direct\n",
            PolicyIssue(
                file="x.yaml", line=4, key="", message="not valid YAML: expected ',' or ']', but got '<stream end>'"
            ),
        ),
        (
            "account: x\x07\n",
            PolicyIssue(
                file="x.yaml",
                line=None,
                key="",
                message="not valid YAML: unacceptable character #x0007: special characters are not allowed\n"
                '  in "<unicode string>", position 10',
            ),
        ),
    ],
)
def test_unreadable_yaml_is_one_issue(text: str, expected: PolicyIssue) -> None:
    """Empty or non-mapping text, bad syntax (at the problem's line) and bad characters (no line): one issue each."""
    assert _issues(text, "x") == [expected]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ('"\\U7fffffff"', "chr() arg not in range(0x110000)"),
        ("1" * 5000, "Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits; "
                     "use sys.set_int_max_str_digits() to increase the limit"),
        ("2030-01-01 12:00:00 +99:99", "offset must be a timedelta strictly between -timedelta(hours=24) and "
                                       "timedelta(hours=24), not datetime.timedelta(days=4, seconds=16740)."),
    ],
)
def test_yaml_that_cannot_be_built_is_refused_and_the_cosigned_policy_stays(
    tmp_path: Path, value: str, problem: str
) -> None:
    """A value PyYAML reads but cannot build (a \\U escape past Unicode, an integer past Python's
    digit limit, a time zone past a day) is one issue naming the file, with no line and no key; the
    co-signed policy before it still holds a post for two approvals."""
    write_policy(tmp_path, "cosigned", POLICIES["cosigned"])
    registry = PolicyRegistry(directory=tmp_path)
    registry.reload()
    weaker = POLICIES["cosigned"].replace("tier: co-signed", f"tier: direct\n        note: {value}")
    write_policy(tmp_path, "cosigned", weaker)
    assert registry.reload() == []
    assert registry.errors == {
        "cosigned.yaml": [PolicyIssue(file="cosigned.yaml", line=None, key="", message=f"not valid YAML: {problem}")]
    }
    assert registry.errors["cosigned.yaml"][0].to_json() == {
        "file": "cosigned.yaml", "line": None, "key": "", "message": f"not valid YAML: {problem}"}
    in_force = registry.get("cosigned")
    assert in_force is not None
    held = Decision(outcome=Outcome.HELD, reasons=(), publish_at=None,
                    gate=Gate(approvers=("bob", "dave"), required=2, expire_after=timedelta(hours=24)))
    assert decide(in_force.policy, author="carol", text="hello", now=NOW, requested=None, suggestion=False) == held


def test_load_file_refuses_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is one issue with no line and no key, saying why."""
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"account: b\xffd\n")
    with pytest.raises(PolicyFileError) as info:
        load_file(path)
    assert info.value.issues == [
        PolicyIssue(
            file="bad.yaml",
            line=None,
            key="",
            message="cannot read: 'utf-8' codec can't decode byte 0xff in position 10: invalid start byte",
        )
    ]


def test_load_file_checks_the_account_against_the_file_name(tmp_path: Path) -> None:
    """A file must be named after its account."""
    path = write_policy(tmp_path, "other", POLICIES["direct"])
    with pytest.raises(PolicyFileError) as info:
        load_file(path)
    assert [str(i) for i in info.value.issues] == ["other.yaml:1: account: must equal the file name: other"]


def test_wrong_account_points_at_its_line() -> None:
    """The account that does not match the file name is reported at the account key's own line."""
    text = "platform: sandbox\ntier: direct\naccount: other\nowner: alice\n"
    assert [str(i) for i in _issues(text, "mine")] == ["mine.yaml:3: account: must equal the file name: mine"]


def test_policy_files_skips_hidden_files_and_directories(tmp_path: Path) -> None:
    """Only visible regular .yaml files are policy files, in name order."""
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / ".draft.yaml").write_text("x: 1\n")
    (tmp_path / "notes.txt").write_text("x\n")
    b = write_policy(tmp_path, "direct", POLICIES["direct"])
    a = write_policy(tmp_path, "delayed", POLICIES["delayed"])
    assert policy_files(tmp_path) == [a, b]


def test_check_dir_of_something_that_is_not_a_directory(tmp_path: Path) -> None:
    """Checking a missing directory gives one issue naming it."""
    missing = tmp_path / "nowhere"
    assert check_dir(missing) == ({}, [PolicyIssue(file=str(missing), line=None, key="", message="not a directory")])


def test_check_dir_keeps_the_good_and_lists_every_issue(tmp_path: Path) -> None:
    """check_dir returns each good policy by account and the issues of every bad file."""
    good = write_policy(tmp_path, "direct", POLICIES["direct"])
    write_policy(tmp_path, "broken", "account: broken\nplatform: sandbox\ntier: direct\nowner: x\ncolour: red\n")
    write_policy(tmp_path, "worse", "account: nope\nplatform: sandbox\ntier: direct\nowner: x\n")
    policies, issues = check_dir(tmp_path)
    assert policies == {"direct": load_file(good)}
    assert [str(i) for i in issues] == [
        "broken.yaml:5: colour: unknown key",
        "worse.yaml:1: account: must equal the file name: worse",
    ]


def test_reload_reports_loaded_unchanged_changed_and_removed(tmp_path: Path) -> None:
    """Each reload returns exactly what appeared, changed or went away, with old and new."""
    delayed = write_policy(tmp_path, "delayed", POLICIES["delayed"])
    direct = write_policy(tmp_path, "direct", POLICIES["direct"])
    registry = PolicyRegistry(directory=tmp_path)
    first_delayed, first_direct = load_file(delayed), load_file(direct)
    assert registry.reload() == [
        PolicyChange(account="delayed", kind="loaded", old=None, new=first_delayed),
        PolicyChange(account="direct", kind="loaded", old=None, new=first_direct),
    ]
    assert registry.reload() == []

    write_policy(tmp_path, "delayed", POLICIES["delayed"].replace("delay: 10m", "delay: 20m"))
    direct.unlink()
    second_delayed = load_file(delayed)
    assert registry.reload() == [
        PolicyChange(account="delayed", kind="changed", old=first_delayed, new=second_delayed),
        PolicyChange(account="direct", kind="removed", old=first_direct, new=None),
    ]
    assert registry.policies == {"delayed": second_delayed}
    assert registry.errors == {}


def test_reload_refuses_a_bad_change_and_keeps_the_old_policy(tmp_path: Path) -> None:
    """An invalid edit is kept as an error while the policy in force stays, until the file is fixed."""
    path = write_policy(tmp_path, "delayed", POLICIES["delayed"])
    registry = PolicyRegistry(directory=tmp_path)
    registry.reload()
    before: LoadedPolicy | None = registry.get("delayed")
    write_policy(tmp_path, "delayed", POLICIES["delayed"].replace("delay: 10m", "delay: soon"))
    assert registry.reload() == []
    assert registry.get("delayed") == before
    assert [str(i) for i in registry.errors["delayed.yaml"]] == [
        "delayed.yaml:6: delay: a duration such as 30s, 15m, 24h, 2d or 1h30m"
    ]
    write_policy(tmp_path, "delayed", POLICIES["delayed"])
    assert (registry.reload(), registry.errors) == ([], {})
    assert path.exists()


def test_reload_goes_past_a_file_it_cannot_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read is an error with the OS's words, but not the server's path
    (refused files are shown to the accounts' people); the files after it still load."""
    write_policy(tmp_path, "aaa", "unreadable")
    direct = write_policy(tmp_path, "direct", POLICIES["direct"])
    opening = os.open

    def failing_open(path: Path, flags: int, *args: int, **kwargs: int) -> int:
        if Path(path).name == "aaa.yaml":
            raise PermissionError(13, "Permission denied", str(path))
        return opening(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", failing_open)  # the tests run as root, whom file modes do not stop
    registry = PolicyRegistry(directory=tmp_path)
    changes = registry.reload()
    monkeypatch.undo()
    assert changes == [PolicyChange(account="direct", kind="loaded", old=None, new=load_file(direct))]
    message = "cannot read: Permission denied"
    assert registry.errors == {"aaa.yaml": [PolicyIssue(file="aaa.yaml", line=None, key="", message=message)]}


VOICE_BASE = "account: a\nplatform: sandbox\ntier: direct\nowner: alice\n"
ANNOUNCE_PLACES = "use {account}, {handle}, {voice}, {url}, {version}"


@pytest.mark.parametrize(("template", "message"), [
    ("{voice", "the template does not read as text with {places}: expected '}' before end of string"),
    ("By {voice!r}", "the template may only use {account}, {url}, {voice}, not {voice}"),
    ("By {voice:>9}", "the template may only use {account}, {url}, {voice}, not {voice}"),
    ("{{x}} {writers}", "the template may only use {account}, {url}, {voice}, not {writers}"),
    ("By {voice}\\nand more", "the template is one line: it may not hold a line break"),
    ("By {voice}\\rand more", "the template is one line: it may not hold a line break"),
])
def test_a_profile_byline_template_keeps_to_its_places_on_one_line(template: str, message: str) -> None:
    """A byline template is refused, with what the admin must change, for braces that do not
    close, a place with a conversion or a format, a name that is no place (after escaped
    braces too), and a line break of either kind."""
    issues = _issues(VOICE_BASE + f'profile:\n  byline: true\n  template: "{template}"\n', "a")
    assert [(i.key, i.message) for i in issues] == [("profile.template", message)]


@pytest.mark.parametrize(("template", "unknown"), [
    ("{bogus} at {url}", "bogus"),  # at the very start
    ("{voice}{bogus} {url}", "bogus"),  # right after a known one
    ("{} at {url}", ""),  # empty braces
    ("{voice} {bogus} {url} {", "bogus"),  # before a brace that never closes
])
def test_an_announcement_template_names_its_first_unknown_placeholder(template: str, unknown: str) -> None:
    """Every ``{name}`` of an announcement's template is a placeholder, wherever it stands: the
    first that is not is named, with the ones there are."""
    issues = _issues(VOICE_BASE + f'announce:\n  voice_changes: true\n  template: "{template}"\n', "a")
    assert [(i.key, i.message) for i in issues] == [
        ("announce.template", f"unknown placeholder {{{unknown}}}: {ANNOUNCE_PLACES}")
    ]


# ---- what the mutation run of the rule side found untested ------------------------------------


def test_an_announcement_filling_the_limit_exactly_fits_and_one_more_character_does_not() -> None:
    """The announcement is measured as it would be written (the account, the handle, a
    five-digit version, a link of ``URL_BUDGET`` characters): at the limit it fits, one
    character over it is refused, saying the length and the limit."""
    base = 'account: a\nplatform: sandbox\nhandle: "@brand"\ntier: direct\nowner: alice\nmax_length: 200\n'
    filled = len("a|@brand|99999|") + URL_BUDGET + len("|")  # 116: the template's places, written

    def template(extra: int) -> str:
        places = "{account}|{handle}|{version}|{url}|"
        return f'announce:\n  voice_changes: true\n  template: "{places}{"y" * extra}"\n'

    policy = parse_policy(base + template(200 - filled), name="a.yaml", expected_account="a")
    assert policy.announce is not None
    issues = _issues(base + template(201 - filled), "a")
    assert [(i.key, i.message) for i in issues] == [(
        "announce.template", "the announcement would be 201 characters as sandbox counts them, over its limit of "
        "200: shorten the template")]


def test_an_announcement_is_measured_as_its_platform_counts_links() -> None:
    """On Mastodon a link in the template counts 23 characters, however long: a template whose
    long link would be over the limit counted character by character fits."""
    text = (
        "account: a\nplatform: mastodon\ninstance: https://social.example\ncredentials: env:A_TOKEN\n"
        "tier: direct\nowner: alice\nmax_length: 200\n"
        f'announce:\n  voice_changes: true\n  template: "{{url}} https://example.org/{"p" * 300}"\n'
    )
    assert parse_policy(text, name="a.yaml", expected_account="a").announce is not None


def test_an_announcement_whose_names_fit_keeps_them_where_counting_would_not_fit() -> None:
    """Two writers with short names take fewer characters named ("a and b") than counted ("2
    writers"): an announcement that fits the limit with them named loads, measured as Mastodon
    counts (its link at 23), not falling back to the longer count, which would be two over."""
    base = ("account: a\nplatform: mastodon\ninstance: https://social.example\ncredentials: env:A_TOKEN\n"
            "tier: direct\nowner: a\nwriters: [a, b]\nmax_length: 200\n")
    template = f"{{voice}} {{url}} https://example.org/{'p' * 100} {'y' * 56}"
    policy = parse_policy(base + f'announce:\n  voice_changes: true\n  template: "{template}"\n',
                          name="a.yaml", expected_account="a")
    assert policy.announce is not None
    issues = _issues(base + f'announce:\n  voice_changes: true\n  template: "{template}y"\n', "a")
    assert [(i.key, i.message) for i in issues] == [(
        "announce.template", "the announcement would be 203 characters as mastodon counts them, over its limit of "
        "200: shorten the template")]


@pytest.mark.parametrize("template", ["Read } {account} here {url}", "Read {url} {accountX"])
def test_an_announcement_fills_only_whole_places(template: str) -> None:
    """A closing brace before a place does not hide it, and a brace that never closes is left
    as written (not read as a place, and not read for ever)."""
    written = render(template, account="brand", handle="@brand", summary={}, url="U", version=3)
    assert written == template.replace("{account}", "brand").replace("{url}", "U")


@pytest.mark.parametrize(("public_url", "page"), [
    ("https://byline.example/", "https://byline.example/@brand"),
    ("https://news.example/byline-X/", "https://news.example/byline-X/@brand"),
])
def test_the_public_page_keeps_the_public_address_but_its_last_slash(public_url: str, page: str) -> None:
    assert public_page(public_url, "brand") == page


def test_a_duration_past_the_calendar_is_refused_as_too_long() -> None:
    """Days beyond what a date can hold overflow; refused with the limit, like any too long."""
    with pytest.raises(ValueError, match=r"^a duration of at most \d+d$"):
        parse_duration("99999999999d")


@pytest.mark.parametrize("context", [None, {}, {"credential_rules": "not rules"}])
def test_a_policy_validated_without_the_loaders_rules_takes_the_strict_defaults(context: object) -> None:
    """Without the loader's credential rules (or with something else in their place), a
    policy is judged by the strict defaults: a platform over plain http is refused."""
    document = yaml.safe_load(
        "account: a\nplatform: mastodon\ninstance: http://127.0.0.1:3000\ncredentials: env:A_TOKEN\n"
        "tier: direct\nowner: alice\n"
    )
    with pytest.raises(ValidationError, match="needs BYLINE_ALLOW_INSECURE_PLATFORMS"):
        Policy.model_validate(document, context=context)


def test_a_non_ascii_text_is_counted_in_graphemes_on_mastodon() -> None:
    """Mastodon counts user-perceived characters: an accented letter, a flag and a skin-toned
    emoji are one each."""
    assert mastodon_length("Café 🇫🇷 👍🏽!") == 9


_NO_HOST = "must name a host: https://host"
_NO_PORT = "must name a port from 1 to 65535, or none (https://host:8443 or https://host)"


@pytest.mark.parametrize(("address", "message"), [
    ("https://m.example:abc", _NO_PORT), ("https://m.example:99999", _NO_PORT), ("https://m.example:0", _NO_PORT),
    ("https://", _NO_HOST), ("https://:443", _NO_HOST),
])
def test_a_platform_address_without_a_host_or_with_an_unusable_port_is_refused(address: str, message: str) -> None:
    """Said when the file is read, where it was accepted and every publication then failed."""
    text = f"account: a\nplatform: mastodon\ninstance: {address}\ncredentials: env:T\ntier: direct\nowner: alice\n"
    assert [(i.key, i.message) for i in _issues(text, "a")] == [("instance", message)]


@pytest.mark.parametrize("context", [None, {}])
def test_a_credential_file_is_judged_from_the_default_policy_directory_without_the_loaders_rules(
    context: object,
) -> None:
    """The strict defaults place the secrets directory under ``policies/``: a file outside it is refused."""
    document = yaml.safe_load(
        "account: a\nplatform: mastodon\ninstance: https://m.example\ncredentials: file:../elsewhere/token\n"
        "tier: direct\nowner: alice\n"
    )
    with pytest.raises(ValidationError, match="is outside the secrets directory"):
        Policy.model_validate(document, context=context)
