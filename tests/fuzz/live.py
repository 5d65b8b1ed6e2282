"""A real gateway serving from a thread of its own, for the fuzz tests.

Hypothesis and schemathesis drive tests synchronously (schemathesis sends its requests with
``requests``), so the gateway cannot share the test's event loop: it runs in a loop on a
background thread, on a real socket, and the tests hand it coroutines with ``run``. One gateway
serves a whole test function, or a whole module, never one example.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from gateway.clock import ManualClock
from tests.conftest import PG_DSN, Gateway, _with_param, started_gateway

T = TypeVar("T")
TIMEOUT = 60.0


def examples(name: str, default: int) -> int:
    """A size from the environment (``BYLINE_TEST_FUZZ_<NAME>``): small in `make test`, large in `make fuzz`."""
    return int(os.environ.get(f"BYLINE_TEST_FUZZ_{name}", str(default)))


class Live:
    """A started gateway in a loop on another thread; ``run`` executes a coroutine there."""

    def __init__(self, loop: asyncio.AbstractEventLoop, gateway: Gateway) -> None:
        self.loop = loop
        self.gateway = gateway

    @property
    def base_url(self) -> str:
        """Where clients point: ``http://127.0.0.1:PORT``."""
        return str(self.gateway.client.make_url("")).rstrip("/")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the gateway's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(TIMEOUT)

    def call(self, user: str | None, method: str, path: str, json: Any = None, **kwargs: Any) -> tuple[int, Any]:
        """One request through the gateway's own test client, as ``Gateway.call``."""
        return self.run(self.gateway.call(user, method, path, json, **kwargs))


async def _pg(statement: str) -> None:
    assert PG_DSN is not None
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def live_gateway(backend: str, root: Path, policy_dir: Path, **extra: Any) -> Iterator[Live]:
    """A gateway on ``backend`` ("sqlite" or "postgresql") with a database of its own under
    ``root`` (or a PostgreSQL schema of its own), serving until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="byline-fuzz-gateway", daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(TIMEOUT)

    schema = None
    if backend == "sqlite":
        db_url = f"sqlite:///{root / 'byline.db'}"
    else:
        schema = "f_" + secrets.token_hex(6)
        run(_pg(f"CREATE SCHEMA {schema}"))
        db_url = _with_param(PG_DSN or "", "search_path", schema)
    starter = started_gateway(db_url, policy_dir, ManualClock(), **extra)
    try:
        gateway = run(starter.__aenter__())
        try:
            yield Live(loop, gateway)
        finally:
            run(starter.__aexit__(None, None, None))
    finally:
        try:
            if schema is not None:
                run(_pg(f"DROP SCHEMA {schema} CASCADE"))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(TIMEOUT)
            loop.close()
