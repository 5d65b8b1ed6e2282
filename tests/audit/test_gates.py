"""Who may reply to or quote a post, as the log records it: the summary Byline makes of a gate
record, the verifier's check that a summary is one, and its words on the pages and in webhooks."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.audit.gates import (
    CHANGES_PER_HOUR,
    POSTGATE,
    THREADGATE,
    budget_wait,
    gate_settings,
    gate_words,
    settings_problem,
)

RULE = "app.bsky.feed.threadgate#"
MUST_SAY = "data.settings of a threadgate must say replies, lists and hidden_replies"
MISCOUNTS = "data.settings of a threadgate counts its lists or hidden replies wrongly"
POSTGATE_MUST_SAY = "data.settings of a postgate must say quotes (on or off) and detached_quotes"


def _threadgate(replies: Any, lists: Any = 0, hidden: Any = 0) -> dict[str, Any]:
    return {"replies": replies, "lists": lists, "hidden_replies": hidden}


# gate_settings


def test_a_deleted_gate_leaves_the_platform_default() -> None:
    """No record: everybody may reply and quotes are on, nothing hidden or detached."""
    assert gate_settings(THREADGATE, None) == _threadgate("everybody")
    assert gate_settings(POSTGATE, None) == {"quotes": "on", "detached_quotes": 0}


def test_a_threadgate_allowing_no_one_says_nobody() -> None:
    """An empty allow list closes replies; hidden replies are counted, not listed."""
    record = {"allow": [], "hiddenReplies": ["at://did:plc:a/app.bsky.feed.post/1", "at://did:plc:b/app.bsky.feed.post/2"]}
    assert gate_settings(THREADGATE, record) == _threadgate("nobody", hidden=2)


def test_a_threadgate_names_its_rules_once_in_the_lexicons_order_and_counts_its_lists() -> None:
    """Rules given in any order, a list rule twice, one of a type no lexicon has and an entry
    that is no object: the summary names each known rule (the part of its type after the last
    "#") once, in the lexicon's order."""
    record = {"allow": [
        {"$type": RULE + "listRule", "list": "at://did:plc:a/app.bsky.graph.list/1"},
        {"$type": RULE + "followingRule"},
        "mentionRule",
        {"$type": RULE + "listRule", "list": "at://did:plc:a/app.bsky.graph.list/2"},
        {"$type": "com.example#mentionRule#somethingElse"},
        {"$type": "com.example#v2#followerRule"},
        {"$type": RULE + "mentionRule"},
    ], "hiddenReplies": None}
    assert gate_settings(THREADGATE, record) == _threadgate(["mention", "follower", "following", "list"], lists=2)


def test_a_threadgate_whose_rules_are_all_unknown_lets_no_rule_through() -> None:
    """Rules it cannot read (no type, no object) are not "nobody": the list of known ones is empty."""
    assert gate_settings(THREADGATE, {"allow": [{}, 3]}) == _threadgate([])


def test_a_postgate_is_off_when_any_rule_disables_quotes() -> None:
    """A disable rule among others (and entries that are no object) turns quotes off; detached
    quotes are counted."""
    record = {"embeddingRules": ["x#disableRule", {"$type": "app.bsky.feed.postgate#other"},
                                 {"$type": "app.bsky.feed.postgate#disableRule"}],
              "detachedEmbeddingUris": ["at://did:plc:a/app.bsky.feed.post/1"]}
    assert gate_settings(POSTGATE, record) == {"quotes": "off", "detached_quotes": 1}
    assert gate_settings(POSTGATE, {"embeddingRules": ["x#disableRule", {"$type": "x#disableRuleNot"}]}) \
        == {"quotes": "on", "detached_quotes": 0}


# settings_problem


@pytest.mark.parametrize("settings", [
    None,
    _threadgate("everybody"),
    _threadgate("nobody", hidden=300),
    _threadgate(["mention", "follower", "following"]),
    _threadgate(["list"], lists=300),
])
def test_threadgate_summaries_byline_writes_pass(settings: Any) -> None:
    """What gate_settings can make, at the counts' limits, and no settings at all."""
    assert settings_problem(THREADGATE, settings) is None


@pytest.mark.parametrize(("settings", "expected"), [
    ("Replies: nobody", "data.settings must be an object"),
    (["everybody"], "data.settings must be an object"),
    ({"replies": "everybody", "lists": 0}, MUST_SAY),
    ({**_threadgate("everybody"), "extra": 1}, MUST_SAY),
    (_threadgate("anyone"), MUST_SAY),
    (_threadgate([]), MUST_SAY),
    (_threadgate(["mention", "mention"]), MUST_SAY),
    (_threadgate(["mention", "paid"]), MUST_SAY),
    (_threadgate(("mention",)), MUST_SAY),
    (_threadgate("everybody", lists=1), MISCOUNTS),
    (_threadgate(["list"], lists=0), MISCOUNTS),
    (_threadgate(["list"], lists=301), MISCOUNTS),
    (_threadgate(["list"], lists=-1), MISCOUNTS),
    (_threadgate(["list"], lists=True), MISCOUNTS),
    (_threadgate(["list"], lists=1.0), MISCOUNTS),
    (_threadgate("nobody", hidden=301), MISCOUNTS),
    (_threadgate("nobody", hidden=-1), MISCOUNTS),
    (_threadgate("nobody", hidden="1"), MISCOUNTS),
])
def test_threadgate_settings_that_are_no_summary_are_named(settings: Any, expected: str) -> None:
    """Each way a forged summary can differ from one gate_settings makes is named, and how."""
    assert settings_problem(THREADGATE, settings) == expected


