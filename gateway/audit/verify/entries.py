"""One entry on its own: parsed, checked to be exactly RFC 8785 and of the entry's shape, and the
facts the rules replay needs of it (see :mod:`gateway.audit.replay`).

These run for every entry, in worker processes: plain functions over plain data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from gateway.audit import canonical
from gateway.audit.entry import ENTRY_VERSION
from gateway.audit.gates import sent_gates_problem, settings_problem
from gateway.jsondepth import nests_deeper

MAX_ENTRY_DEPTH = 64
"""How deep an entry may nest: Byline's own nest a few levels."""
def _a_time(ts: str) -> bool:
    """Whether ``ts``, of the right shape, names a time (no 13th month, no 25th hour)."""
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        return False
    return True


_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
SHA256 = re.compile(r"[0-9a-f]{64}")
"""A SHA-256 as the log writes one: 64 lowercase hex digits."""


def a_stamp(value: Any) -> bool:
    """Whether ``value`` is a time as Byline's entries write them (``ts``, ``publish_at``)."""
    return type(value) is str and _TS.fullmatch(value) is not None and _a_time(value)


_KEYS = frozenset({"v", "type", "ts", "actor", "account", "post", "data", "prev"})
_LINK_KEYS = frozenset({"index", "leaf"})
_ORDER = ("account", "actor", "data", "post", "prev", "ts", "type", "v")  # sorted, as canonical
_loads, _dumps, _needs_reference = canonical.fast_loads, canonical.fast_dumps, canonical.needs_reference

Fields = tuple[str | None, str, dict[str, Any], str | None, dict[str, Any] | None, str, str]
"""A well-formed entry's account, actor, data, post, prev, ts and type (its keys' order, less v)."""

REPLAYED = frozenset({
    "policy.loaded", "policy.changed", "policy.removed",
    "post.submitted", "post.edited", "post.approved", "post.published", "post.publishing",
    "post.redecided", "post.rejected", "post.cancelled", "post.adopted", "post.dismissed",
    "post.expired", "post.deferred", "post.failed", "post.retried", "post.revising", "post.revised",
    "post.revision_failed", "post.deleted", "post.gates_changed", "profile.updated",
})
"""The entry types the rules replay takes."""


def parse_entry(raw: bytes, last_ts: str | None = None) -> tuple[Fields | None, str | None]:
    """Parse an entry and check that it is exactly RFC 8785 (see :mod:`gateway.audit.canonical`)
    and of the entry's shape. Returns its fields (None when it is not an entry at all) and the
    problem found, if any: its encoding's first, else its shape's.

    ``last_ts`` is a timestamp already known to be well formed (the previous entry's): an equal
    one is not matched again.

    The one fast path of the verifier: the fast parser's reading, taken when the fast encoder
    gives the same bytes back, the shape holds, and nothing in ``data`` needs the reference
    encoder; anything else is parsed again and compared by the reference (``rfc8785``). On the
    entries of ``python -m bench verify`` that is 3.4 µs an entry against 29 µs by the reference
    alone: without it the benchmark's million entries would take minutes, not seconds.
    """
    try:
        body = _loads(raw)
        same = _dumps(body) == raw
    except (ValueError, TypeError, RecursionError, UnicodeError):
        same = False
    if same:
        fields = _shape(body, last_ts)
        if type(fields) is tuple and not _needs_reference(fields[2], not raw.isascii()):
            return fields, None
    if nests_deeper(raw, MAX_ENTRY_DEPTH):
        # No entry nests this deep; parsed, such a line would crash what reads it next (the
        # worker that sends its facts back to the verifier pickles them, and recurses).
        return None, f"nests arrays and objects deeper than {MAX_ENTRY_DEPTH} levels: not an entry"
    body, problem = canonical.slow_check(raw)
    if body is None:  # unreadable: slow_check says why
        return None, problem
    fields = _shape(body, last_ts)
    if isinstance(fields, str):
        return None, problem or fields
    return fields, problem


