"""What a test leaves open is that test's failure, not a later one's.

A connection whose transport is never closed (say, its loop closed before the close it was asked
for could run) holds its socket inside a reference cycle (the transport and its protocol), which
only the cycle collector frees, whenever allocations next make it run. Its ``ResourceWarning``
(an error here, with ``filterwarnings = error``) then surfaced in whichever test was running:
most often at the setup of a browser test, whose fixtures allocate the most, where it read as
that test's error and named nobody. Collecting at the end of every test, once its loop is closed,
makes the test that left the connection open fail, in its own teardown, with the warning.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def _collected_once() -> Iterator[None]:
    """What exists when the first test starts (the libraries, the collected tests) is collected
    once and then left out of the collector's passes: a pass after every test then looks only at
    what the tests made since (a full pass over a browser test's heap took some 0.15 s)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.fixture(autouse=True)
def _leaks_fail_their_own_test(_collected_once: None) -> Iterator[None]:
    """After the test and its fixtures (its event loop among them, set up later and so closed
    first), free what it left in cycles: what warns as it goes fails this test's teardown."""
    yield
    gc.collect()
