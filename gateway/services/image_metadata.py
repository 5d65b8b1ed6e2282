"""What an uploaded picture says about the person who took it, taken out before Byline keeps or
sends it.

A phone photo carries where it was taken (EXIF GPS), the device's make and serial, the owner's
name, editing history (XMP), captions and bylines (IPTC), and often a thumbnail of the picture
before it was cropped. Mastodon re-encodes pictures, but a Bluesky PDS keeps a blob as sent and
serves it to anyone (``com.atproto.sync.getBlob``), so Byline strips uploads itself.

Stripping walks the container's segments or chunks and drops the ones that carry metadata; it
never decodes or re-encodes, so the picture's own bytes (JPEG scans, PNG ``IDAT``, WebP ``VP8``
frames, GIF image blocks) go out unchanged. It keeps what changes how the picture looks: the ICC
colour profile, JPEG's Adobe colour-transform and JFIF segments (JFIF without its thumbnail),
PNG's colour and transparency chunks, and the EXIF orientation, as an EXIF block that holds
Orientation alone (a portrait photo stored sideways, as phones store them, must not turn). An
EXIF block too broken to read an orientation from is dropped whole: no viewer could read one
from it either, so the picture looks as it did. Bytes after the container's end (a JPEG's
trailing data, where phones append depth maps and their own metadata) are dropped too, and with
them the JPEG ``MPF`` index that points at them.

The result is never longer than what was uploaded. Bytes that claim an image type but do not
follow its container's structure are refused (``MalformedImage``): what is kept and hashed is
always exactly what goes out. A PNG chunk's CRC is not checked (a chunk kept goes on as it came,
and browsers draw such files). Other types (video, audio…) are returned unchanged: Mastodon
uploads take pictures only, and Bluesky video embeds are refused, so a video blob relayed to
the PDS is in no post Byline writes.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable
from typing import Final

__all__ = ["STRIPPED_TYPES", "MalformedImage", "displayed_size", "stripped"]


class MalformedImage(ValueError):
    """The bytes are of an image type by their signature, but not a well-formed one; the
    message says where, for the person who uploaded them."""


_ORIENTATION: Final = 0x0112
_EXIF_PREFIX: Final = b"Exif\x00\x00"


def _orientation(tiff: bytes) -> tuple[bytes, int] | None:
    """The byte order and Orientation (2-8) of an EXIF body's first IFD, or None when it has
    none, says 1 (as it is), or cannot be read."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    end = "<" if tiff[:2] == b"II" else ">"
    magic, offset = struct.unpack_from(end + "HI", tiff, 2)
    if magic != 42 or offset < 8 or offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack_from(end + "H", tiff, offset)
    # The IFD's entries and the next IFD's offset must all be there (so the block written
    # back, one entry long, is never longer than this one).
    if offset + 2 + 12 * count + 4 > len(tiff):
        return None
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag, kind, number = struct.unpack_from(end + "HHI", tiff, entry)
        if tag == _ORIENTATION:
            if kind != 3 or number != 1:  # SHORT, one value, as EXIF defines it
                return None
            (value,) = struct.unpack_from(end + "H", tiff, entry + 8)
            return (tiff[:2], value) if 2 <= value <= 8 else None
    return None


def _orientation_only(tiff: bytes) -> bytes | None:
    """An EXIF body holding only ``tiff``'s Orientation (26 bytes), or None when it has none."""
    found = _orientation(tiff)
    if found is None:
        return None
    order, value = found
    end = "<" if order == b"II" else ">"
    return order + struct.pack(end + "HIHHHIHHI", 42, 8, 1, _ORIENTATION, 3, 1, value, 0, 0)


# -- JPEG -------------------------------------------------------------------------------------

