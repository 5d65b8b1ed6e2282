"""The verifier's reading of one entry (gateway.audit.verify.entries): its fast path and the reference agree."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.audit import canonical
from gateway.audit.entry import encode_entry
from gateway.audit.verify.entries import fact_extra, parse_entry

RAW = encode_entry(type="post.cancelled", ts=1_767_268_800_000_000, actor="alice", account="solo", post="1",
                   data={"state": "cancelled"}, prev=None)


def test_a_canonical_entry_gives_its_fields() -> None:
    """A canonical entry is read whole, with no problem."""
    body = json.loads(RAW)
    expected = (body["account"], body["actor"], body["data"], body["post"], body["prev"], body["ts"], body["type"])
    assert parse_entry(RAW) == (expected, None)


def test_a_well_formed_entry_in_another_encoding_still_gives_its_fields() -> None:
    """Whitespace makes it not canonical, but its fields are read, so its chain and text are still checked."""
    raw = json.dumps(json.loads(RAW)).encode()
    fields, problem = parse_entry(raw)
    assert problem == "not in RFC 8785 canonical form (re-encoding gives different bytes)"
    assert fields == parse_entry(RAW)[0]


def test_the_encoding_is_named_before_the_shape() -> None:
    """A version of 1.0 reads back the same through the fast encoder, but not through RFC 8785: that is named."""
    raw = RAW.replace(b'"v":1}', b'"v":1.0}')
    assert raw != RAW
    assert parse_entry(raw) == (None, "not in RFC 8785 canonical form (re-encoding gives different bytes)")


def test_a_malformed_shape_is_named() -> None:
    """A canonical entry of the wrong shape gives no fields and says what is wrong."""
    raw = RAW.replace(b'"actor":"alice"', b'"actor":7')
    assert parse_entry(raw) == (None, "has no actor")


def test_a_time_of_the_right_shape_that_is_no_time_is_named() -> None:
    """A forged entry's ts can match the pattern and name no moment (a 13th month, a 25th hour):
    named, where the replay would otherwise stumble on it when it measures time between entries."""
    body = json.loads(RAW)
    for ts in ("2026-13-45T10:00:00.000000Z", "2026-01-01T25:00:00.000000Z"):
        raw = RAW.replace(body["ts"].encode(), ts.encode())
        assert parse_entry(raw) == (None, "has a malformed ts")
        assert parse_entry(raw, "2026-01-01T00:00:00.000000Z") == (None, "has a malformed ts")



def _canonical(body: Any) -> bytes:
    """``body`` in RFC 8785 form: for the ASCII text and integers used here, sorted compact JSON."""
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize(("change", "problem"), [
    ({"type": ""}, "has no type"),
    ({"type": 5}, "has no type"),
    ({"account": 5}, "has a malformed account or post"),
    ({"post": 5}, "has a malformed account or post"),
    ({"data": []}, "has data that is not an object"),
    ({"prev": {"index": "1", "leaf": "ab"}}, "has a malformed prev link"),
    ({"prev": {"index": 1, "leaf": 5}}, "has a malformed prev link"),
    ({"prev": {"index": 1, "leaf": "ab", "tree": 2}}, "has a malformed prev link"),
    ({"prev": ["ab"]}, "has a malformed prev link"),
])
def test_each_field_of_the_wrong_type_is_named_in_its_own_words(change: dict[str, Any], problem: str) -> None:
    """A canonical entry with one field of the wrong type or shape gives no fields, and the message
    says which: each part of the shape is checked on its own, not only when another is wrong too."""
    raw = _canonical(json.loads(RAW) | change)
    assert parse_entry(raw) == (None, problem)


def test_a_link_of_the_right_shape_is_read() -> None:
    """The counterpart of the malformed links: an index and a leaf, and nothing else, pass."""
    body = json.loads(RAW) | {"prev": {"index": 3, "leaf": "ab"}}
    fields, problem = parse_entry(_canonical(body))
    assert (problem, fields and fields[4]) == (None, {"index": 3, "leaf": "ab"})


def test_an_entry_that_is_no_object_is_named() -> None:
    """Canonical JSON that is not an object is no entry, said so."""
    assert parse_entry(b"[1]") == (None, "is not a JSON object")


def test_an_entry_with_its_keys_out_of_order_still_gives_its_fields() -> None:
    """Keys out of RFC 8785's order make it not canonical, and its fields are still read by name."""
    body = json.loads(RAW)
    raw = json.dumps({key: body[key] for key in reversed(list(body))}, separators=(",", ":")).encode()
    assert raw != RAW
    assert parse_entry(raw) == (parse_entry(RAW)[0],
                                "not in RFC 8785 canonical form (re-encoding gives different bytes)")



def test_a_line_that_is_no_json_is_named_as_such() -> None:
    """A line the parser cannot read gives no fields, and the parser's own words."""
    fields, problem = parse_entry(b'{"v":')
    assert fields is None
    assert problem is not None and problem.startswith("not valid JSON (")


@pytest.mark.parametrize("data", [
    b'{"n":1.0,"state":"cancelled"}',  # the fast encoder writes 1.0 back as it came; RFC 8785 writes 1
    # In code point order, as the fast encoder sorts; RFC 8785 sorts by UTF-16 units: the emoji first.
    '{"state":"cancelled","\uff01":1,"\U0001f600":1}'.encode(),
])
def test_data_the_fast_encoder_reads_back_unchanged_is_still_held_to_rfc_8785(data: bytes) -> None:
    """A float, or keys outside ASCII, in ``data``: the fast path gives the same bytes back, but
    only the reference encoder says whether they are canonical, and here they are not."""
    raw = RAW.replace(b'{"state":"cancelled"}', data)
    assert raw != RAW
    assert canonical.fast_dumps(canonical.fast_loads(raw)) == raw
    assert parse_entry(raw)[1] == "not in RFC 8785 canonical form (re-encoding gives different bytes)"


