"""RFC 8785 canonical JSON, quickly: encoding entries, and checking that bytes are canonical.

The ``rfc8785`` package is the reference. It is pure Python: about 40 µs an entry, too slow for
an appender meant to keep up with plain INSERTs or an auditor re-encoding a million entries in
seconds. So a fast encoder does the work (orjson when installed, else the standard library's C
encoder), with sorted keys, no whitespace and no ASCII escaping, and its answer is trusted only
where it provably equals RFC 8785's:

- strings: both escape exactly ``"``, ``\\`` and the controls below U+0020, the same way, and
  write everything else as UTF-8 (checked for every code point in the tests);
- integers up to 2**53 in magnitude: both write plain digits; beyond that RFC 8785 refuses them,
  and so does the fast path (orjson's strict-integer option; a checked parser in the fallback);
- object keys: both sort by code point, which is RFC 8785's UTF-16 order for ASCII keys, and
  differs only between some keys outside ASCII;
- floats: the two format them differently.

So values with a float, or with a key outside ASCII, and anything the fast path cannot handle,
go to ``rfc8785``; so does every mismatch when checking. The result, or the error, is always
exactly the reference's.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import rfc8785

try:  # the fast path; the standard library does the same job more slowly
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

_MAX_INT = 2**53 - 1
_STD_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _checked_int(text: str) -> int:
    value = int(text)
    if abs(value) > _MAX_INT:
        raise ValueError("integer beyond 2**53")
    return value


def _needs_reference(value: Any, keys: bool) -> bool:
    """Whether ``value`` holds a float, or (when ``keys``) an object key outside ASCII.

    Those are the only places where the fast encoder's output and RFC 8785's can differ. A plain
    walk over exact types: it runs for every entry, so the common leaves are passed over first.
    """
    kind = type(value)
    if kind is dict:
        if keys:
            for key in value:
                if type(key) is not str or not key.isascii():
                    return True
        items: Any = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return kind is float
    for item in items:
        t = type(item)
        if t is str or t is int or t is bool or item is None:
            continue
        if t is float or ((t is dict or t is list or t is tuple) and item and _needs_reference(item, keys)):
            return True
    return False


def std_loads(raw: bytes) -> Any:
    """Parse with the standard library, refusing what orjson would read differently."""
    return json.loads(raw, parse_constant=_reject_constant, parse_int=_checked_int)


def std_dumps(value: Any) -> bytes:
    """Encode with the standard library's C encoder: sorted keys, compact, UTF-8."""
    if _needs_integer_check(value):
        raise TypeError("integer beyond 2**53")
    return _STD_ENCODER.encode(value).encode("utf-8")


def _needs_integer_check(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return any(_needs_integer_check(v) for v in value.values())
    if kind is list or kind is tuple:
        return any(_needs_integer_check(v) for v in value)
    return kind is int and abs(value) > _MAX_INT


if orjson is not None:
    _STRICT = (
        orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
    )

    _loads: Callable[[bytes], Any] = orjson.loads
    _dumps: Callable[[Any], bytes] = functools.partial(orjson.dumps, option=_STRICT)
else:  # pragma: no cover - depends on the environment
    _loads = std_loads
    _dumps = std_dumps


def slow_check(raw: bytes) -> tuple[Any, str | None]:
    """Parse ``raw`` and compare it with ``rfc8785.dumps``: (value or None, problem or None)."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON ({exc})"
    try:
        canonical = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, RecursionError) as exc:
        return value, f"not representable as RFC 8785 JSON ({exc})"
    if canonical != raw:
        return value, "not in RFC 8785 canonical form (re-encoding gives different bytes)"
    return value, None


def check(raw: bytes) -> tuple[Any, str | None]:
    """Parse ``raw``; return (value, None) if it is exactly RFC 8785, else (value or None, problem)."""
    try:
        value = _loads(raw)
        again = _dumps(value)
    except (ValueError, TypeError, RecursionError, UnicodeError):
        return slow_check(raw)
    if again == raw and not _needs_reference(value, not raw.isascii()):
        return value, None
    return slow_check(raw)


_WHOLE: Any = object()


def dumps(value: Any, *, suspect: Any = _WHOLE) -> bytes:
    """The RFC 8785 bytes of ``value``, or ``rfc8785``'s error.

    ``suspect`` may name the part of ``value`` that can hold floats or keys outside ASCII, when
    the caller built the rest itself (the whole value by default).
    """
    try:
        out = _dumps(value)
    except (TypeError, ValueError, UnicodeError, RecursionError):
        return bytes(rfc8785.dumps(value))
    if _needs_reference(value if suspect is _WHOLE else suspect, not out.isascii()):
        return bytes(rfc8785.dumps(value))
    return out


def loads(raw: bytes) -> Any:
    """Parse JSON with the fast library (no canonical check)."""
    return _loads(raw)


fast_loads: Callable[[bytes], Any] = _loads
"""The fast parser (for callers that do the rest of :func:`check` themselves)."""

fast_dumps: Callable[[Any], bytes] = _dumps
"""The fast encoder: sorted keys, compact, UTF-8 (not yet known to be RFC 8785)."""

needs_reference: Callable[[Any, bool], bool] = _needs_reference
"""Whether the fast encoding of a value may differ from RFC 8785 (floats; keys outside ASCII
when the second argument is true)."""
