"""The calls-a-post count (``bench/calls.py``) runs end to end at a tiny size, so that it cannot
rot: the proxy and ``byline serve`` each run under the profiler, write their counts when told
to, and the counts between the two snapshots are their calls for the posts that reached the
stand-in. No figure is asserted beyond what must hold for any code (a benchmark is not a test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench import calls, direct


def test_calls_a_post_are_counted_on_both_sides(tmp_path: Path) -> None:
    """Two accounts, two connections, one second each: both sides carried posts, each counted
    calls for them, Byline's own code among Byline's calls and none of it among the proxy's,
    and the report names both figures and, when asked, the functions called most a post."""
    direct.ensure_wrk()
    bare, mine = asyncio.run(calls.measure(f"sqlite:///{tmp_path / 'byline.db'}", tmp_path, seconds=1,
                                           connections=2, accounts=2))
    assert (bare.posts > 0, mine.posts > 0) == (True, True)
    assert (bare.per_post > 0, mine.per_post > 0) == (True, True)
    assert mine.calls["gateway/services"] > 0 and mine.calls["aiohttp"] > 0
    assert not any(package.startswith("gateway") for package in bare.calls), bare.calls
    lines = calls.report(bare, mine, top=5)
    assert lines[0].lstrip().startswith("bare proxy") and lines[1].lstrip().startswith("Byline")
    assert not any("functions called most" in line for line in lines)
    listed = calls.report(bare, mine, top=5, functions=8)
    head = next(n for n, line in enumerate(listed) if "8 functions called most a post" in line)
    names = [line.split(maxsplit=1)[1] for line in listed[head + 1:]]
    assert len(names) == 8, listed
    per_post = [float(line.split()[0].replace(",", "")) for line in listed[head + 1:]]
    assert per_post == sorted(per_post, reverse=True) and per_post[0] > 0
    assert any(calls._function(*key).startswith("gateway/") for key in mine.functions), \
        mine.functions.most_common(20)


def test_whose_function_each_call_is() -> None:
    """Calls are put down to Byline's own parts, a library's package, the standard library or C."""
    import json

    import aiohttp

    assert calls._package("~") == "C"
    assert calls._package(str(Path(calls.__file__).resolve().parent.parent / "gateway/services/posts.py")) \
        == "gateway/services"
    assert calls._package(str(Path(calls.__file__).resolve().parent.parent / "adapters/mastodon.py")) == "adapters"
    assert calls._package(aiohttp.__file__) == "aiohttp"
    assert calls._package(json.__file__) == "standard library"


def test_how_each_function_is_named() -> None:
    """Byline's functions by their path in the checkout, a library's from its package on, the
    standard library's within it, and C functions by the profiler's name alone."""
    import json

    import aiohttp

    root = Path(calls.__file__).resolve().parent.parent
    assert calls._function(str(root / "gateway/services/posts.py"), 120, "submit") \
        == "gateway/services/posts.py:120 submit"
    assert calls._function(aiohttp.__file__, 1, "<module>") == "aiohttp/__init__.py:1 <module>"
    assert calls._function(json.__file__, 1, "<module>") == "json/__init__.py:1 <module>"
    assert calls._function("~", 0, "<method 'get' of 'dict' objects>") == "<method 'get' of 'dict' objects>"
