"""Tile paths of c2sp.org/tlog-tiles (gateway.audit.tiles), as the log API and the auditor spell them."""

from __future__ import annotations

from gateway.audit.tiles import tile_path, tile_url, tiles_for


def test_tile_path_groups_the_index_in_threes() -> None:
    """The spec's example, and the edges of a group: every group but the last carries an x."""
    assert [tile_path(i) for i in (0, 7, 999, 1000, 1234067)] == ["000", "007", "999", "x001/000", "x001/x234/067"]


def test_tile_url_marks_a_partial_tile_with_its_width() -> None:
    """A full tile has no width; a partial one ends in .p/W."""
    assert tile_url(0, 273) == "tile/0/273"
    assert tile_url(0, 273, 112) == "tile/0/273.p/112"
    assert tile_url(1, 1001, 17) == "tile/1/x001/001.p/17"


def test_tiles_for_a_tree_are_every_full_tile_and_each_right_edge() -> None:
    """The hash tiles of a tree, level by level: full ones, then the partial one at the right
    edge; a level above holds one hash for each 256 below, while there is one."""
    assert list(tiles_for(0)) == []
    assert list(tiles_for(5)) == [(0, 0, 5)]
    assert list(tiles_for(256)) == [(0, 0, 256), (1, 0, 1)]
    assert list(tiles_for(300)) == [(0, 0, 256), (0, 1, 44), (1, 0, 1)]
    big = list(tiles_for(2 * 65536 + 5))
    assert len(big) == 512 + 1 + 2 + 1
    assert big[511:] == [(0, 511, 256), (0, 512, 5), (1, 0, 256), (1, 1, 256), (2, 0, 2)]
