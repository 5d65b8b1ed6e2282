"""gateway.heap: the objects alive at start are frozen out of the collector's full walks."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import heap


@pytest.fixture
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test run collects as usual


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freeze_collects_first_then_freezes_what_is_alive(thawed: None) -> None:
    kept = [[n] for n in range(5_000)]  # 5,001 tracked objects, alive
    cycle = weakref.ref(_Cycle())  # garbage only the collector can free: it must go, not be frozen
    assert cycle() is not None
    frozen = heap.freeze()
    assert frozen == gc.get_freeze_count() >= len(kept) + 1
    assert cycle() is None  # collected, not frozen
    assert not any(o is kept for o in gc.get_objects())  # frozen objects are not walked
    heap.unfreeze()
    assert gc.get_freeze_count() == 0
    assert any(o is kept for o in gc.get_objects())


def test_freeze_walks_the_first_generation_less_often_and_unfreeze_gives_the_default_back(thawed: None) -> None:
    before = gc.get_threshold()
    try:
        heap.freeze()
        assert gc.get_threshold() == (heap.YOUNG, *before[1:])
        made = gc.get_count()[0]
        kept = [[n] for n in range(2_000)]  # more than 700 tracked objects, fewer than YOUNG
        assert gc.get_count()[0] >= made + len(kept)  # not collected at 700
        heap.unfreeze()
        assert gc.get_threshold() == (700, *before[1:])
    finally:
        gc.set_threshold(*before)
