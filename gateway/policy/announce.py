"""The words of a voice-change announcement: what changed in who speaks for an account, said
the way followers read it, and the template an admin may give (``announce.template``).

Pure: no I/O. The policy model checks a template with these when the file loads, and the
announcement service renders it in the transaction that records the policy version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

ANNOUNCER: Final = "policy-file"
"""The actor of an announcement in the log: the admin's policy file, not any writer."""

VOICE_KEYS: Final = ("tier", "owner", "writers", "suggesters", "approvers", "required", "speaks_as")
"""The parts of a policy summary that are its voice: a change of any one is announced.
Approvers count, and how many of them must sign: on a co-signed account who signs off is part
of whose words go out, and one of three co-signers is not all three. And the platform account
it speaks as (``speaks_as``): words approved for @brand are not approved for @someone-else."""

ADDED_LATER: Final = frozenset({"speaks_as"})
"""Parts of the voice that summaries recorded by an earlier Byline leave out: unknown there, so
not taken for a change (the first reload after an upgrade changes no account's voice)."""

PLACEHOLDERS: Final = ("account", "handle", "voice", "url", "version")
"""What a template may name, as ``{name}``."""

DEFAULT_TEMPLATE: Final = "Change of voice: this account is now {voice}. Who writes and approves each post: {url}"

PROMISE: Final = "announce"
"""The key of a policy summary that asks for announcements (``announce: true``): named among
what a version announces when it withdraws the promise the policy it replaces made."""

WITHDRAWN_TEMPLATE: Final = ("This account will no longer announce changes of its voice. "
                             "Who writes and approves each post: {url}")
"""The words when a version stops the announcements the policy it replaces asked for and
leaves the voice as it was: the followers were promised they would be told, and are told
the promise ended."""

CHANGED_AND_WITHDRAWN_TEMPLATE: Final = (
    "Change of voice: this account is now {voice}, and will no longer announce changes of its voice. "
    "Who writes and approves each post: {url}")
"""The words when one version changes the voice and stops the announcements: one post says both."""

URL_BUDGET: Final = 100
"""How long the public page's link is assumed to be when a template is checked at load, on the
platforms that count a link by its characters (Bluesky, the sandbox); Mastodon and X count 23."""


def _names(people: Sequence[str]) -> str:
    people = list(people)
    if len(people) <= 1:
        return "".join(people)
    return ", ".join(people[:-1]) + " and " + people[-1]


def _strings(summary: Mapping[str, Any], key: str) -> list[str]:
    value = summary.get(key)
    return sorted(v for v in value if isinstance(v, str)) if isinstance(value, list) else []


def _people(people: Sequence[str], noun: str, *, brief: bool) -> str:
    """People by name, or, ``brief``, two or more of them by how many (``12 writers``)."""
    return f"{len(people)} {noun}" if brief and len(people) > 1 else _names(people)


def _co_signers(approvers: Sequence[str], required: Any, noun: str, *, brief: bool) -> str:
    """Who co-signs each post: all the approvers, or how many of them; by name, or, ``brief``,
    by how many (``2 of 5 co-signers``, ``all 3 co-signers``, ``both co-signers``)."""
    some = len(approvers) >= 2 and type(required) is int and 0 < required < len(approvers)
    if brief and len(approvers) > 1:
        return f"{'one' if required == 1 else required} of {len(approvers)} {noun}" if some else \
            (f"both {noun}" if len(approvers) == 2 else f"all {len(approvers)} {noun}")
    return f"{'one' if required == 1 else required} of {_names(approvers)}" if some else _names(approvers)


