"""Rules that are hard to fool: look-alike letters, invisible characters, and hostile regexes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.policy.engine import Decision, Outcome, Reason, check_rules, decide
from gateway.policy.loader import PolicyFileError, parse_policy
from gateway.policy.models import Policy
from tests.conftest import TEST_POLICIES, Gateway, write_policy

CYRILLIC_I = "\u0456"  # і, drawn as a Latin i


def _policy(rules: str) -> Policy:
    text = textwrap.dedent("""
        account: rules
        platform: sandbox
        tier: direct
        owner: alice
        rules:
    """).lstrip() + textwrap.indent(textwrap.dedent(rules).strip() + "\n", "  ")
    return parse_policy(text, name="rules.yaml", expected_account="rules")


async def test_lookalike_letters_are_held_and_published_as_written(gateway: Gateway) -> None:
    """fіred with a Cyrillic і is held by the any_words rule; once approved it goes out unchanged."""
    text = f"Our CEO was f{CYRILLIC_I}red\u200b today"
    post = await gateway.submit("alice", "direct", text)
    assert post["state"] == "held"
    assert [r["rule"] for r in post["reasons"]] == ["breaking-news"]
    status, body = await gateway.act("alice", post["id"], "approve")
    assert status == 200, body
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("direct")] == [text]


async def test_invisible_characters_do_not_hide_a_regex_match(gateway: Gateway) -> None:
    """exam\\u200bple-slur, and one spelled with Cyrillic letters, are blocked by the (?i) regex rule."""
    for text in ("an exam\u200bple-slur here", "an EXAMPLE\u2060-SLUR", "an \u0435\u0445\u0430mple-slur"):
        status, body = await gateway.call("alice", "POST", "/v1/posts", {"account": "direct", "text": text})
        assert (status, body.get("error"), body.get("rule")) == (422, "rule_blocked", "no-slurs"), (text, body)
    assert await gateway.timeline("direct") == []
    # \b still bounds the word under RE2: a longer word is not the slur.
    assert (await gateway.submit("alice", "direct", "example-slurs"))["state"] == "scheduled"


def test_words_match_their_disguises_and_nothing_else() -> None:
    """A rule word matches its confusable, full-width and zero-width forms, never a longer word."""
    policy = _policy("""
        - name: words
          action: hold
          any_words: [fired, scandal, murder]
          reason: Check first
    """)
    disguised = (f"f{CYRILLIC_I}red", "ＦＩＲＥＤ", "fi\u00adred", "sc\u200candal!", "rnurder", "MURDER,", "f\u0131red")
    for text in disguised:
        assert check_rules(policy, text).holds, text
    for text in ("misfired", "firedrake", "the fire department", "scandalous", "murders", "Fred", "",
                 "modern art", "I liked it", "common sense"):
        assert not check_rules(policy, text).holds, text


def test_hostile_text_cannot_stall_a_regex_rule() -> None:
    """^(a+)+$ on 29 a's and a ! is decided at once (RE2), a hundred times in well under a second."""
    policy = _policy("""
        - name: nested
          action: block
          regex: "^(a+)+$"
          reason: Nested quantifiers
    """)
    hostile = "a" * 29 + "!"
    now = datetime(2026, 1, 1, tzinfo=UTC)
    started = time.perf_counter()
    decision = decide(policy, author="alice", text=hostile, now=now, requested=None, suggestion=False)
    assert time.perf_counter() - started < 0.5
    assert isinstance(decision, Decision) and decision.outcome is Outcome.SCHEDULED
    started = time.perf_counter()
    for _ in range(100):
        assert check_rules(policy, hostile).blocked_by is None
    assert time.perf_counter() - started < 0.5
    blocked = decide(policy, author="alice", text="a" * 30, now=now, requested=None, suggestion=False)
    assert isinstance(blocked, Reason) and blocked.rule == "nested"


@pytest.mark.parametrize(
    ("pattern", "missing"),
    [("(?<!not )bad", "lookarounds"), ("(?=x)y", "lookarounds"), ("(a)\\\\1", "backreferences")],
)
def test_patterns_re2_cannot_run_are_refused_with_their_line(pattern: str, missing: str) -> None:
    """A lookaround or backreference is refused at load, naming the file, line, key and why."""
    text = textwrap.dedent(TEST_POLICIES["direct"]).replace('"(?i)\\\\bexample-slur\\\\b"', f'"{pattern}"')
    with pytest.raises(PolicyFileError) as info:
        parse_policy(text, name="direct.yaml", expected_account="direct")
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "regex:" in row)
    [issue] = [str(i) for i in info.value.issues]
    assert issue.startswith(f"direct.yaml:{line}: rules.1.regex: regex does not compile in RE2"), issue
    assert missing in issue


def test_policy_check_cli_names_a_lookbehind(policy_dir: Path) -> None:
    """`byline policy check` prints the refused lookbehind with its file and line and exits 1."""
    write_policy(policy_dir, "peek", """
        account: peek
        platform: sandbox
        tier: direct
        owner: alice
        rules:
          - name: peek
            action: hold
            regex: "(?<=secret )plan"
            reason: Lookbehind
    """)
    done = subprocess.run([sys.executable, "-m", "gateway", "policy", "check", str(policy_dir)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "peek.yaml:8: rules.0.regex: regex does not compile in RE2" in done.stderr, done.stderr
    assert "lookarounds" in done.stderr
