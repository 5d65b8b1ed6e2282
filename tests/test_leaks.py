"""A connection a test leaves open fails that test, not whichever test the garbage collector
happens to run in next (tests/leaks.py)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LEAKING = textwrap.dedent('''
    import asyncio
    import gc

    import pytest


    class Holding(asyncio.Protocol):
        """Keeps its transport, as every real protocol does: the two are a reference cycle."""

        def connection_made(self, transport):
            self.transport = transport


    async def test_leaves_a_connection_open():
        """Opens a connection and forgets it: the loop closes with it open."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await loop.create_connection(Holding, "127.0.0.1", port)
        server.close()


    @pytest.fixture
    def busy():
        """A fixture that allocates, as the browser tests' do: the collector runs in it."""
        gc.collect()


    def test_an_innocent_one(busy):
        """Leaks nothing."""
    ''')


def test_a_leaked_connection_fails_the_test_that_leaked_it(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that leaves a connection open errors in its own teardown, saying so; the next test,
    whose fixture happens to run the collector, passes. Before: the leaker passed and the
    ResourceWarning was the next test's setup error (as two browser tests' once were in CI)."""
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nasyncio_mode = "auto"\n'
                               'asyncio_default_fixture_loop_scope = "function"\nfilterwarnings = ["error"]\n')
    pytester.makepyfile(test_order=LEAKING)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = pytester.runpytest_subprocess("-p", "tests.leaks", "-p", "no:randomly", "-p", "no:cacheprovider",
                                           "-n", "0", "-rA")
    assert result.parseoutcomes() == {"passed": 2, "errors": 1}, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_leaves_a_connection_open*",
        "*unclosed transport*",
    ])
    result.stdout.no_fnmatch_line("*ERROR at setup of test_an_innocent_one*")
    result.stdout.fnmatch_lines(["PASSED test_order.py::test_an_innocent_one"])
