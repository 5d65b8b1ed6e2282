"""`byline serve --demo` lets the demo people sign in to the pages: its banner links the pages
on the port really bound and prints a fresh password for each person, which works, once a run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest

from tests.test_operator import _env, serving_demo

DEMO_PASSWORD = re.compile(r"^  (alice|bob|carol|dave)\s+([0-9a-f]{16})$", re.MULTILINE)
DEMO_ACCOUNTS = ["cosigned", "delayed", "direct", "managed"]  # the test policies' accounts


async def _signs_in(base: str, name: str, password: str) -> int:
    """Sign in at /signin with a name and password; the status of /queue then."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        async with browser.post(f"{base}/signin", data={"name": name, "password": password},
                                allow_redirects=False) as answer:
            if answer.status != 303:
                return answer.status
        async with browser.get(f"{base}/queue", allow_redirects=False) as queue:
            return queue.status


@pytest.mark.slow
async def test_serve_demo_prints_the_pages_and_passwords_that_work(
    tmp_path: Path, db_url: str, policy_dir: Path
) -> None:
    """The banner links /, /signin, /queue, /audit and each account's /@ page on the port in
    use; each demo person signs in with the printed password and sees their queue (200); a wrong
    password does not; the next run's passwords replace the earlier ones."""
    env = _env(tmp_path, db_url, policy_dir)
    async with serving_demo(env, tmp_path / "first.log") as output:
        port = next(json.loads(line)["port"] for line in output.splitlines() if '"gateway_started"' in line)
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/signin", "/queue", "/audit", *(f"/@{account}" for account in DEMO_ACCOUNTS)):
            assert re.search(rf"^  (?:[a-z ]+:)? +{re.escape(base + path)}$", output, re.MULTILINE), (path, output)
        first = dict(DEMO_PASSWORD.findall(output))
        assert sorted(first) == ["alice", "bob", "carol", "dave"], output
        assert len(set(first.values())) == 4
        for name, password in first.items():
            assert await _signs_in(base, name, password) == 200, name
        assert await _signs_in(base, "alice", first["bob"]) == 401
        async with aiohttp.ClientSession() as visitor:
            for path in ("/", "/signin", "/@direct"):
                async with visitor.get(base + path) as page:
                    assert page.status == 200, path

    async with serving_demo(env, tmp_path / "second.log") as output:
        port = next(json.loads(line)["port"] for line in output.splitlines() if '"gateway_started"' in line)
        base = f"http://127.0.0.1:{port}"
        second = dict(DEMO_PASSWORD.findall(output))
        assert await _signs_in(base, "alice", second["alice"]) == 200
        assert await _signs_in(base, "alice", first["alice"]) == 401
