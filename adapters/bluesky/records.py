"""Post records, their keys and their embeds: pure functions, no I/O.

Record keys
-----------
The record key is the one a client chose for the post (``post.record_key``, a TID; a Bluesky
app names the posts of a thread so that each can reply to the one before), else derived from
``post.post_id`` alone (:func:`rkey_for`): either way every attempt to publish one post writes
to the same ``at://<did>/app.bsky.feed.post/<rkey>`` (:func:`record_key`). Post keys are
TIDs (lexicon ``"key": "tid"``), and the PDS checks the syntax: 13 characters of
base32-sortable, the first one of ``234567abcdefghij``. The 64-bit value encoded is built from
SHA-256 of the post id: 10 bits of "clock id" and a microsecond timestamp inside a fixed window
in 2023, so the key is valid, never claims a future time, and has 55 bits of hash (a collision
between two posts of one account is about 1 in 10^7 after 100,000 posts). The PDS also refuses
keys containing one family of slurs; a key that would match is re-derived with a counter.

Mapping of the post
-------------------
* ``text`` → ``text`` (at most 300 graphemes and 3000 UTF-8 bytes, checked before any call),
  with rich-text facets for ``http(s)://`` links and ``@handle`` mentions (see ``text``).
* ``language`` → ``langs: [language]``.
* ``reply_to`` (an ``at://`` URI) → ``reply`` with the parent's URI and CID and the thread
  root (the parent's own root when the parent is itself a reply).
* ``media`` → uploaded with ``com.atproto.repo.uploadBlob`` and embedded as
  ``app.bsky.embed.images`` (images only, at most 4, each at most 1,000,000 bytes, the
  description as alt text).
* ``embed`` (a client's own ``app.bsky.embed.*``, through Byline's XRPC surface) → written
  as given; ``media`` then holds the blobs it refers to, each uploaded again just before the
  record is written, so that the PDS has them however long the post waited.
* ``self_labels`` (a client's own, through Byline's XRPC surface) → ``labels`` as given, in
  place of the label below.
* Content warnings: Bluesky has no spoiler text and no self-label that hides a post's text
  (``!warn`` is ignored by the app when the author sets it). So ``spoiler_text`` is kept where
  readers see it first: the text becomes ``"CW: <spoiler_text>\\n\\n<text>"`` (and counts
  towards the limit). When the post has media and either ``sensitive`` or ``spoiler_text``,
  the post gets the self-label ``graphic-media``: the app blurs its images behind a warning
  (the default setting) as Mastodon does with sensitive media. ``graphic-media`` is the
  neutral choice; we do not know whether the content is sexual. Text-only posts get no label:
  a label would claim something about media the post does not have.
* ``visibility``: every Bluesky post is public. ``None``, ``public`` and ``unlisted`` are
  published; any other value (``private``, ``direct``) is refused rather than made public.
* ``idempotency_key`` is not sent: the record key already plays its part.
* ``created_at`` → ``createdAt`` when it is within five minutes of the time of publishing;
  otherwise (and when it is absent) ``createdAt`` is the time of publishing. The app sorts
  timelines by the earlier of ``createdAt`` and the time it saw the post, so a post that
  waited for approval must not claim the time it was written, or it would be buried below
  everything posted meanwhile.

Records and CIDs
----------------
:func:`post_record` builds the record from its parts and :func:`record_cid` gives the CID the
PDS will give that record. A post published within five minutes of its ``created_at``, with
its text unchanged, gets exactly the CID its preview had.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import libipld

from adapters.base import AdapterError, Carries, OutboundPost
from adapters.bluesky.text import MAX_GRAPHEMES, MAX_TEXT_BYTES, grapheme_count, utf8_length

POST_COLLECTION: Final = "app.bsky.feed.post"
GATE_COLLECTIONS: Final = ("app.bsky.feed.threadgate", "app.bsky.feed.postgate")
"""The records that say who may reply to a post and who may quote it: each under the post's own
record key, as their lexicons ask."""
MAX_IMAGES: Final = 4
MAX_IMAGE_BYTES: Final = 1_000_000
SENSITIVE_MEDIA_LABEL: Final = "graphic-media"
CARRIES: Final = Carries(name="Bluesky", public_only=True, focal_points=False, gates=True)
"""Every post is public; a content warning goes out in front of the text."""
CREATED_AT_MAX_AGE_SECONDS: Final = 300.0


# ---- record keys -----------------------------------------------------------------------------

_TID_ALPHABET: Final = "234567abcdefghijklmnopqrstuvwxyz"
_TID_RE: Final = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_RKEY_EPOCH_US: Final = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z
_RKEY_WINDOW_BITS: Final = 45  # 2**45 µs ≈ 1.1 years
# The one family of the PDS's record-key slur patterns that base32-sortable characters can
# spell inside a key; the others are anchored at word boundaries, so the whole 13-character
# key would have to be the word, which a hash does not produce.
_RKEY_REFUSED: Final = re.compile(r"n[il1oa4][gq]{2}")


def rkey_for(post_id: str) -> str:
    """The TID record key that every attempt to publish ``post_id`` uses."""
    for attempt in range(1000):
        seed = f"byline/bluesky/rkey/v1\x00{post_id}\x00{attempt}".encode()
        bits = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")
        micros = _RKEY_EPOCH_US + (bits >> (64 - _RKEY_WINDOW_BITS))
        value = (micros << 10) | (bits & 0x3FF)
        rkey = "".join(_TID_ALPHABET[(value >> (5 * i)) & 31] for i in range(12, -1, -1))
        if not _RKEY_REFUSED.search(rkey):
            return rkey
    raise AssertionError("unreachable: no acceptable record key")  # pragma: no cover


def record_key(post: OutboundPost) -> str:
    """The key ``post`` is written under: the one its client chose, else ``rkey_for`` its id."""
    return post.record_key or rkey_for(post.post_id)


def is_tid(value: str) -> bool:
    """Whether ``value`` has the syntax of a TID (what the PDS demands of post keys)."""
    return bool(_TID_RE.match(value))


def may_be_derived(rkey: str) -> bool:
    """Whether ``rkey`` could be one :func:`rkey_for` derives: a TID whose time is in its window
    (2023). A key a client makes now is not, so it need not be searched for among posts' ids."""
    if not is_tid(rkey):
        return False
    value = 0
    for char in rkey:
        value = (value << 5) | _TID_ALPHABET.index(char)
    micros = value >> 10
    return _RKEY_EPOCH_US <= micros < _RKEY_EPOCH_US + (1 << _RKEY_WINDOW_BITS)


