"""Keeping the cyclic garbage collector out of the gateway's hot path.

Now and then Python's collector walks every object it tracks (a full collection), and in a
running gateway almost all of those were made at start and live as long as it does: modules,
routes, settings, policies, the libraries' own state. :func:`freeze` collects once and then
moves everything alive into the permanent generation (:func:`gc.freeze`), so that later
collections walk only what the gateway made since (requests, batches, their futures). Frozen
objects are still freed when nothing refers to them; only cycles among them are not collected.

Then the collector's first generation is walked every ``YOUNG`` new objects instead of every
700 (Python's default). A request and its post make a few thousand short-lived objects (dicts,
coroutines, futures), nearly all freed by their reference counts within the request; walked every
700 they were walked several times a post, and those alive at that moment were moved on to the
older generations, to be walked again there. Measured side by side (benchmark 1, SQLite, 64
connections, alternating): with other work sharing the machine's two cores, Byline's CPU a post
0.99–1.03 ms at 700 against 0.79–0.93 ms at 20,000 (five rounds each); on the machine otherwise
idle the same within the runs' spread (1.00 and 1.05 ms against 0.90 and 1.03 ms). The pause of
one collection stays short: it walks only the survivors of the objects made since the last.

``byline serve`` freezes once it has started. The benchmark does the same before each timed
part, so that what it built beforehand is not walked over and over while it is timed: measured
with ``python -m bench``, the log went from 73k–85k to 84k–92k events a second.
"""

from __future__ import annotations

import gc
from typing import Final

YOUNG: Final = 20_000
"""New objects between two collections of the first generation (see the module's docstring)."""


def freeze() -> int:
    """Collect, then freeze every object alive now, and collect the first generation every
    ``YOUNG`` new objects; return how many the collector now skips."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG, middle, old)
    return gc.get_freeze_count()


def unfreeze() -> None:
    """Give the frozen objects back to the collector, and the first generation its default
    threshold (for a benchmark between its rounds)."""
    gc.unfreeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(700, middle, old)
