"""The fast canonical-form check agrees with the rfc8785 reference on every input."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import canonical

_SAFE_INT = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
_ANY_INT = st.integers(min_value=-(2**70), max_value=2**70)
_FLOAT = st.floats(allow_nan=False, allow_infinity=False)
_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
_KEY = st.one_of(
    _TEXT,
    st.sampled_from(["a", "b", "\ue000", "\U0001f600", "\uffff", "é", "data", "prev"]),
)


def _json(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(_KEY, inner, max_size=4),
        ),
        max_leaves=12,
    )


_VALUES = _json(st.one_of(st.none(), st.booleans(), _SAFE_INT, _ANY_INT, _FLOAT, _TEXT))


def _encodings(value: Any) -> list[bytes]:
    out = [
        json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"),
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
        json.dumps(value).encode(),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"),
    ]
    with contextlib.suppress(rfc8785.CanonicalizationError):
        out.append(rfc8785.dumps(value))
    return out


@settings(max_examples=400, deadline=None)
@given(_VALUES)
def test_fast_check_agrees_with_the_reference(value: Any) -> None:
    """For many encodings of many values, the fast check accepts exactly what rfc8785 accepts."""
    for raw in _encodings(value):
        assert (canonical.check(raw)[1] is None) == (canonical.slow_check(raw)[1] is None), raw


@settings(max_examples=200, deadline=None)
@given(_json(st.one_of(st.none(), st.booleans(), _SAFE_INT, _TEXT)))
def test_reference_output_is_always_accepted(value: Any) -> None:
    """Whatever rfc8785 writes (the gateway's own entries) passes the fast check."""
    raw = rfc8785.dumps(value)
    parsed, problem = canonical.check(raw)
    assert problem is None
    assert parsed == value


def test_the_traps_of_the_fast_path_go_to_the_reference() -> None:
    """Inputs where a fast encoder and RFC 8785 differ are judged by RFC 8785."""
    cases = {
        b'{"a":1e21}': False,  # RFC 8785 writes 1e+21
        b'{"a":1e+21}': True,
        b'{"a":1.0}': False,
        b'{"a":1}': True,
        b'{"a":0.5}': True,
        b'{"a":9007199254740991}': True,
        b'{"a":9007199254740992}': False,  # beyond the integers RFC 8785 allows
        b'{"a":NaN}': False,
        b'{"a":1,"a":2}': False,
        b'\xef\xbb\xbf{"a":1}': False,
        b'{"a":"\\ud800"}': False,
        b'{"b":1,"a":2}': False,
        b'{"a":"\\u001f"}': True,
        b'{"a":"\\u001F"}': False,
        b'{"a":"\\/"}': False,
        b'{"a":"\x7f"}': True,
        # Sorted by UTF-16 code units U+E000 comes after the surrogates of U+1F600.
        '{"\U0001f600":1,"\ue000":2}'.encode(): True,
        '{"\ue000":2,"\U0001f600":1}'.encode(): False,
        b'{"a": 1}': False,
        b'[1,2]': True,
        b'"text"': True,
    }
    for raw, ok in cases.items():
        assert (canonical.check(raw)[1] is None) is ok, raw
        assert (canonical.slow_check(raw)[1] is None) is ok, raw


@settings(max_examples=200, deadline=None)
@given(_VALUES)
def test_standard_library_fallback_agrees_too(value: Any) -> None:
    """Without orjson, the standard-library fast path accepts and encodes exactly as rfc8785."""
    saved = canonical._loads, canonical._dumps
    canonical._loads, canonical._dumps = canonical.std_loads, canonical.std_dumps
    try:
        for raw in _encodings(value):
            assert (canonical.check(raw)[1] is None) == (canonical.slow_check(raw)[1] is None), raw
        try:
            expected: bytes | None = rfc8785.dumps(value)
        except rfc8785.CanonicalizationError:
            expected = None
        if expected is not None:
            assert canonical.dumps(value) == expected
    finally:
        canonical._loads, canonical._dumps = saved


@settings(max_examples=300, deadline=None)
@given(_VALUES)
def test_dumps_is_the_reference(value: Any) -> None:
    """The entry encoder gives rfc8785's bytes, or rfc8785's error, for any value."""
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError as exc:
        try:
            canonical.dumps(value)
        except rfc8785.CanonicalizationError as again:
            assert type(again) is type(exc)
        else:
            raise AssertionError(f"accepted {value!r}") from None
        return
    assert canonical.dumps(value) == expected
