"""The ``bluesky_pds`` fixture: a real Bluesky PDS, started from npm, for the whole test session.

``install.sh`` (a no-op when ``node_modules`` is current) installs ``@atproto/dev-env``; then
``pds.mjs`` starts a PDS with an in-memory PLC directory on a free loopback port and makes the
accounts in ``ACCOUNTS``, each with an app password. The fixture fails the tests that use it
(it never skips them) when Node.js, npm, the install or the PDS does not work.

Register it with ``pytest_plugins = ["tests.platforms.bluesky.fixture"]`` in the root conftest.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import libipld
import pytest

from adapters.bluesky.records import key_refused

HARNESS_DIR = Path(__file__).resolve().parent
ACCOUNTS = ("alice.test", "bob.test", "carol.test")
INSTALL_TIMEOUT_SECONDS = 900.0
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class PdsAccount:
    """An account on the test PDS, with its login password and an app password."""

    handle: str
    did: str
    password: str = field(repr=False)
    app_password: str = field(repr=False)


@dataclass(frozen=True)
class BlueskyPds:
    """Where the test PDS listens, and the accounts made on it."""

    pds_url: str
    accounts: tuple[PdsAccount, ...]
    log_path: Path
    """The harness's stderr: what it reports, including any outside connection it refused."""

    def account(self, handle: str) -> PdsAccount:
        """The account with this handle."""
        for account in self.accounts:
            if account.handle == handle:
                return account
        raise KeyError(handle)


def _tail(text: str, limit: int = 4000) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]


def install_harness() -> None:
    """Run ``install.sh``; fail the test with its output when it does not succeed."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"bluesky_pds: {tool} is not installed; the Bluesky PDS needs Node.js")
    try:
        done = subprocess.run(
            ["bash", str(HARNESS_DIR / "install.sh")],
            cwd=HARNESS_DIR,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"bluesky_pds: install.sh took longer than {INSTALL_TIMEOUT_SECONDS:.0f} s")
    if done.returncode != 0:
        pytest.fail(
            f"bluesky_pds: install.sh failed with exit code {done.returncode}\n"
            f"--- stdout ---\n{_tail(done.stdout)}\n--- stderr ---\n{_tail(done.stderr)}"
        )


def _read(file: IO[str]) -> str:
    file.seek(0)
    return file.read()


def harness_log(pds: BlueskyPds) -> str:
    """What the harness has written to stderr so far."""
    return pds.log_path.read_text(encoding="utf-8", errors="replace")


def start_pds(
    handles: tuple[str, ...] = ACCOUNTS,
    *,
    timeout: float = START_TIMEOUT_SECONDS,
) -> tuple[subprocess.Popen[bytes], BlueskyPds, IO[str]]:
    """Start ``pds.mjs`` and wait for its JSON line; fail with its stderr if it does not come.

    Returns the process, what it announced, and the file its stderr goes to (close it after
    stopping the process). stdin stays an open pipe: the harness stops when it closes, so the
    PDS does not outlive a test run that is killed.
    """
    # Files rather than pipes for the output: nobody has to keep reading them.
    out = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115
    err = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by the caller after the PDS
        mode="w+", encoding="utf-8", prefix="byline-pds-", suffix=".log"
    )
    proc = subprocess.Popen(
        ["node", str(HARNESS_DIR / "pds.mjs"), *handles],
        cwd=HARNESS_DIR,
        stdin=subprocess.PIPE,
        stdout=out,
        stderr=err,
        env={k: v for k, v in os.environ.items() if k != "LOG_DESTINATION"},
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            line = _read(out).split("\n", 1)
            if len(line) == 2:  # a whole line has arrived
                info = json.loads(line[0])
                pds = BlueskyPds(
                    pds_url=str(info["pds_url"]),
                    accounts=tuple(PdsAccount(**account) for account in info["accounts"]),
                    log_path=Path(err.name),
                )
                return proc, pds, err
            if proc.poll() is not None:
                raise RuntimeError(f"the harness exited with code {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no JSON line from the harness within {timeout:.0f} s")
            time.sleep(0.05)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        stop_pds(proc)
        stderr = _read(err)
        stdout = _read(out)
        out.close()
        err.close()
        pytest.fail(
            f"bluesky_pds: the PDS did not start: {exc}\n"
            f"--- stdout ---\n{_tail(stdout)}\n--- stderr ---\n{_tail(stderr)}"
        )
    finally:
        if not out.closed:
            out.close()


def stop_pds(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the harness (it closes the PDS and removes its files); kill it if it hangs."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()


@pytest.fixture(scope="session")
def bluesky_pds() -> Iterator[BlueskyPds]:
    """A running Bluesky PDS with the accounts ``alice.test``, ``bob.test`` and ``carol.test``."""
    install_harness()
    proc, pds, err = start_pds()
    try:
        yield pds
    finally:
        stop_pds(proc)
        err.close()


async def post_records(pds: BlueskyPds, did: str) -> list[dict[str, Any]]:
    """Every post of one account on the PDS, page after page: the PDS is shared by the whole
    run, so an account may well have more than one page."""
    records: list[dict[str, Any]] = []
    params = {"repo": did, "collection": "app.bsky.feed.post", "limit": "100"}
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"{pds.pds_url}/xrpc/com.atproto.repo.listRecords", params=params) as resp:
                assert resp.status == 200, await resp.text()
                page = await resp.json()
            records += page["records"]
            if not page["records"] or not page.get("cursor"):
                return records
            params["cursor"] = page["cursor"]


async def texts_from_now(pds: BlueskyPds, *dids: str) -> Callable[[str], Awaitable[list[str]]]:
    """What each account of ``dids`` posts from now on, to be read later: the PDS is shared by
    the whole run, so an account's posts from before are left out."""
    before = {did: {r["uri"] for r in await post_records(pds, did)} for did in dids}

    async def new_texts(did: str) -> list[str]:
        return [r["value"]["text"] for r in await post_records(pds, did) if r["uri"] not in before[did]]

    return new_texts