def _jpeg_segment(marker: int, body: bytes) -> bytes | None:
    """The body a JPEG marker segment goes out with, or None to drop it."""
    if marker == 0xE0:
        # JFIF: its density is kept, its thumbnail (an old copy of the picture) is not.
        return body[:12] + b"\x00\x00" if body.startswith(b"JFIF\x00") and len(body) >= 14 else None
    if marker == 0xE1:
        if not body.startswith(_EXIF_PREFIX):
            return None  # XMP, extended XMP, and the like
        exif = _orientation_only(body[len(_EXIF_PREFIX):])
        return None if exif is None else _EXIF_PREFIX + exif
    if marker == 0xE2:
        return body if body.startswith(b"ICC_PROFILE\x00") else None  # not MPF, FlashPix
    if marker == 0xEE:
        return body if body.startswith(b"Adobe") else None  # its colour transform decides the pixels
    if 0xE3 <= marker <= 0xEF or marker == 0xFE:
        return None  # other application segments (IPTC in APP13, C2PA in APP11…) and comments
    return body


_MAX_PARTS: Final = 65_535
"""More segments, chunks or blocks than a picture has (a progressive JPEG has a few dozen
scans, an animation some thousands of frames): beyond it, walking a flood of tiny empty ones
would hold the CPU for seconds an upload."""
_MAX_SUB_BLOCKS: Final = 262_144
"""GIF data sub-blocks in one file: 64 MiB of them at their usual 255 bytes."""
_FILL: Final = re.compile(rb"\xff*")
_SCAN_END: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""Where a scan's coded data ends: a marker, not a stuffed byte (FF00), a restart (RSTn) or fill."""


def _jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise MalformedImage("the JPEG does not begin with its start marker")
    out = [b"\xff\xd8"]
    size = len(data)
    at = 2
    exif_seen = False
    for _ in range(_MAX_PARTS):
        if at >= size or data[at] != 0xFF:
            raise MalformedImage(f"the JPEG has no marker at byte {at}" if at < size
                                 else "the JPEG ends before its end marker")
        fill = _FILL.match(data, at)  # fill bytes before a marker
        at = fill.end() if fill is not None else at
        if at >= size:
            raise MalformedImage("the JPEG ends before its end marker")
        marker = data[at]
        at += 1
        if marker == 0xD9:
            out.append(b"\xff\xd9")
            return b"".join(out)  # what follows the end marker is not the picture's
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out.append(bytes((0xFF, marker)))
            continue
        if marker in (0x00, 0xD8):
            raise MalformedImage(f"the JPEG has a misplaced marker at byte {at - 2}")
        if at + 2 > size:
            raise MalformedImage("the JPEG ends inside a segment")
        length = int.from_bytes(data[at:at + 2], "big")
        if length < 2 or at + length > size:
            raise MalformedImage(f"the JPEG's segment at byte {at - 2} runs past its end")
        given = data[at + 2:at + length]
        at += length
        if marker == 0xE1 and given.startswith(_EXIF_PREFIX):
            body = None if exif_seen else _jpeg_segment(marker, given)  # viewers read the first
            exif_seen = True
        else:
            body = _jpeg_segment(marker, given)
        if body is not None:
            out.append(bytes((0xFF, marker)) + (len(body) + 2).to_bytes(2, "big") + body)
        if marker == 0xDA:  # a scan: its coded data runs to the next marker
            found = _SCAN_END.search(data, at)
            if found is None:
                raise MalformedImage("the JPEG ends inside its picture data")
            out.append(data[at:found.start()])
            at = found.start()
    raise MalformedImage(f"the JPEG has more than {_MAX_PARTS} segments")


# -- PNG --------------------------------------------------------------------------------------

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_KEPT: Final = frozenset({
    # How the picture looks: colour space, gamma, transparency, HDR metadata, pixel aspect,
    # and the animation chunks of APNG. Critical chunks (upper-case first letter) are all kept.
    b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD", b"pHYs", b"cICP", b"mDCV",
    b"mDCv", b"cLLI", b"cLLi", b"acTL", b"fcTL", b"fdAT",
})


