"""A real gateway serving from a thread of its own, for the fuzz tests.

Hypothesis and schemathesis drive tests synchronously (schemathesis sends its requests with
``requests``), so the gateway cannot share the test's event loop: it runs in a loop on a
background thread, on a real socket, and the tests hand that loop coroutines with ``run``. One
gateway serves a whole test function, or a whole module, never one example.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import DB
from gateway.clock import ManualClock
from tests.conftest import PG_DSN, Gateway, started_gateway
from tests.databases import schema_url

T = TypeVar("T")
TIMEOUT = 120.0


def examples(name: str, default: int) -> int:
    """A size from the environment (``BYLINE_TEST_FUZZ_<NAME>``): small in `make test`, large in `make fuzz`."""
    return int(os.environ.get(f"BYLINE_TEST_FUZZ_{name}", str(default)))


class Loop:
    """An event loop running on a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="byline-fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT)
        self.loop.close()


@contextmanager
def thread_loop() -> Iterator[Loop]:
    """A loop on a thread for the block: servers started in it serve while the test blocks."""
    loop = Loop()
    try:
        yield loop
    finally:
        loop.close()


class Live:
    """A started gateway in a loop on another thread."""

    def __init__(self, loop: Loop, gateway: Gateway) -> None:
        self.loop = loop
        self.gateway = gateway

    @property
    def base_url(self) -> str:
        """Where clients point: ``http://127.0.0.1:PORT``."""
        return str(self.gateway.client.make_url("")).rstrip("/")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the gateway's loop and wait for its result."""
        return self.loop.run(coro)

    def call(self, user: str | None, method: str, path: str, json: Any = None, **kwargs: Any) -> tuple[int, Any]:
        """One request through the gateway's own test client, as ``Gateway.call``."""
        return self.run(self.gateway.call(user, method, path, json, **kwargs))

    def raw(self, method: str, path: str, *, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """One request with exactly these bytes; the status, content type and body bytes."""
        async def go() -> tuple[int, str, bytes]:
            async with self.gateway.client.request(method, path, data=body, headers=headers or {}) as resp:
                return resp.status, resp.content_type, await resp.read()
        return self.run(go())

    def rows(self, *tables: str) -> tuple[Any, ...]:
        """Every row of these tables, in a stable order: what a refused request must leave alone."""
        async def go() -> tuple[Any, ...]:
            async with self.gateway.app[DB].read() as txn:
                out = []
                for table in tables:
                    rows = await txn.fetchall(f"SELECT * FROM {table}")
                    out.append(sorted(repr(sorted(dict(r).items())) for r in rows))
                return tuple(out)
        return self.run(go())


async def _pg(statement: str) -> None:
    assert PG_DSN is not None
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def serve(app: web.Application) -> TestServer:
    """Serve an aiohttp app (a platform stand-in) on a free port of 127.0.0.1."""
    server = TestServer(app)
    await server.start_server()
    return server


@contextmanager
def live_gateway(
    backend: str, root: Path, policy_dir: Path, *, loop: Loop | None = None, **extra: Any
) -> Iterator[Live]:
    """A gateway on ``backend`` ("sqlite" or "postgresql") with a database of its own under
    ``root`` (or a PostgreSQL schema of its own), serving until the block ends; in ``loop``
    when given (with the stand-ins it talks to), else in a loop of its own."""
    with thread_loop() if loop is None else _given(loop) as runner:
        schema = None
        if backend == "sqlite":
            db_url = f"sqlite:///{root / 'byline.db'}"
        else:
            schema = "f_" + secrets.token_hex(6)
            runner.run(_pg(f"CREATE SCHEMA {schema}"))
            db_url = schema_url(PG_DSN or "", schema)
        starter = started_gateway(db_url, policy_dir, ManualClock(), **extra)
        try:
            gateway = runner.run(starter.__aenter__())
            try:
                yield Live(runner, gateway)
            finally:
                runner.run(starter.__aexit__(None, None, None))
        finally:
            if schema is not None:
                runner.run(_pg(f"DROP SCHEMA {schema} CASCADE"))


@contextmanager
def _given(loop: Loop) -> Iterator[Loop]:
    yield loop