def _shape(body: Any, last_ts: str | None) -> Fields | str:
    """The fields of a parsed entry, or what is wrong with its shape. Every top-level value is
    checked to be of its exact type, so only ``data`` can hold a float."""
    if type(body) is not dict:
        return "is not a JSON object"
    if tuple(body) == _ORDER:  # as every canonical entry has them: its values come in this order
        account, actor, data, post, prev, ts, kind, v = body.values()
    elif body.keys() == _KEYS:
        account, actor, data, post, prev, ts, kind, v = (body[key] for key in _ORDER)
    else:
        missing = sorted(_KEYS - body.keys())
        extra = sorted(body.keys() - _KEYS)
        return f"has the wrong fields (missing {missing}, unexpected {extra})"
    if v != ENTRY_VERSION or type(v) is not int:
        return f"has version {v!r}, expected {ENTRY_VERSION}"
    if type(kind) is not str or not kind:
        return "has no type"
    if type(ts) is not str or (ts != last_ts and not (_TS.fullmatch(ts) and _a_time(ts))):
        return "has a malformed ts"
    if type(actor) is not str:
        return "has no actor"
    if not (account is None or type(account) is str) or not (post is None or type(post) is str):
        return "has a malformed account or post"
    if type(data) is not dict:
        return "has data that is not an object"
    if prev is not None and (
        type(prev) is not dict or prev.keys() != _LINK_KEYS
        or type(prev["index"]) is not int or type(prev["leaf"]) is not str
    ):
        return "has a malformed prev link"
    return account, actor, data, post, prev, ts, kind


def _version(data: dict[str, Any]) -> int | None:
    """A policy entry's version number (entries logged before versions were numbered have none)."""
    version = data.get("version")
    return version if type(version) is int else None


def _str_list(value: Any) -> tuple[str, ...] | None:
    if type(value) is not list:
        return None
    for item in value:
        if type(item) is not str:
            return None
    return tuple(value)


def _parent(data: dict[str, Any]) -> str | None:
    """The post of Byline's an entry says its post replies to (``reply_to_post``; in its
    ``options``, where entries before Byline kept options beside its versions gave them), if any."""
    if "reply_to_post" in data:
        parent = data["reply_to_post"]
    else:
        options = data.get("options")
        parent = options.get("reply_to_post") if type(options) is dict else None
    return parent if type(parent) is str else None


def _answers(kind: str, data: dict[str, Any]) -> tuple[tuple[str, int] | None, str | None]:
    """The post not yet out and its version a reply's entry says it answers (``answers_post``
    and ``answers_version``), if any; or why the entry is malformed."""
    answers = (data.get("answers_post"), data.get("answers_version"))
    if answers == (None, None):
        return None, None
    if not (type(answers[0]) is str and type(answers[1]) is int and type(data.get("reply_to_post")) is str):
        # Read as absent, a reply could go out answering other words than its approvers saw.
        return None, f"{kind} has a malformed data.answers_post or data.answers_version"
    return (answers[0], answers[1]), None


def _sha(data: dict[str, Any]) -> str | None:
    sha = data.get("policy_sha256")
    return sha if type(sha) is str else None


