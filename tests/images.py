"""Pictures for tests, written byte by byte: real JPEG, PNG, WebP and GIF files (the JPEG and WebP
as Chromium's canvas encodes a 3×2 picture, each with its ICC profile), and the metadata a phone
or an editor puts in them (EXIF with GPS, the device's serial and the owner's name, XMP, IPTC,
comments, text chunks), to see what Byline keeps of an upload and what it takes out."""

from __future__ import annotations

import struct
import zlib

__all__ = [
    "GIF", "JPEG", "PNG", "PRIVATE", "WEBP", "exif", "gif_with", "jpeg_with", "orientation_of",
    "png_of", "png_sized", "png_with", "webp_with",
]

_SRGB = bytes.fromhex(
    "000001c800000000043000006d6e74725247422058595a2007e00001000100000000000061637370000000000000"
    "000000000000000000000000000000000000000000010000f6d6000100000000d32d000000000000000000000000"
    "00000000000000000000000000000000000000000000000000000000000000000000000000000009646573630000"
    "00f0000000247258595a00000114000000146758595a00000128000000146258595a0000013c0000001477747074"
    "00000150000000147254524300000164000000286754524300000164000000286254524300000164000000286370"
    "72740000018c0000003c6d6c756300000000000000010000000c656e5553000000080000001c0073005200470042"
    "58595a200000000000006fa2000038f50000039058595a2000000000000062990000b785000018da58595a200000"
    "0000000024a000000f840000b6cf58595a20000000000000f6d6000100000000d32d706172610000000000040000"
    "000266660000f2a700000d59000013d000000a5b00000000000000006d6c756300000000000000010000000c656e"
    "5553000000200000001c0047006f006f0067006c006500200049006e0063002e00200032003000310036"
)
"""The sRGB ICC profile Chromium writes into the pictures it encodes."""

JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffe201d84943435f50524f46494c45000101"
) + _SRGB + bytes.fromhex(
    "ffdb0043000302020302020303030304030304050805050404050a070706080c0a0c0c0b0a0b0b0d0e12100d0e11"
    "0e0b0b1016101113141515150c0f171816141812141514ffdb00430103040405040509050509140d0b0d14141414"
    "14141414141414141414141414141414141414141414141414141414141414141414141414141414141414141414"
    "ffc00011080002000303012200021101031101ffc4001500010100000000000000000000000000000007ffc40014"
    "100100000000000000000000000000000000ffc4001501010100000000000000000000000000000608ffc4001b11"
    "00000701000000000000000000000000000102033371b104ffda000c03010002110311003f00960002fccbb3d160"
    "f2c0dd160fffd9"
)
"""A 3×2 baseline JPEG with a JFIF segment and an sRGB ICC profile, as Chromium encodes it."""

WEBP = bytes.fromhex(
    "524946462c02000057454250565038580a0000002000000002000001000049434350c8010000"
) + _SRGB + bytes.fromhex(
    "565038203e0000007002009d012a0300020000c01225a80274ba01f800cc00c90007ba0000fef3df67fe55daf8bb"
    "ee17a8af977ffea8cca64fa5f6797f54665327d2ff63c800"
)
"""A 3×2 lossy WebP (VP8X, ICCP, VP8), as Chromium encodes it."""

GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"
       b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
"""A 1×1 GIF89a with a global colour table and a graphic control extension."""

PRIVATE = (b"Ada Lovelace", b"SN-0451-7781", b"Pixel 9 Pro", b"51/1", b"holiday at home", b"xmpmeta")
"""What the metadata below says about the person (the owner, the device's serial and model, a
GPS latitude, a caption, XMP): none of it may reach a platform."""


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of(width: int, height: int, seed: int = 0) -> bytes:
    """A real grey PNG of that size, its pixels differing with ``seed``."""
    rows = b"".join(b"\x00" + bytes((seed + x * 7 + y * 13) % 256 for x in range(width)) for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))


PNG = png_of(3, 2)
"""A 3×2 grey PNG."""


def png_sized(size: int) -> bytes:
    """A well-formed PNG of exactly ``size`` bytes (at least 90): ``PNG`` with an ICC profile
    chunk (which uploads keep) padded to fit."""
    pad = size - len(PNG) - 12 - 5
    return PNG[:33] + _chunk(b"iCCP", b"pad\x00\x00" + b"\x00" * pad) + PNG[33:]


