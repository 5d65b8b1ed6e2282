"""Several workers behind one address (``BYLINE_WORKERS``), run as an operator runs them: the real
`byline serve` with two workers, on SQLite and on PostgreSQL, over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.errors import BylineError
from gateway.services.throttle import Throttle
from tests.audit.logtools import byline
from tests.serve import ServeProcess, children_of
from tests.test_outside import OUTSIDE_POLICIES

DIRECT_POSTS = 150
COSIGNED_POSTS = 6


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has ended


@dataclass
class Workers:
    """`byline serve` with two workers, not yet started, and its log's verifier key."""

    serve: ServeProcess
    key: str


@pytest.fixture
async def two_workers(tmp_path: Path, db_url: str) -> AsyncIterator[Workers]:
    policies = tmp_path / "policies"
    policies.mkdir()
    for name in ("solo", "brand"):
        (policies / f"{name}.yaml").write_text(textwrap.dedent(OUTSIDE_POLICIES[name]).lstrip(), encoding="utf-8")
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policies, workers="2",
                         checkpoint_interval_seconds="0.2", connections_per_address="0")
    keygen = serve.cli("log", "keygen", "--out", str(tmp_path / "log.key"), check=False)
    assert keygen.returncode == 0, keygen.stderr
    try:
        yield Workers(serve, keygen.stdout.strip())
    finally:
        output = serve.stop()
        assert "Traceback" not in output, output


