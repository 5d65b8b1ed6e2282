"""The profile byline: the one line of an account's profile that says who writes for it.

Pure functions over a policy's voice (tier, owner, writers, approvers) and the template the
admin wrote (``profile.template``). A template is plain text with named places only:
``{voice}`` (who writes, and who approves, in words), ``{url}`` (the account's public page on
Byline) and ``{account}``. Anything else in braces (an attribute, an index, a format spec, an
unknown name) is refused when the policy loads, so a template can never reach into Byline's
objects.

Where each platform puts it:

- Mastodon: a profile metadata field. The text before the template's first ``": "`` is the
  field's name, the rest its value (``Written by: its owner …`` is the field "Written by").
- Bluesky and X: one line of the profile description, the whole text.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import regex

DEFAULT_TEMPLATE = "Written by: {voice} · {url}"
"""What an account's byline says unless its policy says otherwise."""

PLACES = frozenset({"voice", "url", "account"})

MASTODON_FIELD_CHARACTERS = 255
"""A profile field's name and value, each, on a stock Mastodon instance."""
BLUESKY_DESCRIPTION_GRAPHEMES = 256
"""The ``app.bsky.actor.profile`` lexicon's ``description`` (maxGraphemes; 2560 bytes)."""
BLUESKY_DESCRIPTION_BYTES = 2560
X_DESCRIPTION_CHARACTERS = 160
"""X's profile description (``POST /1.1/account/update_profile``)."""

URL_ROOM = 64
"""How long a public page's address the load-time check makes room for (Byline's public URL
with ``/@account``): the real address is checked again when the line is set."""


def graphemes(text: str) -> int:
    """Length in grapheme clusters, as Bluesky counts a description."""
    return len(regex.findall(r"\X", text))


def check_template(template: str) -> None:
    """Refuse a template with anything in braces but the known places."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"the template does not read as text with {{places}}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACES or spec or conversion:
            known = ", ".join(f"{{{p}}}" for p in sorted(PLACES))
            raise ValueError(f"the template may only use {known}, not {{{name}}}")
    if "\n" in template or "\r" in template:
        raise ValueError("the template is one line: it may not hold a line break")


def voice(summary: Mapping[str, Any]) -> str:
    """Who writes for the account and who approves, in words, from a policy's summary."""
    owner = summary.get("owner")
    writers = set(_names(summary.get("writers")))
    approvers = set(_names(summary.get("approvers")))
    if writers == {owner}:
        who = "its owner"
    elif owner in writers:
        who = "its owner and a team"
    else:
        who = "a team"
    if summary.get("tier") == "co-signed" and approvers:
        if approvers == {owner}:
            who += ", approved by the owner"
        elif owner in approvers:
            who += ", approved by the owner or a co-signer"
        else:
            who += ", approved by a co-signer"
    elif summary.get("tier") == "managed":
        who += ", for its owner"
    return who


def _names(value: Any) -> Sequence[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def public_page(public_url: str, account: str) -> str:
    """The account's public page on Byline."""
    return f"{public_url.rstrip('/')}/@{account}"


def render(template: str, *, summary: Mapping[str, Any], account: str, public_url: str) -> str:
    """The byline's text for a policy (its summary) and Byline's public address."""
    return template.format(voice=voice(summary), url=public_page(public_url, account), account=account)


@dataclass(frozen=True, slots=True)
class MastodonField:
    """A byline as a Mastodon profile field."""

    name: str
    value: str


def mastodon_field(text: str) -> MastodonField:
    """The field a byline's text makes: its name before the first ``": "``, its value after."""
    name, sep, value = text.partition(": ")
    if not sep:
        return MastodonField(name="Byline", value=text)
    return MastodonField(name=name.strip(), value=value.strip())


def too_long(platform: str, text: str) -> str | None:
    """Why the byline's text does not fit the platform's profile, or None when it fits."""
    if platform == "mastodon":
        field = mastodon_field(text)
        for part, what in ((field.name, "name"), (field.value, "value")):
            if len(part) > MASTODON_FIELD_CHARACTERS:
                return (f"the Mastodon field's {what} would be {len(part)} characters; "
                        f"Mastodon takes at most {MASTODON_FIELD_CHARACTERS}")
        if not field.name:
            return "the Mastodon field would have no name (the text before the first ': ')"
    elif platform == "bluesky":
        if graphemes(text) > BLUESKY_DESCRIPTION_GRAPHEMES or len(text.encode()) > BLUESKY_DESCRIPTION_BYTES:
            return (f"the line would be {graphemes(text)} characters; a Bluesky description takes at most "
                    f"{BLUESKY_DESCRIPTION_GRAPHEMES}")
    elif platform == "x" and len(text) > X_DESCRIPTION_CHARACTERS:
        return f"the line would be {len(text)} characters; an X description takes at most {X_DESCRIPTION_CHARACTERS}"
    return None


def check_fits(platform: str, template: str, *, summary: Mapping[str, Any], account: str) -> None:
    """Refuse a template whose text cannot fit the platform, leaving ``URL_ROOM`` for the address."""
    url = "https://" + "x" * max(0, URL_ROOM - len(account) - len("https:///@"))
    problem = too_long(platform, render(template, summary=summary, account=account, public_url=url))
    if problem is not None:
        raise ValueError(f"{problem} (counting a public address of {URL_ROOM} characters)")
