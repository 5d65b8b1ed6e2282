"""Who may reply to or quote a published post, as a ``post.gates_changed`` entry says it: the
settings a threadgate or postgate holds, without the addresses it may list; their shape, and
the same in plain words for the people's pages and webhooks. Pure, no I/O.

The entry keeps the PDS's CID of the record, not the record (a threadgate may list 300 hidden
replies: other people's addresses an append-only log could never forget). What followers need
to read is smaller: which rule lets whom reply, whether quotes are allowed, and how many replies
are hidden or quotes detached. That summary (``data.settings``) is made from the record Byline
wrote, so the CID beside it names the record it summarises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

THREADGATE: Final = "app.bsky.feed.threadgate"
POSTGATE: Final = "app.bsky.feed.postgate"

CHANGES_PER_HOUR: Final = 30
"""How many times a post's interaction settings may change in any hour (its threadgate and
postgate together, each write one change). Enough to hide reply after reply through a pile-on;
past it, each change is one more PDS write and one more line on the post's public card, and a
writer flipping them over and over is flooding both."""
_HOUR_MICROS: Final = 3600 * 1_000_000


def budget_wait(times: Sequence[int], *, now: int, adding: int) -> int | None:
    """Seconds until ``adding`` more changes of one post's settings fit in its budget
    (``CHANGES_PER_HOUR`` in the hour up to any moment), or None when they fit now.

    ``times``: the post's changes so far (stored microseconds, oldest first); ``now`` likewise.
    A change leaves the hour exactly an hour after it was made."""
    recent = [t for t in times if t > now - _HOUR_MICROS]
    over = len(recent) + adding - CHANGES_PER_HOUR
    if over <= 0:
        return None
    if over > len(recent):
        raise ValueError(f"{adding} changes at once is more than {CHANGES_PER_HOUR} an hour")
    return max(1, math.ceil((recent[over - 1] + _HOUR_MICROS - now) / 1_000_000))

_RULES: Final = {"mentionRule": "mention", "followerRule": "follower", "followingRule": "following",
                 "listRule": "list"}
"""The threadgate's rules, by the short name the summary gives them, in the lexicon's order."""
_WHO: Final = {"mention": "people mentioned", "follower": "the account's followers",
               "following": "people the account follows"}


def gate_settings(collection: str, record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The summary of a checked gate record (``None``: the gate was deleted, so the platform's
    default holds again: everybody may reply, quotes are on).

    A threadgate: ``replies`` is ``"everybody"`` (no ``allow``), ``"nobody"`` (an empty one) or
    the short names of its rules, each once (``mention``, ``follower``, ``following``,
    ``list``), with ``lists`` counting its list rules and ``hidden_replies`` the replies it
    hides. A postgate: ``quotes`` is ``"off"`` or ``"on"``, with ``detached_quotes``."""
    record = record or {}
    if collection == THREADGATE:
        allow = record.get("allow")
        rules = [str(r.get("$type", "")).rsplit("#", 1)[-1] for r in allow or () if isinstance(r, Mapping)]
        replies: str | list[str]
        if allow is None:
            replies = "everybody"
        elif not rules:
            replies = "nobody"
        else:
            replies = [short for name, short in _RULES.items() if name in rules]
        return {"replies": replies, "lists": rules.count("listRule"),
                "hidden_replies": len(record.get("hiddenReplies") or ())}
    embedding = record.get("embeddingRules") or ()
    off = any(isinstance(r, Mapping) and str(r.get("$type", "")).endswith("#disableRule") for r in embedding)
    return {"quotes": "off" if off else "on", "detached_quotes": len(record.get("detachedEmbeddingUris") or ())}


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= 300


def settings_problem(gate: Any, settings: Any) -> str | None:
    """Why ``settings`` is no summary of a ``gate`` (as :func:`gate_settings` makes them), or
    None. Absent settings (entries written before Byline recorded them) are no problem."""
    if settings is None:
        return None
    if not isinstance(settings, dict):
        return "data.settings must be an object"
    if gate == THREADGATE:
        replies, lists = settings.get("replies"), settings.get("lists")
        rules = replies if isinstance(replies, list) else []
        named = bool(rules) and all(r in _RULES.values() for r in rules) and len(set(rules)) == len(rules)
        if set(settings) != {"replies", "lists", "hidden_replies"} or not (replies in ("everybody", "nobody") or named):
            return "data.settings of a threadgate must say replies, lists and hidden_replies"
        if not _count(lists) or not _count(settings.get("hidden_replies")) or (lists != 0) != ("list" in rules):
            return "data.settings of a threadgate counts its lists or hidden replies wrongly"
        return None
    if gate == POSTGATE:
        if set(settings) != {"quotes", "detached_quotes"} or settings.get("quotes") not in ("on", "off") \
                or not _count(settings.get("detached_quotes")):
            return "data.settings of a postgate must say quotes (on or off) and detached_quotes"
        return None
    return None  # a gate that is none of the two is named by the replay