def voice_words(summary: Mapping[str, Any], *, brief: bool = False) -> str:
    """Who speaks for an account under a policy (its ``summary()``), in a follower's words.
    ``brief``: two or more people of one part by how many, not by name, for a platform whose
    length limit a long list of names would pass (the public page names them)."""
    tier, owner = summary.get("tier"), summary.get("owner")
    writers, approvers = _strings(summary, "writers"), _strings(summary, "approvers")
    required = summary.get("required")
    owner_name = owner if isinstance(owner, str) else "its owner"
    by = "its owner" if writers == [owner_name] else _people(writers, "writers", brief=brief)
    if tier == "managed":
        team = f"a team of {len(writers)}" if brief and len(writers) > 1 else f"a team ({_names(writers)})"
        words = f"managed by {team}; {owner_name}, its owner, suggests"
    elif tier == "co-signed":
        words = f"written by {by}, each post co-signed by " \
                f"{_co_signers(approvers, required, 'co-signers', brief=brief) or owner_name}"
    elif tier == "delayed":
        words = f"written by {by}, each post after a cooling-off delay"
    else:
        words = f"written by {by}"
    if tier != "co-signed" and approvers:
        words += f", held posts approved by {_co_signers(approvers, required, 'approvers', brief=brief)}"
    return words


def voice_changed(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """The parts of the voice that differ between two policy summaries (none without a before)."""
    if before is None:
        return []
    return [k for k in VOICE_KEYS if before.get(k) != after.get(k) and (k in before or k not in ADDED_LATER)]


def announced(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """What recording a policy (its summary ``after``) in place of another (``before``; None
    for an account's first) announces: the parts of the voice it changes, and ``announce``
    where it withdraws the promise of announcements ``before`` made. Nothing where neither
    asks for them. The promise is kept by the version that withdraws it: else one edit could
    drop it and a later one change the voice, and the followers told of neither."""
    if before is None or not (before.get(PROMISE) or after.get(PROMISE)):
        return []
    changed = voice_changed(before, after)
    if before.get(PROMISE) and not after.get(PROMISE):
        changed.append(PROMISE)
    return changed


def template_for(changed: Sequence[str], own: str) -> str:
    """The template of the announcement of ``changed`` (see ``announced``): the policy's own
    (``own``) for a change of voice; the default words saying the promise ended where it is
    withdrawn (a policy asking for none has no template of its own, and the one withdrawn is
    in no recorded summary)."""
    if PROMISE not in changed:
        return own
    return WITHDRAWN_TEMPLATE if len(changed) == 1 else CHANGED_AND_WITHDRAWN_TEMPLATE


def fitted(template: str, *, fits: Callable[[str], bool], account: str, handle: str,
           summary: Mapping[str, Any], url: str, version: int) -> str:
    """The announcement's text, naming who speaks; or, where that text does not ``fit`` the
    platform's length limit (a long list of writers), saying how many of them speak instead, so
    that the followers are told rather than the platform refusing the post (who they are is on
    the public page the text links to). The text said briefly is returned even if it does not
    fit either: a template checked at load fits (see ``Policy``), and the default words do."""
    full = render(template, account=account, handle=handle, summary=summary, url=url, version=version)
    if fits(full):
        return full
    return render(template, account=account, handle=handle, summary=summary, url=url, version=version, brief=True)


def render(template: str, *, account: str, handle: str, summary: Mapping[str, Any], url: str,
           version: int, brief: bool = False) -> str:
    """The announcement's text (``brief``: see ``voice_words``). Only the placeholders are
    filled: ``str.format`` is never run on an admin's text (no attribute or index lookups)."""
    values = {"account": account, "handle": handle, "voice": voice_words(summary, brief=brief), "url": url,
              "version": str(version)}
    out, rest = [], template
    while rest:
        start = rest.find("{")
        if start < 0:
            out.append(rest)
            break
        end = rest.find("}", start)
        name = rest[start + 1:end] if end > start else ""
        if name in values:
            out.append(rest[:start] + values[name])
            rest = rest[end + 1:]
        else:
            out.append(rest[:start + 1])
            rest = rest[start + 1:]
    return "".join(out)


def unknown_placeholders(template: str) -> list[str]:
    """The ``{name}`` parts of a template that are not placeholders."""
    found, at = [], 0
    while (start := template.find("{", at)) >= 0:
        end = template.find("}", start)
        if end < 0:
            break
        name = template[start + 1:end]
        if name not in PLACEHOLDERS:
            found.append(name)
        at = end + 1
    return found
