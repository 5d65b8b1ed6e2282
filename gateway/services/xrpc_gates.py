"""A post's interaction settings, as a Bluesky app sends them with the post or changes them
later: pure checks.

The app's composer sends, in the ``applyWrites`` that creates a thread, an
``app.bsky.feed.threadgate`` (who may reply) with the first post and an
``app.bsky.feed.postgate`` (who may quote) with each post, each under the record key of its
post and naming it by ``post``. They are settings, not words: Byline keeps them with their post
(``PostOptions.gates``), past approvals, and writes them in the post's own commit when it goes
out, so never for a post that does not. Once the post is out, the app changes them on their own
("Edit interaction settings", "Hide reply": ``putRecord`` and the like under the post's key), and
Byline writes each change at once for a writer or the owner, logging it as ``post.gates_changed``
(``XrpcRepo._gates``); while the post waits, they stay as sent, part of what was approved.

Each is checked here against its lexicon first, because a record the PDS refused then would
keep its post from going out (a change is checked the same way): its ``post`` is the address
of the post it rides with, its ``createdAt`` a datetime, every address it names an AT-URI as
the PDS reads one (``valid_at_uri``), and its rule lists within their
lexicon's bounds (a threadgate allows at most 5 rules and hides at most 300 replies; a
postgate has at most 5 embedding rules and 50 detached quotes). A field the lexicon does not
name is refused, where a PDS would keep it: a gate goes out without the approvals its post
needs, so it may carry no words.
"""

from __future__ import annotations

import json
from typing import Any, Final

from adapters.bluesky import parse_datetime, valid_at_uri
from gateway.audit.gates import POSTGATE, THREADGATE

GATES: Final = frozenset({THREADGATE, POSTGATE})
MAX_GATE_CHARS: Final = 100_000
"""A gate's JSON, at most: 300 hidden replies' addresses fit with room to spare."""

_THREADGATE_RULES: Final = frozenset({
    f"{THREADGATE}#mentionRule", f"{THREADGATE}#followerRule", f"{THREADGATE}#followingRule",
    f"{THREADGATE}#listRule",
})
_POSTGATE_RULES: Final = frozenset({f"{POSTGATE}#disableRule"})
_FIELDS: Final = {
    THREADGATE: frozenset({"$type", "post", "createdAt", "allow", "hiddenReplies"}),
    POSTGATE: frozenset({"$type", "post", "createdAt", "embeddingRules", "detachedEmbeddingUris"}),
}
"""The fields each gate's lexicon names: a gate carries nothing else. It goes out without
approval, so a field of a writer's choosing would be words published past the approvers."""


class GateError(ValueError):
    """A gate record its lexicon does not allow; the message says where and why."""


def _uris(value: Any, where: str, most: int) -> None:
    if value is None:
        return
    if not isinstance(value, list) or len(value) > most:
        raise GateError(f"{where} must be a list of at most {most} at:// URIs")
    for n, uri in enumerate(value):
        if not isinstance(uri, str) or not valid_at_uri(uri):
            raise GateError(f"{where}/{n} must be an at:// URI")


def _rules(value: Any, where: str, allowed: frozenset[str], most: int) -> None:
    if value is None:
        return
    if not isinstance(value, list) or len(value) > most:
        raise GateError(f"{where} must be a list of at most {most} rules")
    for n, rule in enumerate(value):
        kind = rule.get("$type") if isinstance(rule, dict) else None
        if kind not in allowed:
            raise GateError(f"{where}/{n} must be one of {', '.join(sorted(allowed))}")
        assert isinstance(rule, dict)
        extra = sorted(set(rule) - ({"$type", "list"} if kind == f"{THREADGATE}#listRule" else {"$type"}))
        if extra:
            raise GateError(f"{where}/{n}/{extra[0]} is not part of a {kind.rsplit('#', 1)[-1]}")
        if kind == f"{THREADGATE}#listRule":
            listed = rule.get("list")
            if not isinstance(listed, str) or not valid_at_uri(listed):
                raise GateError(f"{where}/{n}/list must be an at:// URI")


def check_gate(collection: str, value: Any, *, post_uri: str) -> dict[str, Any]:
    """The gate record ``value`` of ``collection`` for the post at ``post_uri``, with its
    ``$type``, as it will be written; a ``GateError`` when its lexicon does not allow it."""
    if collection not in GATES:
        raise GateError(f"{collection} is not a gate")
    if not isinstance(value, dict):
        raise GateError("Record must be an object")
    if len(json.dumps(value, ensure_ascii=False)) > MAX_GATE_CHARS:
        raise GateError(f"Record is larger than {MAX_GATE_CHARS} characters of JSON")
    if value.get("$type", collection) != collection:
        raise GateError(f"Record/$type must be {collection}")
    extra = sorted(set(value) - _FIELDS[collection])
    if extra:
        raise GateError(f"Record/{extra[0]} is not part of {collection}: a gate says who may reply or quote, "
                        "nothing more (it goes out without the post's approvals)")
    if value.get("post") != post_uri:
        raise GateError(f"Record/post must be {post_uri}, the address of the post it goes with")
    created = value.get("createdAt")
    if not isinstance(created, str) or parse_datetime(created) is None:
        raise GateError("Record/createdAt must be an RFC 3339 datetime with a time zone")
    if collection == THREADGATE:
        _rules(value.get("allow"), "Record/allow", _THREADGATE_RULES, 5)
        _uris(value.get("hiddenReplies"), "Record/hiddenReplies", 300)
    else:
        _rules(value.get("embeddingRules"), "Record/embeddingRules", _POSTGATE_RULES, 5)
        _uris(value.get("detachedEmbeddingUris"), "Record/detachedEmbeddingUris", 50)
    return {"$type": collection, **{k: v for k, v in value.items() if k != "$type"}}

