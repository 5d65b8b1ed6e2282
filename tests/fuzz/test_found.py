"""What the fuzzers found, kept as plain tests so it stays fixed, on both databases."""

from __future__ import annotations

import pytest

from tests.conftest import Gateway


@pytest.mark.parametrize("path", [
    "/log/tile/%C2%B9",                       # "¹": str.isdigit takes it, int() does not
    "/log/tile/0/%C2%B9",
    "/log/tile/0/000.p/%C2%B9",
    "/log/tile/entries/000.p/%D9%A3",         # Arabic-Indic three
    "/log/tile/entries/" + "x999/" * 8 + "999",   # an index no database integer holds
    "/log/tile/0/" + "x999/" * 8 + "999.p/5",
])
async def test_tile_paths_that_are_not_tiles_are_404(gateway: Gateway, path: str) -> None:
    """A tile path with non-ASCII digits, or an index past any log, is 404 "no such tile", not a 500."""
    status, body = await gateway.call(None, "GET", path)
    assert (status, body["error"]) == (404, "not_found"), body


@pytest.mark.parametrize("query", ["start=%C2%B9&end=2", "start=0&end=%D9%A3", "index=%C2%B2&size=3"])
async def test_log_numbers_must_be_ascii_digits(gateway: Gateway, query: str) -> None:
    """A log query number written in other digits is a 422 naming the parameter, not a 500."""
    path = "/log/proof/inclusion" if query.startswith("index") else "/log/entries"
    status, body = await gateway.call(None, "GET", f"{path}?{query}")
    assert status == 422, body
    assert body["error"] == "validation_failed" and body["field"] in ("start", "end", "index")
