"""Entries are exactly the rfc8785 encoding of the event, link included, and stay under 64 KiB."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.entry import (
    MAX_ENTRY_BYTES,
    EntryTooLarge,
    Prev,
    encode_entry,
    encode_unlinked,
    link,
    linked_size,
    relink_raw,
)
from gateway.types import from_micros, iso, to_micros

_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=10)
_DATA = st.dictionaries(
    _TEXT,
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), _TEXT,
                  st.floats(allow_nan=False, allow_infinity=False)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_TEXT, inner, max_size=3)),
        max_leaves=8,
    ),
    max_size=5,
)
_PREV = st.one_of(
    st.none(),
    st.builds(lambda i, leaf: Prev(index=i, leaf=leaf), st.integers(0, 2**53 - 1), st.binary(min_size=32, max_size=32)),
)


@settings(max_examples=300, deadline=None)
@given(kind=_TEXT, actor=_TEXT, account=st.one_of(st.none(), _TEXT), post=st.one_of(st.none(), _TEXT),
       data=_DATA, prev=_PREV, ts=st.integers(0, 4_000_000_000_000_000))
def test_entry_bytes_are_the_reference_encoding(
    kind: str, actor: str, account: str | None, post: str | None, data: dict[str, Any], prev: Prev | None, ts: int
) -> None:
    """Whatever the event, the entry (with its link spliced in) is rfc8785.dumps of the whole."""
    body: dict[str, Any] = {
        "v": 1, "type": kind, "ts": iso(ts), "actor": actor, "account": account, "post": post,
        "data": data,
        "prev": {"index": prev.index, "leaf": base64.b64encode(prev.leaf).decode()} if prev else None,
    }
    raw = encode_entry(type=kind, ts=ts, actor=actor, account=account, post=post, data=data, prev=prev)
    assert raw == rfc8785.dumps(body)
    unlinked = encode_unlinked(type=kind, ts=ts, actor=actor, account=account, post=post, data=data)
    assert link(unlinked, prev) == raw  # linked afterwards, as when a chain's last entry is looked up
    if prev is not None:
        assert len(raw) <= linked_size(unlinked, prev.index + 1)
        # and linked again when the entry it links to got linked itself (another leaf hash)
        other = bytes(reversed(prev.leaf))
        again = encode_entry(type=kind, ts=ts, actor=actor, account=account, post=post, data=data,
                             prev=Prev(index=prev.index, leaf=other))
        assert relink_raw(raw, prev.index, prev.leaf, other) == again


def test_a_value_inside_data_that_looks_like_the_link_is_left_alone() -> None:
    """Data holding the text of an unlinked entry does not move the link."""
    data = {"x": ',"prev":null,"ts":"', "z": {"prev": None, "ts": "2026"}}
    prev = Prev(index=7, leaf=bytes(range(32)))
    raw = encode_entry(type="t", ts=0, actor="a", account=None, post="p", data=data, prev=prev)
    body: dict[str, Any] = {"v": 1, "type": "t", "ts": iso(0), "actor": "a", "account": None, "post": "p", "data": data,
            "prev": {"index": 7, "leaf": base64.b64encode(bytes(range(32))).decode()}}
    assert raw == rfc8785.dumps(body)
    assert link(encode_unlinked(type="t", ts=0, actor="a", account=None, post="p", data=data), None) == \
        rfc8785.dumps({**body, "prev": None})
    # Nor does data holding the link itself, nested as it would be at the top, when relinking.
    leaf = base64.b64encode(bytes(range(32))).decode()
    data = {"a": {"prev": {"index": 7, "leaf": leaf}, "ts": "x"}, "b": f',"prev":{{"index":7,"leaf":"{leaf}"}},"ts":"'}
    raw = encode_entry(type="t", ts=0, actor="a", account=None, post="p", data=data, prev=prev)
    moved = relink_raw(raw, 7, bytes(range(32)), bytes(32))
    zeros = base64.b64encode(bytes(32)).decode()
    assert moved == rfc8785.dumps({**body, "data": data, "prev": {"index": 7, "leaf": zeros}})


def test_entries_stay_under_64_kib() -> None:
    """An entry of 65,535 bytes or more is refused, so a tlog-tiles bundle can prefix its length."""
    def entry(n: int) -> bytes:
        return encode_entry(type="t", ts=0, actor="a", account=None, post=None, data={"x": "y" * n}, prev=None)

    size = len(entry(0))
    assert len(entry(MAX_ENTRY_BYTES - size)) == MAX_ENTRY_BYTES == 65_535
    with pytest.raises(EntryTooLarge):
        entry(MAX_ENTRY_BYTES - size + 1)


@given(st.integers(min_value=-30_610_224_000_000_000, max_value=253_402_300_799_999_999))
@settings(max_examples=500)
def test_stored_times_read_back_and_print_as_rfc3339(micros: int) -> None:
    """A stored time (microseconds since the epoch) is the same instant read back, and prints
    as RFC 3339 with every microsecond and a Z, for every year from 1000 to 9999."""
    moment = from_micros(micros)
    assert moment == datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(microsecond=micros % 1_000_000)
    assert moment.tzinfo is UTC and to_micros(moment) == micros
    assert iso(micros) == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # Another instant of the same second: its text from what the first one's made.
    other = micros - micros % 1_000_000 + (micros * 7 + 3) % 1_000_000
    assert iso(other) == from_micros(other).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