def fact_extra(kind: str, data: dict[str, Any]) -> tuple[Any, str | None]:
    """The part of an entry's fact that depends on its type (see :data:`gateway.audit.replay.Fact`), or a problem."""
    if kind == "post.gates_changed":
        gate, cid = data.get("gate"), data.get("cid")
        if type(gate) is not str or not (cid is None or type(cid) is str):
            return None, "post.gates_changed lacks data.gate or has a malformed data.cid"
        if (problem := settings_problem(gate, data.get("settings"))) is not None:
            return None, f"post.gates_changed: {problem}"
        return (_sha(data), gate), None
    if kind == "post.publishing":
        version = data.get("version")
        if not (version is None or type(version) is int):
            # Read as none, it would escape the check that a claim sends the current version.
            return None, "post.publishing has a malformed data.version"
        claim = (_sha(data), version)
        if "gates" in data and (problem := sent_gates_problem(data["gates"])) is not None:
            # The public card puts them in words as the post went out, checked against this.
            return None, f"post.publishing: {problem}"
        # A recovered claim the policy in force would not let out: it only looks for the post.
        looks_only = data.get("looks_only")
        checked = data.get("policy_in_force")
        if checked is not None and checked is not True:
            # Read as absent, it would make a claim under a replaced policy pass within the grace.
            return None, "post.publishing has a malformed data.policy_in_force"
        key = data.get("idempotency_key")
        if key is not None and type(key) is not str:
            # Read as absent, a claim again under another key than its last send's would pass.
            return None, "post.publishing has a malformed data.idempotency_key"
        if checked or key is not None:
            # It checked that the policy it names was the account's recorded version, in the
            # transaction that wrote it; and the key it sends with: see ``Replay._publishing``.
            return (*claim, looks_only if type(looks_only) is str else None, checked, key), None
        return (*claim, looks_only) if type(looks_only) is str else claim, None
    if kind == "post.revised" or kind == "post.revising":
        version, revision = data.get("version"), data.get("revision")
        if type(version) is not int:
            return None, f"{kind} lacks data.version"
        line = data.get("disclosure_line")
        if line is not None and type(line) is not str:
            # Read as absent, the words that went out would pass unrebuilt.
            return None, f"{kind} has a malformed data.disclosure_line"
        carried: Any = None
        if revision is not None:
            if type(revision) is not str:
                # Read as absent, the revision would be judged as one its policy sends at once.
                return None, f"{kind} has a malformed data.revision"
            # The pending revision whose approvals or cooling-off let the words out, and what it
            # sends besides its words as that revision's version hashes it (``Replay._released``):
            # "" for nothing. Every Byline that names a pending revision records it, so an entry
            # without it is named: left out, another content warning would pass unchecked.
            if "revision_content_sha256" not in data:
                return None, f"{kind} names a pending revision but lacks data.revision_content_sha256"
            carried = data["revision_content_sha256"]
            if not (carried is None or (type(carried) is str and SHA256.fullmatch(carried))):
                # Read as absent, it would let out another content warning than was approved.
                return None, f"{kind} has a malformed data.revision_content_sha256"
            carried = carried or ""
        if line is not None:
            # The disclosure line it sent after its words ("" for none): see ``Replay._sends_line``.
            return (version, _sha(data), revision, carried, line), None
        if revision is not None:
            return (version, _sha(data), revision, carried), None
        return (version, _sha(data)), None
    if kind == "post.revision_failed":
        version, revision = data.get("version"), data.get("revision")
        if type(version) is not int:
            return None, "post.revision_failed lacks data.version"
        return ((version, revision) if type(revision) is str else (version,)), None
    if kind == "post.approved":
        version = data.get("version")
        if type(version) is not int:
            return None, "post.approved lacks data.version"
        bound = data.get("text_bound")
        if bound is not None and bound is not True:
            # Read as absent, an approval could let out other words than its approver read.
            return None, "post.approved has a malformed data.text_bound"
        if bound:
            # Given for the text with its policy's disclosure line: see ``Replay._approved``.
            return (version, data.get("state"), _sha(data), True), None
        return (version, data.get("state"), _sha(data)), None
    if kind == "post.submitted":
        version, approvers, required = data.get("version"), _str_list(data.get("approvers")), data.get("required")
        state, sha = data.get("state"), data.get("policy_sha256")
        if not (type(version) is int and type(state) is str and approvers is not None and type(required) is int
                and (sha is None or type(sha) is str)):
            return None, "post.submitted lacks data.version, state, approvers or required"
        suggested_by = data.get("suggested_by")
        if suggested_by is not None and type(suggested_by) is not str:
            return None, "post.submitted has a malformed data.suggested_by"
        announces = data.get("announces")
        if announces is not None:
            # The policy file's announcement of a change of voice: the version it announces, and
            # what of it (the parts of the voice, ``announce`` for the end of announcements),
            # which every announcement Byline made says.
            said = _str_list(announces.get("changed")) if type(announces) is dict else None
            if (type(announces) is not dict or type(announces.get("version")) is not int
                    or type(announces.get("policy_sha256")) is not str or said is None):
                return None, "post.submitted has a malformed data.announces"
            return (version, state, approvers, required, sha, suggested_by,
                    (announces["version"], announces["policy_sha256"], said)), None
        parent, adopted_from, revises = _parent(data), data.get("adopted_from"), data.get("revises")
        if revises is not None and type(revises) is not str:
            return None, "post.submitted has a malformed data.revises"
        quotes = (data.get("quote_of_post"), data.get("quote_of_version"))
        if quotes != (None, None) and not (type(quotes[0]) is str and type(quotes[1]) is int):
            # Read as absent, a quote could go out quoting other words than its approvers saw.
            return None, "post.submitted has a malformed data.quote_of_post or data.quote_of_version"
        answers, why = _answers(kind, data)
        if why is not None:
            return None, why
        if revises is not None or quotes[0] is not None or answers is not None:
            # A pending revision of a published post (see ``Replay._revision``), a quote of a
            # post not yet out, at its version then (see ``Replay._quoting``), or a reply to one,
            # at the version it answers (see ``Replay._answering``).
            return (version, state, approvers, required, sha, suggested_by, None, parent,
                    adopted_from if type(adopted_from) is str else None, revises,
                    quotes if quotes[0] is not None else None, answers), None
        if parent is not None or type(adopted_from) is str:
            # A reply to a post not yet out, or a suggestion taken up: what a thread's end is
            # checked by (see ``Replay._with_parent``).
            return (version, state, approvers, required, sha, suggested_by, None, parent,
                    adopted_from if type(adopted_from) is str else None), None
        if suggested_by is None:
            return (version, state, approvers, required, sha), None
        return (version, state, approvers, required, sha, suggested_by), None
    if kind == "post.published":
        version = data.get("version")
        if type(version) is not int:
            return None, "post.published lacks data.version"
        # Found on its platform by a recovered claim, not sent by it.
        return ((version, True) if data.get("found") is True else (version,)), None
    if kind == "post.edited" or kind == "post.redecided":
        version, state = data.get("version"), data.get("state")
        if type(version) is not int or type(state) is not str:
            return None, f"{kind} lacks data.version or data.state"
        required = data.get("required")
        changed = (version, state, _str_list(data.get("approvers")), required if type(required) is int else None,
                   _sha(data))
        # An edit that gives the options gives the post it now replies to (or none), and the
        # version of it the reply answers now.
        gives = "options" in data or "reply_to_post" in data
        answers, why = _answers(kind, data)
        if why is not None:
            return None, why
        if answers is not None:
            return (*changed, _parent(data), answers), None
        return (*changed, _parent(data)) if gives else changed, None
    if kind == "policy.loaded" or kind == "policy.changed":
        sha, summary = data.get("sha256"), data.get("policy")
        if type(sha) is not str or type(summary) is not dict:
            return None, f"{kind} lacks data.sha256 or data.policy"
        return (sha, summary, _version(data)), None
    if kind == "policy.removed":
        return (_version(data),), None
    if kind == "profile.updated":
        version, text, platform = data.get("version"), data.get("text"), data.get("platform")
        if (type(version) is not int or "text" not in data or not (text is None or type(text) is str)
                or type(platform) is not str):
            return None, "profile.updated lacks data.version, data.text or data.platform"
        return (version,), None
    state, version = data.get("state"), data.get("version")
    fact = (state if type(state) is str else None, version if type(version) is int else None, _sha(data))
    # The parent a failure, a cancel or a retry of a reply names, for what a thread's end allows,
    # and the post a cancel of a quote names (``quote_of_post``), for what its end allows.
    named, quoted = data.get("reply_to_post"), data.get("quote_of_post")
    if type(quoted) is str:
        return (*fact, named if type(named) is str else None, quoted), None
    return (*fact, named) if type(named) is str else fact, None
