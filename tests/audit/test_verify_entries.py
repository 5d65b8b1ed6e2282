"""The verifier's reading of one entry (gateway.audit.verify.entries): its fast path and the reference agree."""

from __future__ import annotations

import json

from gateway.audit.entry import encode_entry
from gateway.audit.verify.entries import parse_entry

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
