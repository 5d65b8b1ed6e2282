"""What Byline takes out of an uploaded picture, format by format, and what it keeps: the owner's
name, the device, GPS, XMP, IPTC, comments and trailing data go; the picture's own bytes, its ICC
profile and its orientation stay; a container that does not hold together is refused. (Over
HTTP, through Mastodon.py and a real PDS: ``tests/clients/test_upload_metadata.py``; the
walkers under random input: ``tests/fuzz/test_image_metadata_fuzz.py``.)"""

from __future__ import annotations

import struct

import pytest

from gateway.services.image_metadata import MalformedImage, displayed_size, stripped
from tests.images import (
    GIF,
    JPEG,
    PNG,
    PRIVATE,
    WEBP,
    exif,
    gif_with,
    jpeg_with,
    orientation_of,
    png_of,
    png_with,
    webp_with,
)


def _jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """A JPEG's marker segments up to its first scan, read here."""
    found, at = [], 2
    while data[at + 1] != 0xDA:
        length = struct.unpack_from(">H", data, at + 2)[0]
        found.append((data[at + 1], data[at + 4:at + 2 + length]))
        at += 2 + length
    return found


@pytest.mark.parametrize(("mime_type", "picture"), [
    ("image/jpeg", JPEG), ("image/png", PNG), ("image/webp", WEBP), ("image/gif", GIF),
])
def test_a_picture_without_metadata_goes_out_byte_for_byte(mime_type: str, picture: bytes) -> None:
    """A picture that says nothing about its author (Chromium's JPEG and WebP, with their ICC
    profiles; a plain PNG and GIF) is not touched at all."""
    assert stripped(picture, mime_type) == picture


def test_jpeg_loses_exif_xmp_iptc_comments_mpf_and_trailer_but_keeps_orientation_and_icc() -> None:
    """A phone's JPEG: of its EXIF only the orientation is left (in a block of its own); XMP,
    IPTC, the comment, the MPF index and what follows the end marker go; JFIF, the ICC profile
    and every byte from the quantisation tables to the end marker are as they were."""
    for order in (b"MM", b"II"):
        out = stripped(jpeg_with(tiff=exif(orientation=8, order=order), trailer=b"SEFH" + PRIVATE[0]), "image/jpeg")
        assert [p for p in PRIVATE if p in out] == []
        segments = _jpeg_segments(out)
        assert [m for m, _ in segments] == [0xE1, 0xE0, 0xE2, 0xDB, 0xDB, 0xC0, 0xC4, 0xC4, 0xC4, 0xC4]
        assert segments[0][1][:6] == b"Exif\x00\x00"
        assert orientation_of(segments[0][1][6:]) == 8
        assert segments[0][1][6:8] == order
        assert segments[2][1].startswith(b"ICC_PROFILE\x00")
        assert out.endswith(JPEG[JPEG.index(b"\xff\xdb"):])
        assert out == JPEG[:2] + out[2:38] + JPEG[2:]


def test_exif_without_an_orientation_goes_whole() -> None:
    """EXIF with no orientation, orientation 1 (as stored), or too broken to read: nothing of it
    is kept, and the picture is the picture as it was."""
    for tiff in (exif(orientation=None), exif(orientation=1), exif()[:20], b"garbage"):
        assert stripped(jpeg_with(tiff=tiff), "image/jpeg") == JPEG


def test_png_loses_text_time_and_exif_but_keeps_orientation() -> None:
    """A PNG's tEXt, iTXt (XMP), zTXt and tIME go; its eXIf keeps the orientation alone, with a
    right CRC; IHDR, IDAT and IEND are as they were."""
    out = stripped(png_with(tiff=exif(orientation=3)), "image/png")
    assert [p for p in PRIVATE if p in out] == []
    kinds, at = [], 8
    while at < len(out):
        length = struct.unpack_from(">I", out, at)[0]
        kinds.append(out[at + 4:at + 8])
        if out[at + 4:at + 8] == b"eXIf":
            assert orientation_of(out[at + 8:at + 8 + length]) == 3
        at += 12 + length
    assert kinds == [b"IHDR", b"eXIf", b"IDAT", b"IEND"]
    assert stripped(png_with(tiff=exif(orientation=None)), "image/png") == PNG


def test_webp_loses_exif_and_xmp_and_its_flags_say_so() -> None:
    """A WebP's XMP chunk goes, its EXIF keeps the orientation alone, and VP8X's flags and the
    RIFF size agree with what is left; without an orientation it is the WebP it was."""
    out = stripped(webp_with(tiff=exif(orientation=5)), "image/webp")
    assert [p for p in PRIVATE if p in out] == []
    assert struct.unpack_from("<I", out, 4)[0] == len(out) - 8
    assert out[20] & 0x0C == 0x08  # EXIF, no XMP
    assert out[8:20] == WEBP[8:20] and out[21:len(WEBP)] == WEBP[21:]
    assert orientation_of(out[len(WEBP) + 8:]) == 5
    assert stripped(webp_with(tiff=exif(orientation=None)), "image/webp") == WEBP


def test_gif_keeps_its_loop_count_only() -> None:
    """A GIF's comment, XMP block and trailing bytes go; its looping block keeps the loop count
    without the sub-block hidden after it; the image blocks are as they were."""
    out = stripped(gif_with(), "image/gif")
    assert [p for p in PRIVATE if p in out] == []
    assert out == GIF[:19] + b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00" + GIF[19:]