_PNG_CHUNK_TYPE: Final = re.compile(rb"[A-Za-z]{4}")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (len(body).to_bytes(4, "big") + kind + body
            + zlib.crc32(kind + body).to_bytes(4, "big"))


def _png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise MalformedImage("the PNG does not begin with its signature")
    out = [_PNG_SIGNATURE]
    size = len(data)
    at = len(_PNG_SIGNATURE)
    first = True
    for _ in range(_MAX_PARTS):
        if at + 12 > size:
            raise MalformedImage("the PNG ends before its IEND chunk")
        length = int.from_bytes(data[at:at + 4], "big")
        kind = data[at + 4:at + 8]
        if length > 0x7FFFFFFF or at + 12 + length > size:
            raise MalformedImage(f"the PNG's chunk at byte {at} runs past its end")
        if not _PNG_CHUNK_TYPE.fullmatch(kind):
            raise MalformedImage(f"the PNG has no chunk at byte {at}")
        if first and kind != b"IHDR":
            raise MalformedImage("the PNG does not begin with its IHDR chunk")
        first = False
        chunk = data[at:at + 12 + length]
        body = chunk[8:8 + length]
        at += 12 + length
        if kind[0] < 97 or kind in _PNG_KEPT:  # critical, or changes how the picture looks
            out.append(chunk)
        elif kind == b"eXIf":
            exif = _orientation_only(body)
            if exif is not None:
                out.append(_png_chunk(b"eXIf", exif))
        # else: tEXt, iTXt, zTXt, tIME, and any other ancillary chunk: dropped
        if kind == b"IEND":
            return b"".join(out)
    raise MalformedImage(f"the PNG has more than {_MAX_PARTS} chunks")


# -- WebP -------------------------------------------------------------------------------------

_WEBP_KEPT: Final = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_VP8X_EXIF: Final = 0x08
_VP8X_XMP: Final = 0x04


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "little") + body + b"\x00" * (len(body) & 1)


def _webp(data: bytes) -> bytes:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MalformedImage("the WebP does not begin with its RIFF header")
    end = 8 + int.from_bytes(data[4:8], "little")
    if end > len(data):
        raise MalformedImage("the WebP is shorter than its RIFF header says")
    chunks: list[tuple[bytes, bytes]] = []
    at = 12
    while at < end:
        if len(chunks) >= _MAX_PARTS:
            raise MalformedImage(f"the WebP has more than {_MAX_PARTS} chunks")
        if at + 8 > end:
            raise MalformedImage(f"the WebP ends inside a chunk header at byte {at}")
        kind = data[at:at + 4]
        length = int.from_bytes(data[at + 4:at + 8], "little")
        if at + 8 + length + (length & 1) > end:  # with its padding byte, if odd
            raise MalformedImage(f"the WebP's chunk at byte {at} runs past its end")
        chunks.append((kind, data[at + 8:at + 8 + length]))
        at += 8 + length + (length & 1)
    if not chunks or chunks[0][0] not in (b"VP8 ", b"VP8L", b"VP8X"):
        raise MalformedImage("the WebP does not begin with an image chunk")
    kept: list[tuple[bytes, bytes]] = []
    has_exif = False
    for kind, body in chunks:
        if kind in _WEBP_KEPT:
            kept.append((kind, body))
        elif kind == b"EXIF" and not has_exif:
            prefix = _EXIF_PREFIX if body.startswith(_EXIF_PREFIX) else b""
            exif = _orientation_only(body[len(prefix):])
            if exif is not None:
                kept.append((kind, prefix + exif))
                has_exif = True
        # else: XMP, unknown chunks, a second EXIF: dropped
    if kept[0][0] == b"VP8X":
        header = kept[0][1]
        if len(header) < 10:
            raise MalformedImage("the WebP's VP8X chunk is too short")
        flags = header[0] & ~(_VP8X_EXIF | _VP8X_XMP) | (_VP8X_EXIF if has_exif else 0)
        kept[0] = (b"VP8X", bytes((flags,)) + header[1:])
    body = b"WEBP" + b"".join(_riff_chunk(kind, chunk) for kind, chunk in kept)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