def key_refused(value: str) -> bool:
    """Whether the PDS refuses ``value`` as a record key for the words it spells."""
    return bool(_RKEY_REFUSED.search(value))


# The AT-URI syntax the PDS checks a record's ``format: at-uri`` strings against (the reference
# implementation's ``ensureValidAtUriRegex``, @atproto/syntax): an authority that is a handle or
# a DID, then optionally a collection (an NSID) and a record key, at most 8 KiB in all.
_AT_URI_RE: Final = re.compile(
    r"at://(?P<authority>[a-zA-Z0-9._:%-]+)"
    r"(/(?P<collection>[a-zA-Z0-9.-]+)(/[a-zA-Z0-9._~:@!$&%')(*+,;=-]+)?)?"
    r"(#/[a-zA-Z0-9._~:@!$&%')(*+,;=\-\[\]/\\]*)?"
)
_AT_HANDLE_RE: Final = re.compile(
    r"([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
)
_AT_DID_RE: Final = re.compile(r"did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]")
_AT_NSID_RE: Final = re.compile(
    r"[a-zA-Z]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,62}[a-zA-Z0-9])?)+"
    r"(\.[a-zA-Z]([a-zA-Z0-9]{0,62})?)"
)


def valid_handle(value: str) -> bool:
    """Whether ``value`` is a handle by the syntax the PDS checks (a domain name of at most 253
    characters), and not one of the names a PDS gives where it cannot vouch for one
    (``handle.invalid``: the reserved ``.invalid`` top-level domain)."""
    return len(value) <= 253 and _AT_HANDLE_RE.fullmatch(value) is not None and \
        not value.lower().endswith(".invalid")


def valid_at_uri(uri: str) -> bool:
    """Whether ``uri`` is an AT-URI as the PDS reads ``format: at-uri`` in a record: a string
    it refuses there makes it refuse the whole commit, so a post carrying one would never go out.
    Matched whole (``fullmatch``: ``$`` would let a final newline through)."""
    if len(uri) > 8 * 1024:
        return False
    found = _AT_URI_RE.fullmatch(uri)
    if found is None:
        return False
    authority, collection = found.group("authority"), found.group("collection")
    if not ((len(authority) <= 253 and _AT_HANDLE_RE.fullmatch(authority))
            or (len(authority) <= 2048 and _AT_DID_RE.fullmatch(authority))):
        return False
    return collection is None or (len(collection) <= 317 and _AT_NSID_RE.fullmatch(collection) is not None)