def gate_words(gate: Any, settings: Any) -> str:
    """The settings in plain words: "Replies: only people mentioned; 2 replies hidden",
    "Quotes: off". An entry without settings (or whose settings are of no gate's shape) says
    which setting changed; one naming neither gate, that one of them did."""
    if gate not in (THREADGATE, POSTGATE):
        return "Who may reply or quote changed"  # read from an export, anyone's file: named by the verifier
    if settings_problem(gate, settings) is not None or not isinstance(settings, dict):
        return "Who may quote changed" if gate == POSTGATE else "Who may reply changed"
    if gate == POSTGATE:
        words = f"Quotes: {settings['quotes']}"
        detached = settings["detached_quotes"]
        return words + (f"; {_plural(detached, 'quote')} detached" if detached else "")
    replies = settings["replies"]
    if isinstance(replies, str):
        words = f"Replies: {replies}"
    else:
        who = [_WHO[r] for r in replies if r != "list"]
        if "list" in replies:
            who.append(f"people on {_plural(settings['lists'], 'list')}")
        words = "Replies: only " + (who[0] if len(who) == 1 else ", ".join(who[:-1]) + " and " + who[-1])
    hidden = settings["hidden_replies"]
    return words + (f"; {_plural(hidden, 'reply', 'replies')} hidden" if hidden else "")


def record_words(collection: str, record: Mapping[str, Any] | None) -> str:
    """A gate record (checked, or None for none) in the words :func:`gate_words` gives its
    settings: what the people's pages say of a post's gates before it goes out, as after."""
    return gate_words(collection, gate_settings(collection, record))


def record_lists(record: Mapping[str, Any]) -> list[str]:
    """The addresses of the lists a threadgate lets reply, in its order: who they are is up to
    the lists' owners, so an approver reads which lists they are, not how many."""
    allow = record.get("allow")
    return [str(rule["list"]) for rule in allow if isinstance(rule, Mapping) and "list" in rule] \
        if isinstance(allow, list) else []


def gates_in_words(gates: Any) -> list[tuple[str, list[str]]]:
    """A post's gates (``PostOptions.gates``), threadgate first, each that is there in the words
    of :func:`record_words`, with the addresses of the lists it lets reply (none for a postgate).
    The approval card shows both; the public card the words only (the lists are other people's)."""
    return [(g["words"], record_lists(gates[g["gate"]])) for g in gates_summed_up(gates)]


def sent_gates(gates: Any) -> list[dict[str, Any]]:
    """A post's gates (``PostOptions.gates``), threadgate first, each that is there summed up as
    a ``post.gates_changed`` entry sums one up (``gate`` and ``settings``): what a claim's
    ``post.publishing`` entry says the post goes out with, so the public card's words of them are
    checked against the log. Never the addresses a gate lists (they are other people's)."""
    if not isinstance(gates, Mapping):
        return []
    return [{"gate": c, "settings": gate_settings(c, record)}
            for c in (THREADGATE, POSTGATE) if isinstance(record := gates.get(c), Mapping)]


def sent_gates_problem(value: Any) -> str | None:
    """Why ``value`` is not what :func:`sent_gates` makes (one or two distinct gates, threadgate
    first, each with its settings), or None."""
    if type(value) is not list or not 1 <= len(value) <= 2:
        return "data.gates must list one or two gates"
    named = [g.get("gate") if type(g) is dict and set(g) == {"gate", "settings"} else None for g in value]
    if named not in ([THREADGATE], [POSTGATE], [THREADGATE, POSTGATE]):
        return "data.gates must name a threadgate, a postgate or both, in that order, each with its settings"
    for gate in value:
        if gate["settings"] is None:
            return "data.gates must give each gate's settings"
        if (problem := settings_problem(gate["gate"], gate["settings"])) is not None:
            return problem
    return None


def gates_summed_up(gates: Any) -> list[dict[str, Any]]:
    """:func:`sent_gates`, each with its settings in words too: for webhooks."""
    return [{**g, "words": gate_words(g["gate"], g["settings"])} for g in sent_gates(gates)]


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"
