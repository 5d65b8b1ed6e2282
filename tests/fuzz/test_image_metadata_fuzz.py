"""The metadata walkers under random input: pictures with random metadata, then cut, spliced and
bit-flipped. Whatever comes in, the walker refuses it (``MalformedImage``) or answers bytes no
longer than it was given, that it takes again unchanged, with the picture's own bytes intact
when the input was whole (a mutation may make a metadata block swallow them, and a decoder
would read them so too)."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.services.image_metadata import MalformedImage, displayed_size, stripped
from tests.fuzz.live import examples
from tests.images import GIF, JPEG, PNG, PRIVATE, WEBP, exif, gif_with, jpeg_with, png_with, webp_with

SETTINGS = settings(max_examples=examples("IMAGE_EXAMPLES", 300), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_PICTURE: dict[str, bytes] = {
    # The bytes that make the picture, which stripping must never change.
    "image/jpeg": JPEG[JPEG.index(b"\xff\xdb"):],
    "image/png": PNG[33:],
    "image/webp": WEBP[WEBP.index(b"VP8 "):],
    "image/gif": GIF[19:],
}
_WITH: dict[str, Callable[[bytes], bytes]] = {
    "image/jpeg": lambda tiff: jpeg_with(tiff=tiff, trailer=PRIVATE[1]),
    "image/png": lambda tiff: png_with(tiff=tiff),
    "image/webp": lambda tiff: webp_with(tiff=tiff),
    "image/gif": lambda tiff: gif_with(),
}


@st.composite
def pictures(draw: st.DrawFn) -> tuple[str, bytes]:
    """A picture of each type with metadata: EXIF in either byte order, any orientation or none."""
    mime_type = draw(st.sampled_from(sorted(_WITH)))
    orientation = draw(st.one_of(st.none(), st.integers(0, 0xFFFF)))
    tiff = exif(orientation=orientation, order=draw(st.sampled_from((b"II", b"MM"))))
    return mime_type, _WITH[mime_type](tiff)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """A picture with metadata, then a few cuts, insertions and flipped bytes anywhere in it."""
    mime_type, data = draw(pictures())
    buffer = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(("flip", "flip", "cut", "insert", "truncate")))
        at = draw(st.integers(0, max(0, len(buffer) - 1)))
        if how == "flip" and buffer:
            buffer[at] = draw(st.integers(0, 255))
        elif how == "cut":
            del buffer[at:at + draw(st.integers(1, 64))]
        elif how == "insert":
            buffer[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            del buffer[at:]
    return mime_type, bytes(buffer)


def _holds(mime_type: str, data: bytes) -> bytes | None:
    """What the walker gives for ``data``, checked against the promises; None if refused. The
    size reader, given anything, answers a size or None, never an error."""
    read = displayed_size(data, mime_type)
    assert read is None or min(read) > 0
    try:
        out = stripped(data, mime_type)
    except MalformedImage:
        return None
    assert len(out) <= len(data)
    assert stripped(out, mime_type) == out  # what goes out is itself a well-formed picture
    size = displayed_size(out, mime_type)
    assert size is None or min(size) > 0
    return out


@SETTINGS
@given(picture=pictures())
def test_pictures_with_metadata_lose_it_and_keep_their_pixels(picture: tuple[str, bytes]) -> None:
    """Any well-formed picture with metadata: taken, nothing private left, its pixels intact."""
    mime_type, data = picture
    out = _holds(mime_type, data)
    assert out is not None
    assert [p for p in PRIVATE if p in out] == []
    assert _PICTURE[mime_type] in out


@SETTINGS
@given(picture=mutated())
def test_broken_pictures_are_refused_or_stripped_never_a_crash(picture: tuple[str, bytes]) -> None:
    """Cut, spliced or flipped anywhere: refused, or stripped to a picture that never grew."""
    _holds(*picture)


@SETTINGS
@given(mime_type=st.sampled_from(sorted(_WITH)), data=st.binary(max_size=512))
def test_random_bytes_never_crash_the_walker(mime_type: str, data: bytes) -> None:
    """Bytes of no shape at all, behind each type's signature or not: refused or taken whole."""
    signature = {"image/jpeg": b"\xff\xd8", "image/png": PNG[:8], "image/webp": WEBP[:12],
                 "image/gif": b"GIF89a"}[mime_type]
    for candidate in (data, signature + data):
        _holds(mime_type, candidate)
