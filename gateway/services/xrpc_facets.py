"""The rich-text facets a Bluesky client built for its post (links with their own text,
mentions, hashtags), checked as the ``app.bsky.richtext.facet`` lexicon says and kept with the
post, so that the record reaching the PDS carries the client's facets, not ones Byline guessed.

Facets point into the text by UTF-8 byte offsets. They are kept with the SHA-256 and length of
the bytes they were made for; when the post goes out, the adapter writes them only if the text
still begins with those bytes (a disclosure line is added after the client's words, so it does
not move them). Once someone edits the words, the client's facets no longer fit and Byline finds
the links and mentions of the new words itself (``adapters.bluesky.text``).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from gateway.policy.text import grapheme_length

MAX_FACETS: Final = 1000
"""More than any post of 300 graphemes can carry; a bound on what is checked."""
MAX_TAG_BYTES: Final = 640
MAX_TAG_GRAPHEMES: Final = 64
MENTION: Final = "app.bsky.richtext.facet#mention"
LINK: Final = "app.bsky.richtext.facet#link"
TAG: Final = "app.bsky.richtext.facet#tag"


class FacetError(ValueError):
    """A facet the lexicon refuses; the message names where (``facets/2/index``) and why."""


def _offset(index: dict[str, Any], key: str, where: str) -> int:
    value = index.get(key)
    if type(value) is not int or value < 0:
        raise FacetError(f"{where}/index/{key} must be an integer of at least 0")
    return value


def _feature(feature: Any, where: str) -> None:
    if not isinstance(feature, dict) or not isinstance(feature.get("$type"), str):
        raise FacetError(f"{where} must be an object with a $type")
    kind = feature["$type"]
    if kind == MENTION:
        did = feature.get("did")
        if not isinstance(did, str) or not did.startswith("did:") or len(did) > 2048:
            raise FacetError(f"{where}/did must be a DID")
    elif kind == LINK:
        uri = feature.get("uri")
        if not isinstance(uri, str) or ":" not in uri or len(uri) > 8192:
            raise FacetError(f"{where}/uri must be a URI")
    elif kind == TAG:
        tag = feature.get("tag")
        if not isinstance(tag, str) or not tag or len(tag.encode("utf-8")) > MAX_TAG_BYTES \
                or grapheme_length(tag) > MAX_TAG_GRAPHEMES:
            raise FacetError(f"{where}/tag must be 1 to {MAX_TAG_GRAPHEMES} graphemes ({MAX_TAG_BYTES} bytes)")
    # Other features: the union is open, so a feature of a type this gateway does not know goes
    # out as the client built it, as a PDS would store it.


def check_facets(value: Any, text: str) -> list[dict[str, Any]]:
    """The facets as given, once each is checked against the lexicon and the text's bytes."""
    if not isinstance(value, list) or len(value) > MAX_FACETS:
        raise FacetError(f"facets must be an array of at most {MAX_FACETS}")
    size = len(text.encode("utf-8"))
    for n, facet in enumerate(value):
        where = f"facets/{n}"
        if not isinstance(facet, dict) or not isinstance(facet.get("index"), dict):
            raise FacetError(f"{where}/index must be an object")
        start, end = _offset(facet["index"], "byteStart", where), _offset(facet["index"], "byteEnd", where)
        if start > end or end > size:
            raise FacetError(f"{where}/index must span bytes of the text (it has {size})")
        features = facet.get("features")
        if not isinstance(features, list):
            raise FacetError(f"{where}/features must be an array")
        for m, feature in enumerate(features):
            _feature(feature, f"{where}/features/{m}")
    return value


def kept_facets(facets: list[dict[str, Any]], text: str) -> dict[str, Any]:
    """The client's facets as a post keeps them: with the bytes they were made for."""
    raw = text.encode("utf-8")
    return {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw), "facets": facets}
