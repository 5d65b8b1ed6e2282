"""Opening a file an admin's directory holds along the path that was checked, following no link.

A policy file and a ``file:`` credential are each checked first: where their path leads, after
links, must be inside their directory. Opened by that path again, a link swapped in between
(``brand.yaml`` or ``secrets/team`` pointed at another tenant's files) would be followed, and
what was never checked read as if it had been.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

SWAPPED: Final = "its path became a link after it was checked"
"""Why a file cannot be read whose checked path holds a link at the open (:func:`is_swapped`)."""


def open_unlinked(path: Path) -> int:
    """Open ``path``, a resolved path (no links in it when it was checked), following no link:
    one directory at a time, each opened inside the one before without following a link
    (``O_NOFOLLOW``), then the file. A directory or the file swapped for a link between the
    check of where the path leads and this open fails here (``ELOOP``, ``ENOTDIR``) rather than
    being followed out of its directory; opened without waiting (a FIFO is refused by its
    reader, not waited on)."""
    parts = path.parts
    fd = os.open(parts[0], os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[1:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = inner
        return os.open(parts[-1], os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def is_swapped(exc: OSError) -> bool:
    """Whether :func:`open_unlinked` failed on a link where the checked path had none."""
    return exc.errno in (errno.ELOOP, errno.ENOTDIR)
