"""Embeds of posts written through the XRPC surface: checked against their lexicons, then
written to the PDS exactly as the client built them.

Byline publishes ``app.bsky.embed.images`` (at most 4 images, each with its alt text and an
optional aspect ratio), ``app.bsky.embed.external`` (a link card, with an optional thumbnail),
``app.bsky.embed.record`` (a quote) and ``app.bsky.embed.recordWithMedia`` (a quote with
images or a link card). Videos (``app.bsky.embed.video``, alone or in ``recordWithMedia``)
are refused: Byline does not keep blobs that large.

Blobs
-----
``uploadBlob`` is relayed to the account's PDS, whose answer (its CID and the MIME type it
found) the client gets unchanged; Byline also keeps a copy of each blob an embed may show
(at most ``MAX_BLOB_BYTES``) in its media table. A PDS drops a blob no record refers to after
a while, and a post may wait for approval or a delay far longer: so when the post goes out,
the Bluesky adapter uploads each blob again from Byline's copy, checks that the PDS gives it
the same CID, and then writes the record. A blob an embed names must have been uploaded
through Byline, by the same person for the same account, and not be another post's already;
the post takes it in the transaction that stores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

import libipld
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.bluesky import MAX_IMAGE_BYTES, blob_digest, valid_at_uri

IMAGES: Final = "app.bsky.embed.images"
EXTERNAL: Final = "app.bsky.embed.external"
RECORD: Final = "app.bsky.embed.record"
RECORD_WITH_MEDIA: Final = "app.bsky.embed.recordWithMedia"
VIDEO: Final = "app.bsky.embed.video"
PUBLISHED_EMBEDS: Final = (IMAGES, EXTERNAL, RECORD, RECORD_WITH_MEDIA)

MAX_BLOB_BYTES: Final = MAX_IMAGE_BYTES
"""The largest blob any embed Byline publishes may show: the lexicons' limit for an image and
for a link card's thumbnail (1,000,000 bytes)."""

_VIDEO_REFUSED: Final = (
    "Byline does not publish video embeds (app.bsky.embed.video); post images, a link card or a quote"
)


class EmbedError(ValueError):
    """An embed that its lexicon, or Byline, does not allow; the message says where and why."""


class _Lex(BaseModel):
    # Lexicon objects are open: fields Byline does not know are kept (the embed is written as given).
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, strict=True)


class _Link(_Lex):
    link: str = Field(alias="$link", max_length=256)


class _Blob(_Lex):
    type_: Literal["blob"] = Field(alias="$type")
    ref: _Link
    mime_type: str = Field(alias="mimeType", max_length=256)
    size: int = Field(ge=0)


class _AspectRatio(_Lex):
    width: int = Field(ge=1)
    height: int = Field(ge=1)


class _Image(_Lex):
    image: _Blob
    alt: str
    aspect_ratio: _AspectRatio | None = Field(default=None, alias="aspectRatio")


class _Images(_Lex):
    type_: str | None = Field(default=None, alias="$type")
    images: list[_Image] = Field(max_length=4)


class _External(_Lex):
    uri: str = Field(max_length=8192)
    title: str
    description: str
    thumb: _Blob | None = None


class _ExternalEmbed(_Lex):
    type_: str | None = Field(default=None, alias="$type")
    external: _External


class _StrongRef(_Lex):
    uri: str = Field(max_length=8192)
    cid: str = Field(max_length=256)


class _RecordEmbed(_Lex):
    type_: str | None = Field(default=None, alias="$type")
    record: _StrongRef


class _RecordWithMedia(_Lex):
    type_: str | None = Field(default=None, alias="$type")
    record: _RecordEmbed
    media: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobRef:
    """One blob an embed shows: its CID, the SHA-256 (hex) the CID names, its type and size."""

    cid: str
    digest: str
    mime_type: str
    size: int


_M = TypeVar("_M", bound=_Lex)


def _summary(exc: ValidationError, where: str) -> str:
    return "; ".join(
        f"{'/'.join([where, *(str(p) for p in err['loc'])])}: {err['msg']}" for err in exc.errors()
    )


def _model(model: type[_M], value: Any, where: str) -> _M:
    if not isinstance(value, dict):
        raise EmbedError(f"{where} must be an object")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise EmbedError(_summary(exc, where)) from None


def _image_blob(blob: _Blob, where: str) -> BlobRef:
    """An image blob as its lexicon allows it: ``accept: image/*``, ``maxSize: 1000000``."""
    digest = blob_digest(blob.ref.link)
    if digest is None:
        raise EmbedError(f"{where}/ref: {blob.ref.link!r} is not the CID of a blob (CIDv1, raw, SHA-256)")
    if not blob.mime_type.startswith("image/"):
        raise EmbedError(f"{where}: the lexicon accepts images (image/*) here, not {blob.mime_type}")
    if blob.size > MAX_BLOB_BYTES:
        raise EmbedError(
            f"{where}: the blob is {blob.size} bytes; the lexicon allows at most {MAX_BLOB_BYTES}"
        )
    return BlobRef(cid=blob.ref.link, digest=digest, mime_type=blob.mime_type, size=blob.size)


def _at_uri(uri: str, where: str) -> None:
    parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
    # The PDS refuses the whole commit for an address it does not read as an AT-URI: the post
    # would be approved and then never go out.
    if len(parts) != 3 or not all(parts) or not valid_at_uri(uri):
        raise EmbedError(f"{where}: {uri!r} is not an at://<repo>/<collection>/<rkey> address")


def _record_cid(cid: str, where: str) -> None:
    try:
        libipld.decode_cid(cid)
    except ValueError:
        raise EmbedError(f"{where}: {cid!r} is not a CID") from None


def _check(value: Any, where: str, *, nested: bool) -> list[BlobRef]:
    if not isinstance(value, dict):
        raise EmbedError(f"{where} must be an object")
    kind = value.get("$type")
    if kind == VIDEO:
        raise EmbedError(_VIDEO_REFUSED)
    if kind == IMAGES:
        images = _model(_Images, value, where)
        return [_image_blob(image.image, f"{where}/images/{n}/image") for n, image in enumerate(images.images)]
    if kind == EXTERNAL:
        card = _model(_ExternalEmbed, value, where).external
        if not card.uri.startswith(("https://", "http://")):
            raise EmbedError(f"{where}/external/uri: {card.uri!r} is not an http(s) URI")
        return [] if card.thumb is None else [_image_blob(card.thumb, f"{where}/external/thumb")]
    if kind == RECORD and not nested:
        quote = _model(_RecordEmbed, value, where).record
        _at_uri(quote.uri, f"{where}/record/uri")
        _record_cid(quote.cid, f"{where}/record/cid")
        return []
    if kind == RECORD_WITH_MEDIA and not nested:
        both = _model(_RecordWithMedia, value, where)
        if both.record.type_ not in (None, RECORD):
            raise EmbedError(f"{where}/record/$type must be {RECORD}")
        _at_uri(both.record.record.uri, f"{where}/record/record/uri")
        _record_cid(both.record.record.cid, f"{where}/record/record/cid")
        return _check(both.media, f"{where}/media", nested=True)
    allowed = (IMAGES, EXTERNAL) if nested else PUBLISHED_EMBEDS
    raise EmbedError(f"{where}/$type must be one of {', '.join(allowed)}, not {kind!r}")


def check_embed(embed: Mapping[str, Any]) -> tuple[BlobRef, ...]:
    """The blobs a post's embed shows, once it is one its lexicon allows and Byline publishes;
    ``EmbedError`` otherwise."""
    return tuple(_check(dict(embed), "embed", nested=False))
