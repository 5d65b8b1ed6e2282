"""What an uploaded file is, told from its bytes (``puremagic``), not from what the app said.

Mastodon does the same: a file part sent without a ``Content-Type``, or as
``application/octet-stream`` (what a client sends when it does not know), is taken for what its
content is, and a type the app declared that the content contradicts is not believed. Byline
stores, shows and sends on the detected type only, so a platform never receives bytes under a
type they are not.
"""

from __future__ import annotations

import puremagic


def detected_type(data: bytes) -> str | None:
    """The MIME type the content shows, or None when nothing in it is recognised.

    ``puremagic`` lists its matches best first; the first that names a MIME type decides
    (some of its signatures name only an extension).
    """
    if not data:
        return None
    try:
        matches = puremagic.magic_string(data)
    except (puremagic.PureError, ValueError):
        return None
    for match in matches:
        if match.mime_type:
            return str(match.mime_type).lower()
    return None
