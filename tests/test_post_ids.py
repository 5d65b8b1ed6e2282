"""Post ids: unique and in order however many posts arrive in one millisecond."""

from __future__ import annotations

import itertools

from gateway.services.posts import new_post_id


def test_ids_made_in_a_burst_are_unique_and_increasing() -> None:
    """200,000 ids made as fast as one process can (hundreds a millisecond) never repeat, and
    each is larger than the one before, as Mastodon clients' paging expects."""
    ids = [int(new_post_id()) for _ in range(200_000)]
    assert len(set(ids)) == len(ids)
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(i < 1 << 63 for i in ids)  # a signed 64-bit integer, as Mastodon's ids are
