"""Tile paths of c2sp.org/tlog-tiles, shared by the log API that serves tiles and the auditor
that reads them.

A tile holds 256 hashes of one level of the tree (tile height 8); its index is written in groups
of three digits, every group but the last prefixed with ``x``: tile 1234067 is ``x001/x234/067``.
A partial tile, of fewer than 256 hashes, adds ``.p/W`` for its width ``W``.
"""

from __future__ import annotations

WIDTH = 256
"""Hashes in a full tile."""


def tile_path(index: int) -> str:
    """The path element of tile ``index``: ``x001/x234/067`` for 1234067, ``000`` for 0."""
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def tile_url(level: int, index: int, width: int = WIDTH) -> str:
    """The path of a tile under the log's prefix: ``tile/L/N``, with ``.p/W`` when partial."""
    return f"tile/{level}/{tile_path(index)}" + ("" if width == WIDTH else f".p/{width}")