# fact_extra: what the replay is told of each kind of entry, and the shapes it refuses

SUBMITTED = {"version": 1, "state": "held", "approvers": ["bob"], "required": 1, "policy_sha256": "p1"}
SUBMITTED_BAD = "post.submitted lacks data.version, state, approvers or required"


@pytest.mark.parametrize(("kind", "data", "problem"), [
    ("post.approved", {"state": "scheduled"}, "post.approved lacks data.version"),
    ("post.submitted", SUBMITTED | {"version": "1"}, SUBMITTED_BAD),
    ("post.submitted", SUBMITTED | {"state": None}, SUBMITTED_BAD),
    ("post.submitted", SUBMITTED | {"approvers": "bob"}, SUBMITTED_BAD),
    ("post.submitted", SUBMITTED | {"required": "1"}, SUBMITTED_BAD),
    ("post.submitted", SUBMITTED | {"policy_sha256": 5}, SUBMITTED_BAD),
    ("post.submitted", SUBMITTED | {"suggested_by": 5}, "post.submitted has a malformed data.suggested_by"),
    ("post.submitted", SUBMITTED | {"reply_to_post": "7", "answers_post": "7", "answers_version": "1"},
     "post.submitted has a malformed data.answers_post or data.answers_version"),
    ("post.submitted", SUBMITTED | {"answers_post": "7", "answers_version": 1},
     "post.submitted has a malformed data.answers_post or data.answers_version"),
    ("post.edited", {"version": 2, "state": "held", "reply_to_post": "7", "answers_version": 1},
     "post.edited has a malformed data.answers_post or data.answers_version"),
    ("post.edited", {"version": 2}, "post.edited lacks data.version or data.state"),
    ("post.redecided", {"state": "held"}, "post.redecided lacks data.version or data.state"),
    ("policy.loaded", {"sha256": "abc", "policy": "tier: direct"}, "policy.loaded lacks data.sha256 or data.policy"),
    ("policy.changed", {"sha256": 5, "policy": {}}, "policy.changed lacks data.sha256 or data.policy"),
    ("profile.updated", {"version": 1, "text": 5, "platform": "mastodon"},
     "profile.updated lacks data.version, data.text or data.platform"),
    ("profile.updated", {"version": 1, "platform": "mastodon"},
     "profile.updated lacks data.version, data.text or data.platform"),
    ("profile.updated", {"version": "1", "text": None, "platform": "mastodon"},
     "profile.updated lacks data.version, data.text or data.platform"),
])
def test_an_entry_of_a_malformed_shape_is_named_by_its_kinds_message(
    kind: str, data: dict[str, Any], problem: str
) -> None:
    """Each kind names what it lacks, in its own words, and gives the replay nothing to judge."""
    assert fact_extra(kind, data) == (None, problem)


@pytest.mark.parametrize(("kind", "data", "fact"), [
    ("profile.updated", {"version": 1, "text": None, "platform": "x"}, (1,)),  # a byline taken off
    ("post.submitted", SUBMITTED | {"reply_to_post": "7", "adopted_from": 5}, (1, "held", ("bob",), 1, "p1", None,
                                                                                None, "7", None)),
    ("post.edited", {"version": 2, "state": "held", "required": "2"}, (2, "held", None, None, None)),
    ("post.edited", {"version": 2, "state": "held", "approvers": ["bob"], "required": 2, "reply_to_post": "7"},
     (2, "held", ("bob",), 2, None, "7")),
    ("post.edited", {"version": 2, "state": "held", "options": {}}, (2, "held", None, None, None, None)),
    ("post.submitted", SUBMITTED | {"reply_to_post": "7", "answers_post": "6", "answers_version": 2},
     (1, "held", ("bob",), 1, "p1", None, None, "7", None, None, None, ("6", 2))),
    ("post.edited", {"version": 2, "state": "held", "reply_to_post": "7", "answers_post": "7", "answers_version": 1},
     (2, "held", None, None, None, "7", ("7", 1))),
    ("post.cancelled", {"state": 5, "version": "1", "policy_sha256": "p1"}, (None, None, "p1")),
    ("post.retried", {"state": "scheduled", "version": 2, "reply_to_post": 7}, ("scheduled", 2, None)),
    ("post.retried", {"state": "scheduled", "version": 2, "reply_to_post": "7"}, ("scheduled", 2, None, "7")),
    # A parent or a policy that is no text is none.
    ("post.edited", {"version": 2, "state": "held", "reply_to_post": 7, "policy_sha256": 5},
     (2, "held", None, None, None, None)),
    ("policy.removed", {"version": "2"}, (None,)),  # a version that is no number is none
    ("policy.changed", {"sha256": "a", "policy": {}, "version": "2"}, ("a", {}, None)),
    ("policy.changed", {"sha256": "a", "policy": {}, "version": 2}, ("a", {}, 2)),
])
def test_an_entry_gives_the_replay_its_facts_with_malformed_parts_as_none(
    kind: str, data: dict[str, Any], fact: tuple[Any, ...]
) -> None:
    """What the replay is told: the parts of the wrong type as none (or left out, for a reply's
    parent), and an edit's parent only where it gives its options or its parent."""
    assert fact_extra(kind, data) == (fact, None)