@pytest.mark.parametrize(("mime_type", "data", "reason"), [
    ("image/jpeg", JPEG[:-2], "ends inside its picture data"),
    ("image/jpeg", JPEG[:300], "runs past its end"),
    ("image/jpeg", JPEG[:20] + b"\x00" + JPEG[20:], "no marker at byte 20"),
    ("image/jpeg", JPEG[:20] + bytes(range(64)) + b"\xff\xd9", "no marker at byte 20"),
    ("image/png", PNG[:-12], "ends before its IEND"),
    ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "no chunk at byte 8"),
    ("image/webp", WEBP[:-10], "shorter than its RIFF header says"),
    ("image/webp", WEBP[:12] + b"XMP " + WEBP[16:], "does not begin with an image chunk"),
    ("image/gif", GIF[:-1], "ends before its trailer"),
    ("image/gif", b"GIF89a" + b"\x00" * 16, "no block at byte 13"),
])
def test_a_container_that_does_not_hold_together_is_refused(mime_type: str, data: bytes, reason: str) -> None:
    """Cut short, a byte out of place, a length past the end: refused, saying where."""
    with pytest.raises(MalformedImage, match=reason):
        stripped(data, mime_type)


def test_other_types_go_as_they_came() -> None:
    """A video or anything else not a picture Byline strips is returned as it is."""
    video = b"\x00\x00\x00\x18ftypmp42" + PRIVATE[0]
    assert stripped(video, "video/mp4") is video


@pytest.mark.parametrize(("mime_type", "flood", "reason"), [
    ("image/jpeg", JPEG[:2] + b"\xff\xfe\x00\x02" * 65_536 + JPEG[2:], "more than 65535 segments"),
    ("image/png", PNG[:33] + b"\x00\x00\x00\x00tEXt\x00\x00\x00\x00" * 65_536 + PNG[33:], "more than 65535 chunks"),
    ("image/webp", b"RIFF" + struct.pack("<I", len(WEBP) - 8 + 8 * 65_536) + WEBP[8:]
     + b"XMP \x00\x00\x00\x00" * 65_536, "more than 65535 chunks"),
    ("image/gif", GIF[:19] + b"!\xfe" + b"\x01a" * 262_144 + b"\x00" + GIF[19:], "more than 262144 blocks"),
])
def test_a_flood_of_empty_parts_is_refused(mime_type: str, flood: bytes, reason: str) -> None:
    """Empty comments, text chunks or one-byte sub-blocks by the hundred thousand (which took
    seconds of CPU each to walk): refused as no picture is made."""
    with pytest.raises(MalformedImage, match=reason):
        stripped(flood, mime_type)


def test_scan_data_full_of_stuffed_bytes_and_restarts_is_walked_in_one_pass() -> None:
    """A scan of 8 MiB of stuffed bytes (FF00) and restart markers, as a hostile upload may
    be: walked to its end marker, kept whole (it took seconds a byte pair at a time)."""
    scan = (b"\xff\x00\xff\xd3" * (2 * 1024 * 1024))
    data = JPEG[:-2] + scan + b"\xff\xd9"
    assert stripped(data, "image/jpeg") == data


def _riff(*chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + sum(len(c) for c in chunks)) + b"WEBP" + b"".join(chunks)


_VP8 = WEBP[WEBP.index(b"VP8 "):]
"""The lossy frame of ``WEBP`` (3×2), as a simple WebP holds it alone."""
_VP8L = b"VP8L" + struct.pack("<I", 6) + b"\x2f" + struct.pack("<I", (641 - 1) | (479 - 1) << 14) + b"\x00"
"""A lossless frame's header saying 641×479 (14 bits each, less one, after its signature)."""


@pytest.mark.parametrize(("mime_type", "picture", "size"), [
    ("image/jpeg", JPEG, (3, 2)),
    ("image/png", png_of(641, 1), (641, 1)),
    ("image/webp", WEBP, (3, 2)),  # its VP8X canvas
    ("image/webp", _riff(_VP8), (3, 2)),
    ("image/webp", _riff(_VP8L), (641, 479)),
    ("image/gif", GIF[:6] + struct.pack("<HH", 300, 2) + GIF[10:], (300, 2)),
])
def test_the_size_is_read_from_the_header(mime_type: str, picture: bytes, size: tuple[int, int]) -> None:
    """Each container's own header says the width and height, the pixels are not decoded."""
    assert displayed_size(stripped(picture, mime_type), mime_type) == size


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_quarter_turn_swaps_the_size(orientation: int) -> None:
    """EXIF orientations 5 to 8 turn the picture a quarter (viewers show a 3×2 JPEG, PNG or
    WebP as 2×3); 1 to 4 at most mirror or flip it."""
    shown = (2, 3) if orientation >= 5 else (3, 2)
    tiff = exif(orientation=orientation)
    for mime_type, picture in (("image/jpeg", jpeg_with(tiff=tiff)), ("image/png", png_with(tiff=tiff)),
                               ("image/webp", webp_with(tiff=tiff))):
        assert displayed_size(stripped(picture, mime_type), mime_type) == shown, mime_type


def test_no_size_where_the_header_gives_none() -> None:
    """A JPEG without a frame header, a GIF of width 0, a video: no size, never an error."""
    no_frame = JPEG[:JPEG.index(b"\xff\xc0")] + JPEG[JPEG.index(b"\xff\xc4"):]
    assert displayed_size(no_frame, "image/jpeg") is None
    assert displayed_size(GIF[:6] + b"\x00\x00" + GIF[8:], "image/gif") is None
    assert displayed_size(b"\x00\x00\x00\x18ftypmp42", "video/mp4") is None