async def _requests_counted(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(base + "/metrics") as resp:
        assert resp.status == 200
        page = await resp.text()
    found = re.search(r'^byline_http_requests_total\{method="POST",route="/v1/posts",status="201"\} (\S+)$',
                      page, re.M)
    return float(found.group(1)) if found else 0.0


async def test_two_workers_share_the_address_and_each_post_goes_out_once(two_workers: Workers) -> None:
    """Two workers serve one port: both take requests; 150 direct posts at once and six co-signed
    ones, each approved by two co-signers whose requests land on either worker, all go out once
    each; the log is one log, which `byline audit verify` accepts; /metrics, whichever worker
    answers, counts every worker's requests; SIGTERM stops them all."""
    serve = two_workers.serve
    tokens = {user: serve.token(user) for user in ("alice", "bob", "carol")}
    await serve.start()
    assert serve.proc is not None
    workers = children_of(serve.proc.pid)
    assert len(workers) == 2, workers

    async def call(session: aiohttp.ClientSession, user: str, method: str, path: str,
                   body: Any = None) -> tuple[int, Any]:
        async with session.request(method, serve.base + path, json=body,
                                   headers={"Authorization": f"Bearer {tokens[user]}"}) as resp:
            return resp.status, await resp.json()

    # A connection each, as 64 apps would: the kernel hands them to either worker.
    connector = aiohttp.TCPConnector(limit=64, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        answers = await asyncio.gather(*(
            call(session, "alice", "POST", "/v1/posts", {"account": "solo", "text": f"Direct {n}"})
            for n in range(DIRECT_POSTS)
        ))
        assert all(status == 201 for status, _ in answers), answers[:3]
        held = []
        for n in range(COSIGNED_POSTS):
            status, post = await call(session, "alice", "POST", "/v1/posts", {"account": "brand", "text": f"Co {n}"})
            assert status == 201 and post["state"] == "held", post
            held.append(post["id"])
        # Each approval a request of its own, the two at once: the two co-signers' may land on
        # different workers; the author's own approval is refused wherever it lands.
        for post_id in held:
            status, body = await call(session, "alice", "POST", f"/v1/posts/{post_id}/approve", {"version": 1})
            assert status == 403, body
            results = await asyncio.gather(*(call(session, user, "POST", f"/v1/posts/{post_id}/approve",
                                                  {"version": 1}) for user in ("bob", "carol")))
            assert [status for status, _ in results] == [200, 200], results
        deadline = time.monotonic() + 30
        while True:
            async with session.get(f"{serve.base}/sandbox/solo.json") as resp:
                solo = [p["text"] for p in (await resp.json())["posts"]]
            async with session.get(f"{serve.base}/sandbox/brand.json") as resp:
                brand = [p["text"] for p in (await resp.json())["posts"]]
            if len(solo) >= DIRECT_POSTS and len(brand) >= COSIGNED_POSTS:
                break
            assert time.monotonic() < deadline, (len(solo), len(brand))
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # anything published twice would show by now
        async with session.get(f"{serve.base}/sandbox/solo.json") as resp:
            solo = [p["text"] for p in (await resp.json())["posts"]]
        assert sorted(solo) == sorted(f"Direct {n}" for n in range(DIRECT_POSTS))
        assert sorted(brand) == sorted(f"Co {n}" for n in range(COSIGNED_POSTS))

        lines = [json.loads(line) for line in serve.log_path.read_text().splitlines() if line.startswith("{")]
        served = Counter(line["worker"] for line in lines
                         if line.get("event") == "request_done" and line.get("path") == "/v1/posts")
        assert sorted(served) == [0, 1], f"a worker took no part: {served}"
        assert sum(served.values()) == DIRECT_POSTS + COSIGNED_POSTS

        # Each worker writes its counts for the others every second: a scrape, whichever
        # worker answers it, counts them all.
        await asyncio.sleep(1.5)
        for _ in range(6):
            assert await _requests_counted(session, serve.base) == DIRECT_POSTS + COSIGNED_POSTS

    await asyncio.sleep(0.5)  # a checkpoint that covers the whole log
    result = await byline("audit", "verify", "--key", two_workers.key, "--url", serve.base, "--no-state",
                          "--no-progress")
    assert result.code == 0, result.text

    supervisor = serve.proc
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=30) == 0
    serve.proc = None
    assert not any(_alive(pid) for pid in workers)


async def test_a_worker_that_dies_takes_the_gateway_down_whole(two_workers: Workers) -> None:
    """A worker killed (an OOM kill, a crash): the others are stopped too and `byline serve`
    exits with an error, for the service manager to start it again; no worker is left behind
    holding the port."""
    serve = two_workers.serve
    await serve.start()
    assert serve.proc is not None
    workers = children_of(serve.proc.pid)
    os.kill(workers[0], signal.SIGKILL)
    assert serve.proc.wait(timeout=30) != 0
    serve.proc = None
    assert not any(_alive(pid) for pid in workers)
    log = serve.log_path.read_text()
    assert '"worker_ended"' in log, log


def test_workers_setting_is_checked(tmp_path: Path) -> None:
    """BYLINE_WORKERS must be a number from 1 to 64: anything else stops `byline serve` at once
    with one line naming the setting."""
    serve = ServeProcess(tmp_path, db_url=f"sqlite:///{tmp_path / 'gateway.db'}", policy_dir=tmp_path, workers="0")
    result = serve.cli("serve", check=False)
    assert result.returncode == 2, result
    assert "BYLINE_WORKERS" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "gateway.db").exists()


@pytest.mark.parametrize(("rate", "shares", "allowed"), [("10/minute", 1, 10), ("10/minute", 2, 5), ("3/hour", 2, 2)])
def test_each_worker_allows_its_share_of_failed_sign_ins(rate: str, shares: int, allowed: int) -> None:
    """Failed sign-ins are counted in each worker's memory: with N workers each allows 1/N of
    BYLINE_SIGNIN_ATTEMPTS (rounded up), so that together they allow about what it says, not N
    times as many."""
    throttle = Throttle(rate, what="sign-in", shares=shares)
    for _ in range(allowed):
        throttle.check("203.0.113.9")
        throttle.failed("203.0.113.9")
    with pytest.raises(BylineError) as refused:
        throttle.check("203.0.113.9")
    assert refused.value.status == 429
