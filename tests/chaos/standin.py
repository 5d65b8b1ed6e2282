"""The platform stand-in of the crash and fault tests, run as a process of its own.

``python -m tests.chaos.standin CONFIG.json`` serves the strict Mastodon of
``tests/fakes/mastodon.py`` on a free loopback port (printed as ``port N``) with the accounts the
config names, and counts what it receives per Byline post: every status Byline makes carries
``Idempotency-Key: byline-<post id>-v<version>``, so two statuses for one post id are a duplicate,
while a repeated key answered with the status it made the first time is not.

Faults (from the config, seeded): a share of the requests to ``/api/`` answered 500/502/503
before anything is done; a share of status creates stored and then answered by closing the
connection (the answer lost); and every few seconds a burst of 429s with ``Retry-After``. They
go through the stand-in's own fault controls (``tests/fakes/_faults.py``).

With ``honour_keys`` false it forgets every key, as a platform without them would, and
``refuse_rate`` refuses a share of the creates for good (422): the harness's own test shows
that the duplicates and the losses these make are caught.

``GET /chaos/report`` tells what it holds; ``POST /chaos/calm`` turns the faults off.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes import mastodon
from tests.fakes.mastodon import FakeMastodon, create_app

KEY = re.compile(r"^byline-(\d+)-v(\d+)$")
STATUSES = "/api/v1/statuses"


def standin_app(config: dict[str, Any]) -> web.Application:
    """The Mastodon stand-in with the config's accounts and faults."""
    # The chaos runs send thousands of posts per account within minutes: the stock 300 requests
    # per 5 minutes would turn the whole run into a rate-limit test. 429s come from the bursts.
    mastodon.RATE_LIMIT = 1 << 30
    fake = FakeMastodon(host="standin.example")
    for username, token in config["accounts"].items():
        fake.add_account(username, token)
    rng = random.Random(config.get("seed", 17))
    fail_rate = float(config.get("fail_rate", 0.0))
    drop_rate = float(config.get("drop_rate", 0.0))
    burst_every = float(config.get("burst_every", 0.0))
    honour_keys = bool(config.get("honour_keys", True))
    refuse_rate = float(config.get("refuse_rate", 0.0))
    calm = asyncio.Event()
    creates: Counter[str] = Counter()
    injected: Counter[str] = Counter()

    @web.middleware
    async def chaos(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not honour_keys:
            fake._idempotency.clear()  # a platform that ignores the key: a retry is a new status
        # Decided here, handed to the stand-in's fault controls, which the next middleware
        # (the fake's own) applies to this very request: no await comes in between.
        if request.path.startswith("/api/") and not calm.is_set():
            if request.method == "POST" and request.path == STATUSES:
                creates[request.headers.get("Idempotency-Key", "")] += 1
                if rng.random() < drop_rate:
                    fake.faults.drop_next_create()
                    injected["dropped"] += 1
                if rng.random() < refuse_rate:
                    fake.faults.fail_next(1, 422, method=request.method, path=request.path)
                    injected["refused"] += 1
            if rng.random() < fail_rate:
                status = rng.choice((500, 502, 503))
                fake.faults.fail_next(1, status, method=request.method, path=request.path)
                injected[f"failed_{status}"] += 1
        elif request.method == "POST" and request.path == STATUSES:
            creates[request.headers.get("Idempotency-Key", "")] += 1
        return await handler(request)

    async def bursts(app: web.Application) -> Any:
        async def loop() -> None:
            while not calm.is_set():
                await asyncio.sleep(burst_every * (0.5 + rng.random()))
                if calm.is_set():
                    break
                n = rng.randint(5, 30)
                fake.faults.rate_limit_next(n, retry_after=float(rng.randint(1, 3)), method="POST",
                                            path=STATUSES)
                injected["rate_limited"] += n

        task = asyncio.create_task(loop()) if burst_every > 0 else None
        yield
        if task is not None:
            task.cancel()

    async def report(request: web.Request) -> web.Response:
        statuses = [
            {"id": s.id, "account": fake.accounts[s.account_id].username, "key": s.idempotency_key,
             "text": s.text, "deleted": s.deleted}
            for s in fake.statuses(include_deleted=True)
        ]
        return web.json_response({"statuses": statuses, "creates": dict(creates),
                                  "injected": dict(injected), "requests": len(fake.faults.requests)})

    async def calm_down(request: web.Request) -> web.Response:
        calm.set()
        fake.faults.clear()
        return web.json_response({"calm": True})

    app = create_app(fake)
    # Outermost but for the fake's error middleware, so the faults decided reach its own.
    app.middlewares.insert(1, chaos)
    app.cleanup_ctx.append(bursts)
    app.router.add_get("/chaos/report", report)
    app.router.add_post("/chaos/calm", calm_down)
    return app


def main(argv: list[str]) -> int:
    """Serve until SIGTERM; print ``port N`` once listening."""
    config = json.loads(Path(argv[0]).read_text())
    app = standin_app(config)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(f"port {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())  # until SIGTERM ends the process
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