def exif(*, orientation: int | None = 6, order: bytes = b"MM") -> bytes:
    """An EXIF body (TIFF structure) as a phone writes one: IFD0 with the make, model, owner and
    orientation, an EXIF IFD with the body's serial, a GPS IFD with a latitude and longitude."""
    end = "<" if order == b"II" else ">"
    extra = bytearray()
    entries: list[tuple[int, int, int, bytes]] = []  # tag, type, count, value or offset (4 bytes)

    def ascii_entry(tag: int, text: bytes) -> tuple[int, int, int, bytes]:
        return tag, 2, len(text) + 1, text + b"\x00"

    def ifd(items: list[tuple[int, int, int, bytes]], at: int) -> bytes:
        """An IFD placed at ``at``, its long values right after it."""
        head = struct.pack(end + "H", len(items))
        data = bytearray()
        after = at + 2 + 12 * len(items) + 4
        for tag, kind, count, value in sorted(items):
            if len(value) <= 4:
                head += struct.pack(end + "HHI", tag, kind, count) + value.ljust(4, b"\x00")
            else:
                head += struct.pack(end + "HHII", tag, kind, count, after + len(data))
                data += value + b"\x00" * (len(value) & 1)
        return head + struct.pack(end + "I", 0) + bytes(data)

    entries = [ascii_entry(0x010F, b"Google"), ascii_entry(0x0110, PRIVATE[2]), ascii_entry(0x013B, PRIVATE[0]),
               ascii_entry(0x010E, PRIVATE[4])]
    if orientation is not None:
        entries.append((0x0112, 3, 1, struct.pack(end + "H", orientation)))
    # The EXIF and GPS IFDs' offsets are known once IFD0's size is: two passes.
    pointers = [(0x8769, 4, 1, b"\x00" * 4), (0x8825, 4, 1, b"\x00" * 4)]
    size0 = len(ifd(entries + pointers, 8))
    exif_ifd = ifd([ascii_entry(0xA431, PRIVATE[1])], 8 + size0)
    gps_at = 8 + size0 + len(exif_ifd)
    rational = struct.pack(end + "IIIIII", 51, 1, 30, 1, 2647, 100)
    gps_ifd = ifd([(0x0001, 2, 2, b"N\x00"), (0x0002, 5, 3, rational),
                   (0x0003, 2, 2, b"W\x00"), (0x0004, 5, 3, struct.pack(end + "IIIIII", 0, 1, 7, 1, 3967, 100))],
                  gps_at)
    pointers = [(0x8769, 4, 1, struct.pack(end + "I", 8 + size0)), (0x8825, 4, 1, struct.pack(end + "I", gps_at))]
    extra += ifd(entries + pointers, 8) + exif_ifd + gps_ifd
    return order + struct.pack(end + "HI", 42, 8) + bytes(extra)


def orientation_of(tiff: bytes) -> int | None:
    """The Orientation an EXIF body's IFD0 holds, read here (as a viewer reads it), or None."""
    end = "<" if tiff[:2] == b"II" else ">"
    (at,) = struct.unpack_from(end + "I", tiff, 4)
    (count,) = struct.unpack_from(end + "H", tiff, at)
    for entry in range(at + 2, at + 2 + 12 * count, 12):
        tag, _, _, value = struct.unpack_from(end + "HHIH", tiff, entry)
        if tag == 0x0112:
            return int(value)
    return None


XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description dc:creator="'
       + PRIVATE[0] + b'"/></rdf:RDF></x:xmpmeta>')
IPTC = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x12\x1c\x02P\x00\x0c" + PRIVATE[0] + b"\x00\x00"


def _segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def jpeg_with(*, tiff: bytes | None = None, trailer: bytes = b"", base: bytes = JPEG) -> bytes:
    """``base`` as a phone and an editor leave it: EXIF (``tiff``, by default ``exif()``), XMP,
    IPTC in APP13, a comment, an MPF index, and ``trailer`` after its end marker."""
    tiff = exif() if tiff is None else tiff
    metadata = (_segment(0xE1, b"Exif\x00\x00" + tiff) + _segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP)
                + _segment(0xED, IPTC) + _segment(0xE2, b"MPF\x00II*\x00\x08\x00\x00\x00")
                + _segment(0xFE, b"Taken " + PRIVATE[4]))
    return base[:2] + metadata + base[2:] + trailer


def png_with(*, tiff: bytes | None = None, base: bytes = PNG) -> bytes:
    """``base`` with an eXIf chunk, text chunks (tEXt, zTXt, iTXt with XMP) and a tIME, as
    editors write them, before and after its pixels."""
    tiff = exif() if tiff is None else tiff
    ihdr_end = 8 + 25
    before = (_chunk(b"eXIf", tiff) + _chunk(b"tEXt", b"Author\x00" + PRIVATE[0])
              + _chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP)
              + _chunk(b"tIME", b"\x07\xea\x0c\x07\x12\x00\x00"))
    after = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(PRIVATE[4]))
    iend = len(base) - 12
    return base[:ihdr_end] + before + base[ihdr_end:iend] + after + base[iend:]


def webp_with(*, tiff: bytes | None = None, base: bytes = WEBP) -> bytes:
    """``base`` (an extended WebP) with EXIF and XMP chunks and its VP8X flags saying so."""
    tiff = exif() if tiff is None else tiff

    def riff(kind: bytes, body: bytes) -> bytes:
        return kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)

    chunks = base[12:]
    vp8x = bytearray(chunks[:18])
    vp8x[8] |= 0x08 | 0x04
    body = b"WEBP" + bytes(vp8x) + chunks[18:] + riff(b"EXIF", tiff) + riff(b"XMP ", XMP)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gif_with(*, base: bytes = GIF) -> bytes:
    """``base`` (its header, screen and colour table 13 + 6 bytes) with a comment, an XMP
    application block, a looping block with a hidden extra sub-block, and data after its end."""
    comment = b"!\xfe" + bytes((len(PRIVATE[4]),)) + PRIVATE[4] + b"\x00"
    xmp = b"!\xff\x0bXMP DataXMP" + b"".join(bytes((len(part),)) + part for part in (XMP[:200],)) + b"\x00"
    loop = b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00" + bytes((len(PRIVATE[0]),)) + PRIVATE[0] + b"\x00"
    return base[:19] + loop + comment + xmp + base[19:] + PRIVATE[1]
