"""One entry on its own: parsed, checked to be exactly RFC 8785 and of the entry's shape, and the
facts the rules replay needs of it (see :mod:`gateway.audit.replay`).

These run for every entry, in worker processes: plain functions over plain data.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.audit import canonical
from gateway.audit.entry import ENTRY_VERSION
from gateway.audit.replay import Fact

_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_KEYS = frozenset({"v", "type", "ts", "actor", "account", "post", "data", "prev"})
_LINK_KEYS = frozenset({"index", "leaf"})
_ORDER = ("account", "actor", "data", "post", "prev", "ts", "type", "v")  # sorted, as canonical

REPLAYED = frozenset({
    "policy.loaded", "policy.changed", "policy.removed",
    "post.submitted", "post.edited", "post.approved", "post.published", "post.publishing",
    "post.redecided", "post.rejected", "post.cancelled", "post.adopted", "post.dismissed",
    "post.expired", "post.deferred", "post.failed", "post.retried",
})


def _str_list(value: Any) -> tuple[str, ...] | None:
    if type(value) is not list:
        return None
    for item in value:
        if type(item) is not str:
            return None
    return tuple(value)


def _int(value: Any) -> bool:
    return type(value) is int


def extract(body: dict[str, Any]) -> tuple[Fact | None, str | None]:
    """The replay's facts of one well-formed entry, or a problem."""
    kind = body["type"]
    extra, problem = fact_extra(kind, body["data"])
    if problem is not None:
        return None, problem
    return (kind, body["actor"], body["account"], body["post"], extra), None


def _sha(data: dict[str, Any]) -> str | None:
    sha = data.get("policy_sha256")
    return sha if type(sha) is str else None


def fact_extra(kind: str, data: dict[str, Any]) -> tuple[Any, str | None]:
    """The part of an entry's fact that depends on its type (see :data:`Fact`), or a problem."""
    if kind == "post.publishing":
        return _sha(data), None
    if kind == "post.approved":
        version = data.get("version")
        if not _int(version):
            return None, "post.approved lacks data.version"
        return (version, data.get("state"), _sha(data)), None
    if kind == "post.submitted":
        version, approvers, required = data.get("version"), _str_list(data.get("approvers")), data.get("required")
        state, sha = data.get("state"), data.get("policy_sha256")
        if not (_int(version) and type(state) is str and approvers is not None and _int(required)
                and (sha is None or type(sha) is str)):
            return None, "post.submitted lacks data.version, state, approvers or required"
        suggested_by = data.get("suggested_by")
        if suggested_by is not None and type(suggested_by) is not str:
            return None, "post.submitted has a malformed data.suggested_by"
        if suggested_by is None:
            return (version, state, approvers, required, sha), None
        return (version, state, approvers, required, sha, suggested_by), None
    if kind == "post.published":
        version = data.get("version")
        if not _int(version):
            return None, "post.published lacks data.version"
        return (version,), None
    if kind == "post.edited" or kind == "post.redecided":
        version, state = data.get("version"), data.get("state")
        if not _int(version) or type(state) is not str:
            return None, f"{kind} lacks data.version or data.state"
        required = data.get("required")
        return (version, state, _str_list(data.get("approvers")), required if _int(required) else None,
                _sha(data)), None
    if kind == "policy.loaded" or kind == "policy.changed":
        sha, summary = data.get("sha256"), data.get("policy")
        if type(sha) is not str or type(summary) is not dict:
            return None, f"{kind} lacks data.sha256 or data.policy"
        return (sha, summary), None
    if kind == "policy.removed":
        return None, None
    state, version = data.get("state"), data.get("version")
    return (state if type(state) is str else None, version if _int(version) else None, _sha(data)), None


def structure(body: Any) -> str | None:
    """What is wrong with the shape of a parsed entry, if anything. Every top-level value is
    checked to be of its exact type, so only ``data`` can hold a float."""
    if type(body) is not dict:
        return "is not a JSON object"
    if body.keys() != _KEYS:
        missing = sorted(_KEYS - body.keys())
        extra = sorted(body.keys() - _KEYS)
        return f"has the wrong fields (missing {missing}, unexpected {extra})"
    if body["v"] != ENTRY_VERSION or type(body["v"]) is not int:
        return f"has version {body['v']!r}, expected {ENTRY_VERSION}"
    kind, ts = body["type"], body["ts"]
    if type(kind) is not str or not kind:
        return "has no type"
    if type(ts) is not str or not _TS.fullmatch(ts):
        return "has a malformed ts"
    if type(body["actor"]) is not str:
        return "has no actor"
    account, post = body["account"], body["post"]
    if not (account is None or type(account) is str) or not (post is None or type(post) is str):
        return "has a malformed account or post"
    if type(body["data"]) is not dict:
        return "has data that is not an object"
    prev = body["prev"]
    if prev is not None and (
        type(prev) is not dict or prev.keys() != {"index", "leaf"}
        or type(prev["index"]) is not int or type(prev["leaf"]) is not str
    ):
        return "has a malformed prev link"
    return None


def parse(raw: bytes) -> tuple[Any, str | None, str | None]:
    """Parse an entry and check that it is exactly RFC 8785 (see :mod:`gateway.audit.canonical`).

    The fast path checks the shape first: every top-level value then has an exact type and
    only ``data`` needs the walk for floats and keys outside ASCII. Returns the parsed entry,
    what is wrong with its encoding, and what is wrong with its shape.
    """
    try:
        body = canonical.fast_loads(raw)
        same = canonical.fast_dumps(body) == raw
    except (ValueError, TypeError, RecursionError, UnicodeError):
        same = False
    if same and structure(body) is None and not canonical.needs_reference(body["data"], not raw.isascii()):
        return body, None, None
    body, problem = canonical.slow_check(raw)
    return body, problem, structure(body) if body is not None else "is not JSON"