@dataclass(frozen=True)
class AtUri:
    """An ``at://<repo>/<collection>/<rkey>`` record address."""

    repo: str
    collection: str
    rkey: str

    @classmethod
    def parse(cls, uri: str) -> AtUri:
        """``uri``'s parts; a final ``AdapterError`` when it is not a record's address."""
        parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
        if len(parts) != 3 or not all(parts):
            raise AdapterError(
                f"bluesky: {uri!r} is not an at://<repo>/<collection>/<rkey> URI",
                retryable=False,
            )
        return cls(parts[0], parts[1], parts[2])


# ---- times -----------------------------------------------------------------------------------


def iso_datetime(moment: datetime) -> str:
    """``moment`` as Bluesky writes times: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_datetime(value: str) -> datetime | None:
    """An RFC 3339 time with a zone (``Z`` or an offset), or ``None``."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def created_at_for(post: OutboundPost, now: datetime) -> str:
    """The ``createdAt`` of ``post`` published at ``now`` (see "Mapping of the post")."""
    if post.created_at:
        given = parse_datetime(post.created_at)
        if given is not None and abs((now - given).total_seconds()) <= CREATED_AT_MAX_AGE_SECONDS:
            return post.created_at
    return iso_datetime(now)


# ---- the post --------------------------------------------------------------------------------


def post_text(post: OutboundPost) -> str:
    """The text the record carries: a content warning goes in front, where readers see it first."""
    if post.spoiler_text:
        return f"CW: {post.spoiler_text}\n\n{post.text}"
    return post.text


def check_publishable(post: OutboundPost, text: str) -> None:
    """Refuse, with a final ``AdapterError``, a post Bluesky would refuse or could not keep as
    meant: not public, too long, too many attachments, not images, images too large."""
    if not CARRIES.keeps_visibility(post.visibility):
        raise AdapterError(
            f"bluesky: every {CARRIES.name} post is public; refusing a post meant to be "
            f"{post.visibility!r}",
            retryable=False,
        )
    graphemes = grapheme_count(text)
    if graphemes > MAX_GRAPHEMES:
        raise AdapterError(
            f"bluesky: the text is {graphemes} characters long; Bluesky allows at most "
            f"{MAX_GRAPHEMES}",
            retryable=False,
        )
    size = utf8_length(text)
    if size > MAX_TEXT_BYTES:
        raise AdapterError(
            f"bluesky: the text is {size} bytes in UTF-8; Bluesky allows at most "
            f"{MAX_TEXT_BYTES}",
            retryable=False,
        )
    if len(post.media) > MAX_IMAGES:
        raise AdapterError(
            f"bluesky: {len(post.media)} attachments; Bluesky allows at most {MAX_IMAGES}",
            retryable=False,
        )
    for item in post.media:
        if not item.mime_type.startswith("image/"):
            raise AdapterError(
                f"bluesky: only images can be attached, not {item.mime_type}",
                retryable=False,
            )
        if len(item.data) > MAX_IMAGE_BYTES:
            raise AdapterError(
                f"bluesky: an image of {len(item.data)} bytes is larger than the "
                f"{MAX_IMAGE_BYTES} bytes Bluesky accepts",
                retryable=False,
            )


def post_record(
    *,
    text: str,
    created_at: str,
    language: str | None = None,
    facets: list[dict[str, Any]] | None = None,
    reply: dict[str, Any] | None = None,
    embed: Mapping[str, Any] | None = None,
    labels: dict[str, Any] | None = None,
    byline: str | None = None,
) -> dict[str, Any]:
    """An ``app.bsky.feed.post`` record from its parts; ``embed`` is written as given.

    ``byline`` is the post's public record on Byline: an extra field of the record (records
    are open objects, so apps ignore it and it costs the text nothing), for anyone who reads
    the record to go from the post to its byline and proof."""
    record: dict[str, Any] = {"$type": POST_COLLECTION, "text": text, "createdAt": created_at}
    if facets:
        record["facets"] = facets
    if language:
        record["langs"] = [language]
    if reply:
        record["reply"] = reply
    if embed is not None:
        record["embed"] = dict(embed)
    if labels:
        record["labels"] = labels
    if byline:
        record["byline"] = byline
    return record


