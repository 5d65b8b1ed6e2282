"""A post's text as Bluesky reads it: its length in graphemes and bytes, and its rich-text facets.

Bluesky limits a post to 300 graphemes and 3000 UTF-8 bytes. The PDS counts graphemes with
``Intl.Segmenter`` (``@atproto/lex-data``'s ``graphemeLen``), which is ICU's character break
iterator; :func:`grapheme_count` asks the same iterator through PyICU. The ``regex`` library's
``\\X`` is a different implementation and disagrees with ICU on Indic virama sequences: it
joins ``১্য`` (a Bengali digit, a virama, a consonant) into one cluster where ICU and the PDS
see two (GB9c joins only a consonant to a consonant), so a text of such sequences could pass
a ``\\X`` count and still be refused by the PDS (over 30,000 random mixes of hard characters,
``\\X`` counted fewer than the PDS on 991 and never more). PyICU uses the system's ICU (72,
Unicode 15.0, on Debian 12) where the PDS's Node has a newer one: some sequences only a newer
Unicode joins (a virama between consonants of two scripts, the Linkers of Unicode 16 such as
Balinese adeg adeg) count as more than one here. On those 30,000 mixes ICU 72 counted more on
30 and never fewer, so a text near the limit may be refused up front, but none is sent only to
be refused (``tests/adapters/test_bluesky_text.py`` checks both against the PDS's own code).

Facet offsets are UTF-8 byte offsets; links are ``http(s)://`` URLs and mentions are
``@handle`` (resolved to a DID by the client; one that does not resolve stays plain text).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import icu

from adapters.base import ascii_grapheme_count

MAX_GRAPHEMES: Final = 300
MAX_TEXT_BYTES: Final = 3000

_ROOT: Final = icu.Locale.getRoot()


def grapheme_count(text: str) -> int:
    """User-perceived characters in ``text``, as Bluesky counts them (UAX #29 clusters, by ICU)."""
    if text.isascii():
        return ascii_grapheme_count(text)
    # A break iterator holds the text it walks: one per call, so no two callers share one.
    breaks = icu.BreakIterator.createCharacterInstance(_ROOT)
    breaks.setText(text)
    # Iterating yields every boundary after the start: one per cluster.
    return sum(1 for _ in breaks)


def utf8_length(text: str) -> int:
    """``text``'s size in UTF-8, which Bluesky's byte limit counts."""
    return len(text.encode("utf-8"))


_LINK_RE: Final = re.compile(r"(?<![^\s(])https?://[^\s]+", re.IGNORECASE)
_MENTION_RE: Final = re.compile(r"(?<![^\s(])@([a-zA-Z0-9][a-zA-Z0-9.-]*[a-zA-Z0-9])")
_HANDLE_RE: Final = re.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_TRAILING_PUNCTUATION: Final = ".,;:!?\"'"


@dataclass(frozen=True)
class Span:
    """A piece of the text: code point offsets, and the URL or handle it stands for."""

    start: int
    end: int
    value: str


def find_links(text: str) -> list[Span]:
    """The ``http(s)://`` URLs in ``text``, without trailing punctuation."""
    spans = []
    for match in _LINK_RE.finditer(text):
        url = match.group(0)
        # Punctuation ending a sentence, and a ")" closing a parenthesis the URL did not
        # open, belong to the text around the link.
        while url and (
            url[-1] in _TRAILING_PUNCTUATION or (url[-1] == ")" and url.count("(") < url.count(")"))
        ):
            url = url[:-1]
        if urlsplit(url).hostname:
            spans.append(Span(match.start(), match.start() + len(url), url))
    return spans


def find_mentions(text: str) -> list[Span]:
    """The ``@handle`` mentions in ``text`` (the span includes the ``@``; value is the handle)."""
    spans = []
    for match in _MENTION_RE.finditer(text):
        handle = match.group(1)
        if _HANDLE_RE.match(handle):
            spans.append(Span(match.start(), match.end(), handle.lower()))
    return spans


def byte_index(text: str, span: Span) -> dict[str, int]:
    """A facet's ``index``: the span's offsets in UTF-8 bytes, not code points."""
    start = utf8_length(text[: span.start])
    return {"byteStart": start, "byteEnd": start + utf8_length(text[span.start : span.end])}


def link_facets(text: str) -> list[dict[str, Any]]:
    """The rich-text facets of the links in ``text`` (no lookups needed), in text order."""
    return [
        {"index": byte_index(text, span),
         "features": [{"$type": "app.bsky.richtext.facet#link", "uri": span.value}]}
        for span in find_links(text)
    ]


def mention_facet(text: str, span: Span, did: str) -> dict[str, Any]:
    """The rich-text facet of one mention, its handle resolved to ``did``."""
    return {
        "index": byte_index(text, span),
        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}],
    }


def fitting_facets(kept: Mapping[str, Any] | None, text: str) -> list[dict[str, Any]] | None:
    """A client's facets (as ``gateway.services.xrpc_facets.kept_facets`` keeps them), if
    ``text`` still begins with the bytes they were made for; else None."""
    if not kept:
        return None
    raw = text.encode("utf-8")
    size = kept.get("bytes")
    if type(size) is not int or size > len(raw) or hashlib.sha256(raw[:size]).hexdigest() != kept.get("sha256"):
        return None
    facets = kept.get("facets")
    return [dict(f) for f in facets] if isinstance(facets, list) else None


def in_text_order(facets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``facets`` sorted by where they start (links and mentions are found apart)."""
    return sorted(facets, key=lambda facet: int(facet["index"]["byteStart"]))
