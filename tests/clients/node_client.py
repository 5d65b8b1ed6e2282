"""Mastodon client libraries from npm driven from the tests: megalodon through ``node/drive.mjs``,
masto (masto.js, under Elk and Phanpy) through ``node/drive-masto.mjs``.

Each library runs unmodified in its own Node.js process; each call is one JSON line each way
(see the scripts' headers). ``tests/clients/node/install.sh`` installs them (``make test`` runs it).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

NODE_DIR = Path(__file__).with_name("node")


@dataclass(frozen=True)
class Answer:
    """What one call gave: ``ok``, the HTTP ``status``, the response's ``headers`` and ``data``."""

    ok: bool
    status: int | None
    headers: dict[str, str]
    data: Any
    message: str = ""


class _NodeLibrary:
    """One npm library in its own Node.js process, driven by ``SCRIPT``."""

    PACKAGE = ""
    SCRIPT = ""

    def __init__(self, base: str) -> None:
        self._base = base
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Self:
        node = shutil.which("node")
        assert node is not None, "Node.js is needed for the npm client tests"
        assert (NODE_DIR / "node_modules" / self.PACKAGE).is_dir(), "run tests/clients/node/install.sh"
        self._proc = await asyncio.create_subprocess_exec(
            node, str(NODE_DIR / self.SCRIPT), self._base, cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    async def call(self, op: str, *args: Any) -> Answer:
        """Run one op of the driver script and give its answer."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"op": op, "args": list(args)}).encode() + b"\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, f"the {self.PACKAGE} driver stopped"
        found = json.loads(line)
        headers = {str(k).lower(): str(v) for k, v in (found.get("headers") or {}).items()}
        return Answer(ok=found["ok"], status=found.get("status"), headers=headers, data=found.get("data"),
                      message=found.get("message", ""))

    async def ok(self, op: str, *args: Any) -> Any:
        """Run one op that must succeed; give its data."""
        answer = await self.call(op, *args)
        assert answer.ok, f"{op} failed: {answer.status} {answer.message} {answer.data}"
        return answer.data


class Megalodon(_NodeLibrary):
    """``async with Megalodon(base) as client``: megalodon pointed at ``base``."""

    PACKAGE = "megalodon"
    SCRIPT = "drive.mjs"


class Masto(_NodeLibrary):
    """``async with Masto(base) as client``: masto.js pointed at ``base`` (ops: ``drive-masto.mjs``)."""

    PACKAGE = "masto"
    SCRIPT = "drive-masto.mjs"