# ---- what a Bluesky app makes by itself ------------------------------------------------------

_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_last_tid_micros = 0


def app_tid() -> str:
    """A record key as the Bluesky app makes one for each post of a thread (``TID.next``): the
    time in microseconds and a random clock id, base32-sortable, each later than the last. A key
    that spells one of the words the PDS refuses in record keys (a few in ten thousand) is drawn
    again: the PDS would refuse it whoever sent it, and a test about something else must not
    fail by chance."""
    global _last_tid_micros
    while True:
        micros = max(time.time_ns() // 1000, _last_tid_micros + 1)
        _last_tid_micros = micros
        value = (micros << 10) | secrets.randbelow(1024)
        tid = "".join(_TID_ALPHABET[(value >> (5 * i)) & 31] for i in range(12, -1, -1))
        if not key_refused(tid):
            return tid


def app_cid(record: dict[str, Any]) -> str:
    """The CID the Bluesky app computes for a record it built (its ``computeCid``: DAG-CBOR,
    SHA-256, CIDv1), before anything is written; the SDK has no helper for it."""
    digest = hashlib.sha256(libipld.encode_dag_cbor(record)).digest()
    return str(libipld.encode_cid(bytes((0x01, 0x71, 0x12, 0x20)) + digest))


def write_bluesky_policy(
    policy_dir: Path, name: str, *, handle: str, pds: str, credential_env: str, tier: str = "co-signed",
    owner: str = "alice", approvers: tuple[str, ...] = ("bob",),
) -> Path:
    """The policy of account ``name`` on the Bluesky account ``handle`` at ``pds``, its app
    password in the environment variable ``credential_env``: co-signed by ``approvers`` (one of
    them) unless ``tier`` says otherwise."""
    from tests.conftest import write_policy

    approvals = f"approvals: {{required: 1, from: [{', '.join(approvers)}]}}" if tier == "co-signed" else ""
    return write_policy(policy_dir, name, f"""
        account: {name}
        platform: bluesky
        handle: {handle}
        pds: {pds}
        credentials: env:{credential_env}
        tier: {tier}
        owner: {owner}
        {approvals}
    """)