# -- GIF --------------------------------------------------------------------------------------

_GIF_LOOP_APPS: Final = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
_GIF_ICC_APP: Final = b"ICCRGBG1012"


def _sub_blocks_end(data: bytes, at: int, budget: list[int]) -> int:
    """Where a run of GIF data sub-blocks starting at ``at`` ends (after its terminator), each
    taken from what is left of ``budget[0]``."""
    while True:
        if at >= len(data):
            raise MalformedImage("the GIF ends inside a block")
        budget[0] -= 1
        if budget[0] < 0:
            raise MalformedImage(f"the GIF has more than {_MAX_SUB_BLOCKS} blocks")
        length = data[at]
        at += 1 + length
        if length == 0:
            return at


def _gif_extension(data: bytes, at: int, end: int) -> bytes | None:
    """The extension block ``data[at:end]`` as it goes out, or None to drop it."""
    label = data[at + 1]
    if label == 0xF9:  # graphic control: a frame's delay, disposal and transparent colour
        return data[at:at + 7] + b"\x00" if data[at + 2] == 4 and end >= at + 8 else None
    if label == 0xFF and data[at + 2] == 11 and end >= at + 14:
        app = data[at + 3:at + 14]
        if app in _GIF_LOOP_APPS:
            loop = data[at + 14:at + 18]
            # Only the loop count: an application block may carry more sub-blocks than that.
            return data[at:at + 14] + loop + b"\x00" if loop[:2] == b"\x03\x01" and end >= at + 19 else None
        if app == _GIF_ICC_APP:
            return data[at:end]
    return None  # comments, plain text, XMP and other application blocks


def _gif(data: bytes) -> bytes:
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise MalformedImage("the GIF does not begin with its header")
    at = 13
    if data[10] & 0x80:
        at += 3 * (2 << (data[10] & 7))
    out = [data[:at]]
    budget = [_MAX_SUB_BLOCKS]  # sub-blocks and their terminators alike
    while True:
        if at >= len(data):
            raise MalformedImage("the GIF ends before its trailer")
        block = data[at]
        if block == 0x3B:
            out.append(b";")
            return b"".join(out)
        if block == 0x2C:
            if at + 10 > len(data):
                raise MalformedImage("the GIF ends inside an image descriptor")
            start = at + 10
            if data[at + 9] & 0x80:
                start += 3 * (2 << (data[at + 9] & 7))
            end = _sub_blocks_end(data, start + 1, budget)  # after the LZW minimum code size
            out.append(data[at:end])
        elif block == 0x21:
            if at + 2 > len(data):
                raise MalformedImage("the GIF ends inside an extension")
            end = _sub_blocks_end(data, at + 2, budget)
            kept = _gif_extension(data, at, end)
            if kept is not None:
                out.append(kept)
        else:
            raise MalformedImage(f"the GIF has no block at byte {at}")
        at = end


_STRIPPERS: Final[dict[str, Callable[[bytes], bytes]]] = {
    "image/jpeg": _jpeg, "image/png": _png, "image/webp": _webp, "image/gif": _gif,
}
STRIPPED_TYPES: Final = frozenset(_STRIPPERS)
"""The types whose metadata ``stripped`` takes out; anything else it returns unchanged."""


def stripped(data: bytes, mime_type: str) -> bytes:
    """``data`` (of the type its bytes showed, ``mime_type``) without the metadata that says who
    took it, where and with what; its picture unchanged. Raises ``MalformedImage`` when the
    bytes do not follow their type's container."""
    strip = _STRIPPERS.get(mime_type)
    return data if strip is None else strip(data)


# -- Size -------------------------------------------------------------------------------------

_SOF: Final = frozenset({*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0)})
"""JPEG start-of-frame markers (not DHT C4, JPG C8, DAC CC): their frame header holds the size."""