@pytest.mark.parametrize(("settings", "expected"), [
    ({"quotes": "off", "detached_quotes": 0}, None),
    ({"quotes": "on", "detached_quotes": 300}, None),
    ({"quotes": "on"}, POSTGATE_MUST_SAY),
    ({"quotes": "on", "detached_quotes": 0, "replies": "nobody"}, POSTGATE_MUST_SAY),
    ({"quotes": "maybe", "detached_quotes": 0}, POSTGATE_MUST_SAY),
    ({"quotes": "on", "detached_quotes": 301}, POSTGATE_MUST_SAY),
    ({"quotes": "on", "detached_quotes": -1}, POSTGATE_MUST_SAY),
    ({"quotes": "on", "detached_quotes": False}, POSTGATE_MUST_SAY),
    (_threadgate("everybody"), POSTGATE_MUST_SAY),
])
def test_postgate_settings_are_checked_as_a_postgates(settings: Any, expected: str | None) -> None:
    """A postgate's summary says quotes on or off and counts detached quotes, nothing else."""
    assert settings_problem(POSTGATE, settings) == expected


def test_settings_of_a_gate_that_is_neither_are_left_to_the_replay() -> None:
    """Any object passes here for another collection: the replay names the gate itself."""
    assert settings_problem("app.bsky.feed.post", {"anything": True}) is None
    assert settings_problem("app.bsky.feed.post", "words") == "data.settings must be an object"


# gate_words


@pytest.mark.parametrize(("gate", "settings", "expected"), [
    (POSTGATE, {"quotes": "off", "detached_quotes": 0}, "Quotes: off"),
    (POSTGATE, {"quotes": "on", "detached_quotes": 1}, "Quotes: on; 1 quote detached"),
    (POSTGATE, {"quotes": "off", "detached_quotes": 2}, "Quotes: off; 2 quotes detached"),
    (THREADGATE, _threadgate("everybody"), "Replies: everybody"),
    (THREADGATE, _threadgate("nobody", hidden=1), "Replies: nobody; 1 reply hidden"),
    (THREADGATE, _threadgate(["mention"], hidden=2), "Replies: only people mentioned; 2 replies hidden"),
    (THREADGATE, _threadgate(["list"], lists=1), "Replies: only people on 1 list"),
    (THREADGATE, _threadgate(["follower", "list"], lists=3),
     "Replies: only the account's followers and people on 3 lists"),
    (THREADGATE, _threadgate(["mention", "follower", "following", "list"], lists=2),
     "Replies: only people mentioned, the account's followers, people the account follows and people on 2 lists"),
])
def test_settings_in_plain_words(gate: str, settings: dict[str, Any], expected: str) -> None:
    """The words the public page, the queue, webhooks and ``byline audit who`` show."""
    assert gate_words(gate, settings) == expected


@pytest.mark.parametrize(("gate", "settings", "expected"), [
    (THREADGATE, None, "Who may reply changed"),
    (POSTGATE, None, "Who may quote changed"),
    (THREADGATE, {"quotes": "off", "detached_quotes": 0}, "Who may reply changed"),
    (POSTGATE, _threadgate("nobody"), "Who may quote changed"),
    ("app.bsky.feed.post", {"quotes": "off"}, "Who may reply or quote changed"),
])
def test_settings_that_are_missing_or_no_summary_say_only_which_setting_changed(
    gate: str, settings: Any, expected: str
) -> None:
    """An entry from before Byline recorded settings, or one whose settings are not a summary
    of its gate, is shown as a change and nothing it cannot vouch for."""
    assert gate_words(gate, settings) == expected


# budget_wait

SECOND = 1_000_000
HOUR = 3600 * SECOND


def test_a_change_leaves_the_budget_exactly_an_hour_after_it_was_made() -> None:
    """30 changes a second apart: a 31st waits for the first to be an hour old, to the second;
    at that moment it fits; two wait for the second change too; one an hour old counts no more."""
    times = [n * SECOND for n in range(CHANGES_PER_HOUR)]
    now = times[-1] + 10 * SECOND
    assert budget_wait(times, now=now, adding=1) == (HOUR - now) // SECOND
    assert budget_wait(times, now=HOUR, adding=1) is None
    assert budget_wait(times, now=HOUR, adding=2) == 1
    assert budget_wait(times[1:], now=now, adding=1) is None
    assert budget_wait([0] * CHANGES_PER_HOUR, now=HOUR - SECOND // 2, adding=1) == 1  # never 0: a wait is a wait


def test_more_changes_at_once_than_an_hour_allows_never_fit() -> None:
    """A batch of 31 changes of one post is no wait: it is refused as never fitting."""
    with pytest.raises(ValueError, match="31 changes at once is more than 30 an hour"):
        budget_wait([], now=HOUR, adding=CHANGES_PER_HOUR + 1)
