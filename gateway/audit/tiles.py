"""Tile paths of c2sp.org/tlog-tiles, shared by the log API that serves tiles and the auditor
that reads them.

A tile holds 256 hashes of one level of the tree (tile height 8); its index is written in groups
of three digits, every group but the last prefixed with ``x``: tile 1234067 is ``x001/x234/067``.
A partial tile, of fewer than 256 hashes, adds ``.p/W`` for its width ``W``.
"""

from __future__ import annotations

from collections.abc import Iterator

HEIGHT = 8
"""Tree levels a tile spans: a tile of level L holds hashes of tree level ``HEIGHT * L``."""
WIDTH = 1 << HEIGHT
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


def tiles_for(size: int) -> Iterator[tuple[int, int, int]]:
    """Every hash tile of the tree of ``size`` entries as (level, index, width), level by level
    from 0, left to right: the full tiles of each level, then its partial tile at the right edge
    when it has one. Together they hold every hash a proof within that tree is made of."""
    level, hashes = 0, size
    while hashes:
        for index in range(hashes // WIDTH):
            yield level, index, WIDTH
        if hashes % WIDTH:
            yield level, hashes // WIDTH, hashes % WIDTH
        level, hashes = level + 1, hashes >> HEIGHT