def _jpeg_size(data: bytes) -> tuple[int, int, int | None] | None:
    at, orientation = 2, None
    for _ in range(_MAX_PARTS):  # as the stripper bounds them
        if at + 4 > len(data) or data[at] != 0xFF:
            return None
        fill = _FILL.match(data, at)
        at = fill.end() - 1 if fill is not None else at
        if at + 4 > len(data):
            return None
        marker = data[at + 1]
        if marker == 0xDA or marker == 0xD9:
            return None  # the picture data before any frame header
        length = int.from_bytes(data[at + 2:at + 4], "big")
        body = data[at + 4:at + 2 + length]
        if marker == 0xE1 and body.startswith(_EXIF_PREFIX) and orientation is None:
            found = _orientation(body[len(_EXIF_PREFIX):])
            orientation = found[1] if found is not None else 1
        if marker in _SOF and len(body) >= 5:
            return int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big"), orientation
        at += 2 + length
    return None


def _png_size(data: bytes) -> tuple[int, int, int | None] | None:
    if data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack_from(">II", data, 16)
    at, orientation = 8, None
    for _ in range(_MAX_PARTS):  # eXIf, where the stripper kept one, comes before the pixels
        if at + 12 > len(data):
            break
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        if kind == b"eXIf":
            found = _orientation(data[at + 8:at + 8 + length])
            orientation = found[1] if found is not None else None
            break
        if kind in (b"IDAT", b"IEND"):
            break
        at += 12 + length
    return width, height, orientation


def _webp_size(data: bytes) -> tuple[int, int, int | None] | None:
    size: tuple[int, int] | None = None
    orientation, at = None, 12
    for _ in range(_MAX_PARTS):
        if at + 8 > len(data):
            break
        kind, length = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        body = data[at + 8:at + 8 + length]
        if kind == b"VP8X" and len(body) >= 10 and size is None:
            size = (int.from_bytes(body[4:7], "little") + 1, int.from_bytes(body[7:10], "little") + 1)
        elif kind == b"VP8 " and len(body) >= 10 and body[3:6] == b"\x9d\x01\x2a" and size is None:
            size = (int.from_bytes(body[6:8], "little") & 0x3FFF, int.from_bytes(body[8:10], "little") & 0x3FFF)
        elif kind == b"VP8L" and len(body) >= 5 and body[0] == 0x2F and size is None:
            bits = int.from_bytes(body[1:5], "little")
            size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        elif kind == b"EXIF":
            prefix = len(_EXIF_PREFIX) if body.startswith(_EXIF_PREFIX) else 0
            found = _orientation(body[prefix:])
            orientation = found[1] if found is not None else None
        at += 8 + length + (length & 1)
    return None if size is None else (*size, orientation)


def _gif_size(data: bytes) -> tuple[int, int, int | None] | None:
    return (int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little"), None) \
        if len(data) >= 10 else None


_SIZERS: Final[dict[str, Callable[[bytes], tuple[int, int, int | None] | None]]] = {
    "image/jpeg": _jpeg_size, "image/png": _png_size, "image/webp": _webp_size, "image/gif": _gif_size,
}


def displayed_size(data: bytes, mime_type: str) -> tuple[int, int] | None:
    """The width and height ``data`` (a picture as :func:`stripped` returns it) is shown at,
    read from its container's header without decoding it: a JPEG's frame header (SOFn), a
    PNG's ``IHDR``, a WebP's ``VP8X`` canvas or its ``VP8``/``VP8L`` frame, a GIF's logical
    screen. An EXIF orientation of 5 to 8 (turned a quarter) swaps them, as viewers turn the
    picture and as Mastodon, which turns it when it re-encodes, reports it. None for another
    type, a size of 0, or a header it cannot find."""
    sizer = _SIZERS.get(mime_type)
    found = None if sizer is None else sizer(data)
    if found is None or not found[0] or not found[1]:
        return None
    width, height, orientation = found
    return (height, width) if orientation is not None and orientation >= 5 else (width, height)
