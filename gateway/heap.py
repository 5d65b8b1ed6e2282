"""Keeping the cyclic garbage collector out of the gateway's hot path.

Now and then Python's collector walks every object it tracks (a full collection), and in a
running gateway almost all of those were made at start and live as long as it does: modules,
routes, settings, policies, the libraries' own state. :func:`freeze` collects once and then
moves everything alive into the permanent generation (:func:`gc.freeze`), so that later
collections walk only what the gateway made since (requests, batches, their futures). Frozen
objects are still freed when nothing refers to them; only cycles among them are not collected.

``byline serve`` freezes once it has started. The benchmark does the same before each timed
part, so that what it built beforehand is not walked over and over while it is timed: measured
with ``python -m bench``, the log went from 73k–85k to 84k–92k events a second.
"""

from __future__ import annotations

import gc


def freeze() -> int:
    """Collect, then freeze every object alive now; return how many the collector now skips."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unfreeze() -> None:
    """Give the frozen objects back to the collector (for a benchmark between its rounds)."""
    gc.unfreeze()