def _ipld(value: Any) -> Any:
    """A record's JSON form in the data model DAG-CBOR encodes: ``{"$link": cid}`` is a link
    (libipld writes bytes that hold a CID as one) and ``{"$bytes": base64}`` is bytes."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$link"), str):
            return libipld.decode_multibase(value["$link"])[1]
        if len(value) == 1 and isinstance(value.get("$bytes"), str):
            return base64.b64decode(value["$bytes"] + "=" * (-len(value["$bytes"]) % 4))
        return {key: _ipld(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_ipld(item) for item in value]
    return value


def record_cid(record: Mapping[str, Any]) -> str:
    """The CID a PDS gives ``record`` (its JSON form): CIDv1, DAG-CBOR, SHA-256."""
    digest = hashlib.sha256(libipld.encode_dag_cbor(_ipld(dict(record)))).digest()
    return libipld.encode_cid(bytes((0x01, 0x71, 0x12, 0x20)) + digest)


def blob_cid(data: bytes) -> str:
    """The CID a PDS gives a blob of these bytes: CIDv1, raw, SHA-256."""
    return libipld.encode_cid(bytes((0x01, 0x55, 0x12, 0x20)) + hashlib.sha256(data).digest())


def blob_digest(cid: str) -> str | None:
    """The SHA-256 (hex) a blob's CID names, or ``None`` when it is not a raw SHA-256 CIDv1."""
    try:
        parts = libipld.decode_cid(cid)
    except ValueError:
        return None
    if (parts["version"], parts["codec"], parts["hash"]["code"], parts["hash"]["size"]) != (1, 0x55, 0x12, 32):
        return None
    return bytes(parts["hash"]["digest"]).hex()


def embed_blob_cids(embed: Mapping[str, Any]) -> list[str]:
    """The CIDs of the blobs an embed refers to (``{"$type": "blob", "ref": {"$link": …}}``), in order."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            ref = value.get("ref")
            if value.get("$type") == "blob" and isinstance(ref, dict) and isinstance(ref.get("$link"), str):
                found.append(ref["$link"])
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(embed)
    return found


def quoted_ref(embed: Mapping[str, Any]) -> tuple[str, str] | None:
    """The record a post's embed quotes (``app.bsky.embed.record``, alone or in
    ``recordWithMedia``): its uri and cid as the embed names them; None for no quote."""
    ref = embed.get("record")
    if embed.get("$type") == "app.bsky.embed.recordWithMedia":
        ref = ref.get("record") if isinstance(ref, Mapping) else None
    elif embed.get("$type") != "app.bsky.embed.record":
        return None
    if not isinstance(ref, Mapping) or not isinstance(ref.get("uri"), str) or not isinstance(ref.get("cid"), str):
        return None
    return ref["uri"], ref["cid"]


def with_quoted_cid(embed: Mapping[str, Any], cid: str) -> dict[str, Any]:
    """``embed`` (a quote, as :func:`quoted_ref` reads one) quoting the same record by ``cid``."""
    if embed.get("$type") == "app.bsky.embed.recordWithMedia":
        return {**embed, "record": with_quoted_cid(embed["record"], cid)}
    return {**embed, "record": {**embed["record"], "cid": cid}}


def reply_ref(parent: dict[str, Any], parent_uri: str) -> dict[str, Any]:
    """The ``reply`` of a post answering ``parent`` (``getRecord``'s answer for it): the parent,
    and the thread's root, which is the parent's own root when the parent is itself a reply."""
    parent_ref = {"uri": str(parent.get("uri", "")), "cid": str(parent.get("cid", ""))}
    if not parent_ref["uri"] or not parent_ref["cid"]:
        raise AdapterError(f"bluesky: the PDS gave no uri/cid for {parent_uri}", retryable=True)
    value = parent.get("value")
    reply = value.get("reply") if isinstance(value, dict) else None
    root = reply.get("root") if isinstance(reply, dict) else None
    if isinstance(root, dict) and isinstance(root.get("uri"), str) and root.get("cid"):
        root_ref = {"uri": root["uri"], "cid": str(root["cid"])}
    else:
        root_ref = parent_ref
    return {"root": root_ref, "parent": parent_ref}


def images_embed(images: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The ``app.bsky.embed.images`` of uploaded images: (alt text, blob) each."""
    return {
        "$type": "app.bsky.embed.images",
        "images": [{"alt": alt, "image": blob} for alt, blob in images],
    }


def sensitive_media_labels() -> dict[str, Any]:
    """The self-labels that make the app blur a post's images (see "Mapping of the post")."""
    return {
        "$type": "com.atproto.label.defs#selfLabels",
        "values": [{"val": SENSITIVE_MEDIA_LABEL}],
    }
