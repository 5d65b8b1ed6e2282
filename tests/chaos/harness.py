"""The crash and fault harness (issue 17): real ``byline serve`` processes, a real PostgreSQL,
real SIGKILL, and a platform stand-in process that counts what it receives per post.

A :class:`Scenario` says how many replicas, posts and kills, which database, which platform
faults, and whether PostgreSQL itself is restarted. :func:`run` drives it and checks afterwards:

- every post that reached ``scheduled`` and was claimed is on its platform exactly once, and a
  post that never went out is not there at all (the stand-in knows each status by the
  ``Idempotency-Key`` Byline sent, ``byline-<post id>-v<version>``);
- nothing is lost: every submission answered 2xx is in the database and ended as the workload
  intends (published; cancelled, rejected or dismissed when that was asked and answered; held
  only while its approvals never arrived);
- no approval is counted twice, nothing is stuck in ``publishing`` or due and unsent;
- one policy record per version: the ``policy_versions`` rows and the log's policy entries of
  each account are versions 1..n, the same n, and n is what the run's changes make;
- ``byline audit verify`` passes on ``byline audit export`` of the log.

Each post's text carries a marker ``[chaos N]``, so a post is found whatever answer was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.chaos.postgres import PrivateCluster, private_cluster, scratch_schema
from tests.serve import ServeProcess

MARKER = re.compile(r"\[chaos (\d+)\]")
KEY = re.compile(r"^byline-(\d+)-v(\d+)$")
ACCOUNTS = ("chaos-direct", "chaos-delayed", "chaos-cosigned", "chaos-managed")
PEOPLE = ("alice", "bob", "carol", "dave")
FINAL_ELSEWHERE = {"cancelled", "rejected", "dismissed", "expired"}


# -- what to run ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One run of the harness."""

    name: str
    posts: int
    database: str = "postgresql"
    """``postgresql`` (a scratch schema on the machine's server), ``private`` (a cluster of the
    run's own, which it restarts) or ``sqlite``."""
    replicas: int = 3
    kill_every: float = 0.0
    """Seconds between SIGKILLs of a random replica (0: none)."""
    kills_at_least: int = 3
    """With ``kill_every``, kills also come at this many evenly spaced points of the load, so a
    short (CI-sized) run has them too."""
    postgres_restarts: int = 0
    """Restarts of the private PostgreSQL, spread evenly over the posts (fast shutdowns and
    SIGKILLs of its postmaster in turn)."""
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    burst_every: float = 0.0
    policy_change: bool = True
    """Mid-run, the delayed account's delay and the direct account's rules change on one replica,
    then on the others."""
    honour_keys: bool = True
    """False: the stand-in forgets every Idempotency-Key (a platform that makes a second status
    for a repeated key), which the harness must catch; only its own test sets it."""
    refuse_rate: float = 0.0
    """Creates the stand-in refuses for good (422): posts that fail, which the harness must
    count as lost; only its own test sets it."""
    workers: int = 1
    """Processes each replica runs (``BYLINE_WORKERS``); a kill takes them all at once."""
    concurrency: int = 12
    drain_seconds: float = 120.0
    """How long the drain waits for the next post to go out before it calls the rest stuck."""
    account_check_seconds: float = 60.0
    """The replicas' ``BYLINE_ACCOUNT_CHECK_SECONDS``: an account whose credential the platform
    did not identify under the faults holds its posts until the next check."""
    seed: int = 17


@dataclass
class Intent:
    """What the workload meant to happen to one post, and what it was answered."""

    n: int
    account: str
    surface: str
    plan: str
    """``publish``, ``cancel``, ``reject`` or ``dismiss``."""
    accepted: bool = False
    """The submission was answered 2xx."""
    post_id: str | None = None
    followed: bool = True
    """Every follow-up (approvals, adoption) was answered 2xx (or a 409 after a lost answer)."""
    undone: bool = False
    """The cancel, reject or dismiss asked for was answered 2xx."""
    notes: list[str] = field(default_factory=list)
    refused: int | None = None
    """The status a submission not answered 2xx got (0: no answer at all)."""


@dataclass
class Result:
    """What one scenario found; ``problems`` says each failure precisely."""

    scenario: str
    posts: int = 0
    published: int = 0
    duplicates: int = 0
    lost: int = 0
    stuck: int = 0
    policy_records: str = ""
    verify: str = ""
    kills: int = 0
    restarts_of_postgres: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    """The faults the stand-in injected, by kind."""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No duplicate, loss, stuck post, bad policy history or failed verification."""
        return not self.problems


def table(results: list[Result]) -> str:
    """The summary table the harness prints."""
    head = ("scenario", "posts", "published", "duplicates", "lost", "stuck", "policy records", "verify",
            "kills", "seconds")
    rows = [head] + [
        (r.scenario, str(r.posts), str(r.published), str(r.duplicates), str(r.lost), str(r.stuck),
         r.policy_records, r.verify, str(r.kills + r.restarts_of_postgres), f"{r.seconds:.0f}")
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- the stand-in ----------------------------------------------------------------------------------


class StandIn:
    """The Mastodon stand-in in a process of its own (``tests/chaos/standin.py``)."""

    def __init__(self, workdir: Path, scenario: Scenario) -> None:
        self.tokens = {account: f"standin-{account}-{random.Random(account).getrandbits(64):x}"
                       for account in ACCOUNTS}
        config = workdir / "standin.json"
        config.write_text(json.dumps({
            "accounts": {account: token for account, token in self.tokens.items()},
            "seed": scenario.seed, "fail_rate": scenario.fail_rate, "drop_rate": scenario.drop_rate,
            "burst_every": scenario.burst_every, "honour_keys": scenario.honour_keys,
            "refuse_rate": scenario.refuse_rate,
        }))
        self.log = workdir / "standin.log"
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.chaos.standin", str(config)],
                                     stdout=self._out, stderr=subprocess.STDOUT)
        self.port = 0

    async def started(self) -> None:
        """Wait for its ``port N`` line."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            found = re.search(rb"^port (\d+)$", self.log.read_bytes(), re.M)
            if found:
                self.port = int(found.group(1))
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the stand-in did not start: {self.log.read_text()}")

    @property
    def base(self) -> str:
        """Its address."""
        return f"http://127.0.0.1:{self.port}"

    async def report(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """What it holds: every status, with the key it was made with."""
        async with session.get(self.base + "/chaos/report") as resp:
            assert resp.status == 200
            found: dict[str, Any] = await resp.json()
            return found

    async def calm(self, session: aiohttp.ClientSession) -> None:
        """No more faults."""
        async with session.post(self.base + "/chaos/calm") as resp:
            assert resp.status == 200

    def stop(self) -> None:
        """Stop it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


# -- policies ------------------------------------------------------------------------------------------


def write_policies(directory: Path, *, instance: str, tokens: dict[str, str], changed: bool = False) -> None:
    """The four accounts, one per tier, on the stand-in; ``changed``: the mid-run change (the
    delayed account's delay, a rule on the direct account)."""
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    for account, token in tokens.items():
        (secrets / f"{account}.token").write_text(token + "\n")
        (secrets / f"{account}.token").chmod(0o600)
    common = "platform: mastodon\ninstance: {instance}\ncredentials: file:secrets/{account}.token\n"
    rule = "rules:\n  - name: {name}\n    action: hold\n    any_words: [{word}]\n    reason: {reason}\n"
    bodies = {
        "chaos-direct": "tier: direct\nowner: alice\n" + (
            rule.format(name="embargo", word="embargoed", reason="Check the embargo first") if changed else ""),
        "chaos-delayed": f"tier: delayed\nowner: alice\ndelay: {'3s' if changed else '2s'}\n",
        "chaos-cosigned": ("tier: co-signed\nowner: alice\nwriters: [alice]\n"
                           "approvals:\n  required: 2\n  from: [bob, carol, dave]\n"),
        "chaos-managed": "tier: managed\nowner: dave\nwriters: [bob, carol]\nsuggesters: [dave]\n",
    }
    for account, body in bodies.items():
        text = f"account: {account}\nhandle: \"@{account}\"\n" + common.format(
            instance=instance, account=account) + body
        path = directory / f"{account}.yaml"
        # Written beside and renamed: a reload never reads half a file.
        tmp = directory / f".{account}.yaml.tmp"
        tmp.write_text(text)
        tmp.replace(path)


# -- replicas ------------------------------------------------------------------------------------------


class Replica:
    """One ``byline serve`` with its own policy directory and copy of the log key."""

    def __init__(self, index: int, serve: ServeProcess, policy_dir: Path) -> None:
        self.index = index
        self.serve = serve
        self.policy_dir = policy_dir
        self.up = False
        self.starts = 0
        self.exits: list[int] = []
        """Exit codes of runs that ended by themselves."""
        self.lock = asyncio.Lock()

    @property
    def base(self) -> str:
        """Its current address (a restart may change it)."""
        return self.serve.base

    async def start(self) -> None:
        """Start it and wait until it is ready."""
        await self.serve.start()
        self.starts += 1
        self.up = True

    def alive(self) -> bool:
        """Its process runs; one that ended by itself is noted."""
        proc = self.serve.proc
        if proc is None:
            return False
        code = proc.poll()
        if code is None:
            return True
        self.exits.append(code)
        self.serve.proc = None
        self.up = False
        return False

    def kill(self) -> None:
        """SIGKILL."""
        self.up = False
        if self.serve.proc is not None:
            self.serve.kill()


# -- the run ---------------------------------------------------------------------------------------------


class Run:
    """Everything one scenario has running."""

    def __init__(self, scenario: Scenario, workdir: Path, database_url: str,
                 cluster: PrivateCluster | None, say: Callable[[str], None]) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.database_url = database_url
        self.cluster = cluster
        self.say = say
        self.rng = random.Random(scenario.seed)
        self.replicas: list[Replica] = []
        self.tokens: dict[str, str] = {}
        self.app_tokens: dict[str, str] = {}
        self.intents: list[Intent] = []
        self.kills = 0
        self.pg_restarts = 0
        self.policy_changes = 0
        self.verifier_key = ""
        self.standin: StandIn | None = None
        self.session: aiohttp.ClientSession | None = None
        self.loading = True
        self.done = 0
        """Posts the workload has seen through."""
        self.errors: Counter[int] = Counter()
        """5xx answers, by status (503 is the one a database away should give)."""
        self.crashes: list[str] = []
        """The first 5xx answers other than 503: Byline's own failures."""

    # -- setting up --

    async def setup(self) -> None:
        """The stand-in, the policy directories, the key, the tokens and the replicas."""
        self.standin = StandIn(self.workdir, self.scenario)
        await self.standin.started()
        for index in range(self.scenario.replicas):
            home = self.workdir / f"replica-{index}"
            home.mkdir()
            policies = home / "policies"
            write_policies(policies, instance=self.standin.base, tokens=self.standin.tokens)
            serve = ServeProcess(
                home, db_url=self.database_url, policy_dir=policies,
                publish_lease_seconds="10", connections_per_address="0", checkpoint_interval_seconds="1",
                scheduler_interval_seconds="0.2", workers=str(self.scenario.workers),
                account_check_seconds=str(self.scenario.account_check_seconds),
            )
            self.replicas.append(Replica(index, serve, policies))
        first = self.replicas[0].serve
        # The key and the tokens are made as `byline log keygen` and `byline token create` make
        # them, in this process: each command would cost a Python start-up.
        from gateway.audit.keys import write_new_key
        from gateway.clock import SystemClock
        from gateway.services.identity import Identity
        from gateway.storage.db import open_database

        signer = write_new_key(first.workdir / "log.key", "byline.local/log")
        self.verifier_key = signer.verifier().to_text()
        for replica in self.replicas[1:]:
            # Each replica has its own copy of the one key, as from a mounted secret.
            shutil.copy(first.workdir / "log.key", replica.serve.workdir / "log.key")
            (replica.serve.workdir / "log.key").chmod(0o600)
        db = await open_database(self.database_url)
        try:
            identity = Identity(db, SystemClock())
            for person in PEOPLE:
                self.tokens[person] = await identity.create(user=person, label="chaos")
            for account in ("chaos-direct", "chaos-delayed"):
                self.app_tokens[account] = await identity.create(user="alice", account=account, label="chaos")
        finally:
            await db.close()
        await asyncio.gather(*(r.start() for r in self.replicas))

    # -- talking to the gateway --

    async def _replica(self, *, avoid: Replica | None = None) -> Replica:
        """A random replica that is up (waiting for one if none is)."""
        while True:
            up = [r for r in self.replicas if r.up and r is not avoid] or [r for r in self.replicas if r.up]
            if up:
                return self.rng.choice(up)
            await asyncio.sleep(0.05)

    async def request(self, method: str, path: str, *, person: str | None = None, token: str | None = None,
                      json_body: Any = None, form: dict[str, str] | None = None,
                      headers: dict[str, str] | None = None, retry: bool = True,
                      deadline: float = 90.0) -> tuple[int, Any]:
        """One call on a random replica. With ``retry``, a call that got no answer (the replica
        died, or the database is away: 5xx) is made again on another replica until ``deadline``;
        the status is then the last one, 0 for no answer at all."""
        assert self.session is not None
        auth = {"Authorization": f"Bearer {token or self.tokens[person or 'alice']}"}
        give_up = time.monotonic() + deadline
        last: Replica | None = None
        status, body = 0, None
        while True:
            replica = await self._replica(avoid=last)
            try:
                async with self.session.request(method, replica.base + path, json=json_body, data=form,
                                                headers={**auth, **(headers or {})}) as resp:
                    status = resp.status
                    body = await resp.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError) as exc:
                status, body = 0, repr(exc)
            if status >= 500:
                self.errors[status] += 1
                if status != 503 and len(self.crashes) < 20:
                    self.crashes.append(f"{method} {re.sub(r'[0-9]{6,}', '{id}', path)}: {status} {str(body)[:200]}")
            if (status and status < 500) or not retry or time.monotonic() > give_up:
                return status, body
            last = replica
            await asyncio.sleep(0.1 + self.rng.random() * 0.3)

    # -- the workload --

    async def one_post(self, n: int) -> None:
        """Submit post ``n`` through some surface and see it through its tier."""
        account = ACCOUNTS[n % 4]
        roll = self.rng.random()
        text = f"Post {n} of {self.scenario.name} [chaos {n}]"
        if account == "chaos-direct":
            intent = Intent(n, account, "mastodon" if roll < 0.5 else "native", "publish")
        elif account == "chaos-delayed":
            intent = Intent(n, account, "mastodon" if roll < 0.3 else "native",
                            "cancel" if roll > 0.85 else "publish")
        elif account == "chaos-cosigned":
            intent = Intent(n, account, "native", "reject" if roll > 0.9 else "publish")
        else:
            intent = Intent(n, account, "native", "dismiss" if roll > 0.9 else "publish")
        self.intents.append(intent)
        author = "dave" if account == "chaos-managed" else "alice"
        if intent.surface == "mastodon":
            # A Mastodon app's retry with its Idempotency-Key is safe: the call is made again
            # until it is answered.
            status, body = await self.request(
                "POST", "/api/v1/statuses", token=self.app_tokens[account], form={"status": text},
                headers={"Idempotency-Key": f"chaos-{self.scenario.name}-{n}"})
            while status == 409 and self.loading:  # the first try is still being posted, or died so
                await asyncio.sleep(0.5)
                status, body = await self.request(
                    "POST", "/api/v1/statuses", token=self.app_tokens[account], form={"status": text},
                    headers={"Idempotency-Key": f"chaos-{self.scenario.name}-{n}"}, deadline=10)
                if status == 409:
                    intent.notes.append("Idempotency-Key held by a submission that died")
                    break
        else:
            # A native submission has no key: it is made once, and a lost answer leaves it unknown.
            status, body = await self.request("POST", "/v1/posts", person=author,
                                              json_body={"account": account, "text": text}, retry=False)
        if not 200 <= status < 300:
            intent.notes.append(f"submission answered {status}: {str(body)[:200]}")
            intent.refused = status
            return
        intent.accepted = True
        intent.post_id = str(body["id"])
        if account == "chaos-delayed" and intent.plan == "cancel":
            status, body = await self.request("POST", f"/v1/posts/{intent.post_id}/cancel", person="alice")
            intent.undone = status == 200
            if status != 200:
                intent.notes.append(f"cancel answered {status}: {str(body)[:200]}")
        elif account == "chaos-cosigned":
            await self.cosign(intent, int(body["version"]))
        elif account == "chaos-managed":
            await self.adopt(intent)

    async def _decide(self, intent: Intent, path: str, person: str, body: dict[str, Any]) -> bool:
        """A decision answered 2xx, or 409 after an attempt whose answer was lost (it was made)."""
        status, answer = await self.request("POST", path, person=person, json_body=body)
        if 200 <= status < 300:
            return True
        intent.notes.append(f"{path} by {person} answered {status}: {str(answer)[:200]}")
        return False

    async def cosign(self, intent: Intent, version: int) -> None:
        """Two approvals (from bob and carol, on random replicas; bob's sometimes sent twice at
        once, to two replicas), or carol's rejection."""
        base = f"/v1/posts/{intent.post_id}"
        if intent.plan == "reject":
            intent.undone = await self._decide(intent, base + "/reject", "carol",
                                               {"version": version, "reason": "Not today"})
            return
        if self.rng.random() < 0.15:
            # The same approval twice at once, on two replicas: it may count once.
            both = await asyncio.gather(
                self.request("POST", base + "/approve", person="bob", json_body={"version": version}),
                self.request("POST", base + "/approve", person="bob", json_body={"version": version}),
            )
            codes = sorted(s for s, _ in both)
            if not any(200 <= s < 300 for s in codes):
                intent.followed = False
                intent.notes.append(f"bob's doubled approval answered {codes}")
        elif not await self._decide(intent, base + "/approve", "bob", {"version": version}):
            intent.followed = False
        if not await self._decide(intent, base + "/approve", "carol", {"version": version}):
            intent.followed = False

    async def adopt(self, intent: Intent) -> None:
        """Bob adopts the suggestion (or carol dismisses it) on a random replica."""
        base = f"/v1/posts/{intent.post_id}"
        if intent.plan == "dismiss":
            intent.undone = await self._decide(intent, base + "/dismiss", "carol", {"reason": "Off topic"})
            return
        if not await self._decide(intent, base + "/adopt", "bob", {"version": 1}):  # as suggested
            intent.followed = False

    async def workload(self) -> None:
        """Every post, ``concurrency`` at a time; the policy change on the way."""
        numbers = iter(range(self.scenario.posts))

        async def worker() -> None:
            for n in numbers:
                await self.one_post(n)
                self.done += 1
                if self.scenario.policy_change and self.done in self._change_points():
                    await self.change_policies(self.done)

        await asyncio.gather(*(worker() for _ in range(self.scenario.concurrency)))

    def _change_points(self) -> set[int]:
        return {self.scenario.posts * 2 // 5, self.scenario.posts * 3 // 5}

    async def change_policies(self, done: int) -> None:
        """First point: one replica's files change; second point: everyone else's."""
        assert self.standin is not None
        first = done == self.scenario.posts * 2 // 5
        targets = self.replicas[:1] if first else self.replicas[1:]
        for replica in targets:
            write_policies(replica.policy_dir, instance=self.standin.base, tokens=self.standin.tokens,
                           changed=True)
        if first:
            self.policy_changes = 1
        self.say(f"  policy files changed on replica(s) {[r.index for r in targets]} after {done} posts")

    # -- the chaos --

    async def killer(self) -> None:
        """Every few seconds, SIGKILL a random replica that is up, and start it again a moment
        later (in the background: the next kill may come while it starts; one replica is always
        left up when there are several)."""
        every = self.scenario.kill_every
        restarts: set[asyncio.Task[None]] = set()

        async def restart(victim: Replica) -> None:
            async with victim.lock:
                await asyncio.sleep(self.rng.random() * (1.0 if len(self.replicas) > 1 else 0.2))
                await victim.start()

        count = self.scenario.kills_at_least
        points = [self.scenario.posts * (i + 1) // (count + 1) for i in range(count)]
        gap = every * (0.5 + self.rng.random())
        last = time.monotonic()
        while self.loading:
            await asyncio.sleep(0.05)
            due = bool(points) and self.done >= points[0]
            if not (due or time.monotonic() - last >= gap):
                continue
            up = [r for r in self.replicas if r.up and not r.lock.locked()]
            if not up or (len(self.replicas) > 1 and len(up) < 2):
                # The one killed before is still starting: the next gap counts from its return.
                last = time.monotonic()
                continue
            if due:
                points.pop(0)
            gap, last = every * (0.5 + self.rng.random()), time.monotonic()
            victim = self.rng.choice(up)
            victim.kill()
            self.kills += 1
            task = asyncio.create_task(restart(victim))
            restarts.add(task)
            task.add_done_callback(restarts.discard)
        await asyncio.gather(*restarts)

    async def supervisor(self) -> None:
        """A replica that ended by itself is started again, as systemd or Kubernetes would."""
        while self.loading:
            await asyncio.sleep(0.5)
            for replica in self.replicas:
                if replica.up and not replica.lock.locked() and not replica.alive():
                    async with replica.lock:
                        self.say(f"  replica {replica.index} exited by itself ({replica.exits[-1]}); "
                                 "starting it again")
                        await replica.start()

    async def postgres_restarter(self) -> None:
        """Restart the private PostgreSQL at evenly spaced points of the load: a fast shutdown
        (``pg_ctl restart -m fast``) and a SIGKILL of its postmaster in turn."""
        assert self.cluster is not None
        count = self.scenario.postgres_restarts
        points = [self.scenario.posts * (i + 1) // (count + 1) for i in range(count)]
        for point in points:
            while self.loading and self.done < point:  # noqa: ASYNC110 - the workers count, nothing signals
                await asyncio.sleep(0.05)
            if not self.loading:
                return
            kill = self.pg_restarts % 2 == 1
            self.say(f"  PostgreSQL {'SIGKILLed' if kill else 'restarted'} after {self.done} posts")
            if kill:
                await asyncio.to_thread(self.cluster.kill, 1.0 + self.rng.random() * 2)
            else:
                await asyncio.to_thread(self.cluster.restart)
            self.pg_restarts += 1

    # -- afterwards --

    async def checkpointed(self, *, within: float = 10.0) -> None:
        """Wait until a signed checkpoint covers the whole log (the replicas sign one a second),
        or ``within`` seconds have passed; the verification then covers every entry."""
        give_up = time.monotonic() + within
        while time.monotonic() < give_up:
            with contextlib.suppress(Exception):  # the database coming back: ask again
                rows = await read_rows(
                    self.database_url, "SELECT (SELECT size FROM log_state WHERE id = 1) AS size, "
                    "(SELECT MAX(size) FROM log_checkpoints) AS signed")
                if rows and rows[0]["signed"] is not None and int(rows[0]["signed"]) >= int(rows[0]["size"]):
                    return
            await asyncio.sleep(0.1)

    async def drain(self) -> str | None:
        """Wait until nothing is publishing or due; None, or what was still so once nothing had
        gone out for ``drain_seconds`` (a backlog going out slowly is not stuck)."""
        stall = self.scenario.drain_seconds
        deadline = time.monotonic() + stall
        last, remaining = "", None
        while time.monotonic() < deadline:
            for replica in self.replicas:
                if not replica.alive() and not replica.lock.locked():
                    await replica.start()
            try:
                rows = await read_rows(self.database_url, "SELECT state, COUNT(*) AS n FROM posts "
                                       "WHERE state IN ('publishing', 'scheduled') GROUP BY state")
            except Exception as exc:  # the database coming back: try again
                last = repr(exc)
                await asyncio.sleep(0.5)
                continue
            if not rows:
                return None
            count = sum(int(r["n"]) for r in rows)
            if remaining is None or count < remaining:
                remaining, deadline = count, time.monotonic() + stall
            last = ", ".join(f"{r['n']} {r['state']}" for r in rows)
            await asyncio.sleep(0.2)
        return last


async def read_rows(database_url: str, query: str, *args: Any) -> list[dict[str, Any]]:
    """Rows from the gateway's database, through Byline's own storage layer (either dialect)."""
    from gateway.storage.db import open_database

    db = await open_database(database_url)
    try:
        async with db.read() as txn:
            return [dict(row) for row in await txn.fetchall(query, *args)]
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def _database(scenario: Scenario, workdir: Path) -> AsyncIterator[tuple[str, PrivateCluster | None]]:
    if scenario.database == "sqlite":
        yield f"sqlite:///{workdir / 'byline.db'}", None
    elif scenario.database == "private":
        with private_cluster() as cluster:
            yield cluster.url, cluster
    else:
        async with scratch_schema(f"byline_chaos_{scenario.name.replace('-', '_')}_{os.getpid()}") as url:
            yield url, None


async def run(scenario: Scenario, *, say: Callable[[str], None] = print, keep: Path | None = None) -> Result:
    """Run one scenario and check what it left; ``keep``: the directory for its logs (else a
    temporary one, removed after)."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"byline-chaos-{scenario.name}-", dir=keep))
    result = Result(scenario=scenario.name)
    say(f"{scenario.name}: {scenario.posts} posts, {scenario.replicas} replica(s) on {scenario.database}"
        f" (logs in {workdir})")
    try:
        async with _database(scenario, workdir) as (url, cluster):
            chaos = Run(scenario, workdir, url, cluster, say)
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                chaos.session = session
                try:
                    await chaos.setup()
                    say(f"  set up after {time.monotonic() - started:.0f} s")
                    helpers: list[Awaitable[None]] = [chaos.supervisor()]
                    if scenario.kill_every:
                        helpers.append(chaos.killer())
                    if scenario.postgres_restarts:
                        helpers.append(chaos.postgres_restarter())
                    tasks = [asyncio.ensure_future(h) for h in helpers]
                    try:
                        await chaos.workload()
                    finally:
                        chaos.loading = False
                        await asyncio.gather(*tasks, return_exceptions=True)
                        for t in tasks:
                            if t.done() and not t.cancelled() and t.exception() is not None:
                                raise t.exception()  # type: ignore[misc]
                    say(f"  load done after {time.monotonic() - started:.0f} s: {chaos.kills} kills, "
                        f"{chaos.pg_restarts} PostgreSQL restarts; draining")
                    assert chaos.standin is not None
                    if chaos.scenario.fail_rate or chaos.scenario.burst_every:
                        # The faults stop so the backlog goes out; what they did stays counted.
                        await chaos.standin.calm(session)
                    left = await chaos.drain()
                    say(f"  drained after {time.monotonic() - started:.0f} s")
                    # Let a checkpoint cover the whole log, then stop every replica gracefully.
                    await chaos.checkpointed()
                    report = await chaos.standin.report(session)
                finally:
                    for replica in chaos.replicas:
                        replica.serve.stop()
                    if chaos.standin is not None:
                        chaos.standin.stop()
                await check(chaos, report, left, result)
                say(f"  checked after {time.monotonic() - started:.0f} s")
    finally:
        result.seconds = time.monotonic() - started
        if keep is None and result.ok:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not result.ok:
            result.notes.append(f"logs kept in {workdir}")
    return result


# -- the checks ----------------------------------------------------------------------------------------


async def check(chaos: Run, report: dict[str, Any], left: str | None, result: Result) -> None:
    """Everything the harness promises, from the database, the stand-in and the log."""
    url = chaos.database_url
    result.kills = chaos.kills
    result.restarts_of_postgres = chaos.pg_restarts
    result.injected = dict(report.get("injected", {}))
    for replica in chaos.replicas:
        if replica.exits:
            result.notes.append(f"replica {replica.index} exited by itself {len(replica.exits)} time(s): "
                                f"{replica.exits}")
    posts = await read_rows(url, "SELECT id, account, state, text, version, remote_id, idempotency_key, "
                                 "suggested_by, adopted_from, adopted_into, attempts, last_error, publish_at "
                                 "FROM posts")
    entries = [json.loads(bytes(r["entry"])) for r in await read_rows(
        url, "SELECT entry FROM log_entries ORDER BY idx")]
    approvals = await read_rows(url, "SELECT post_id, version, approver, decision FROM approvals")
    versions = await read_rows(url, "SELECT account, version FROM policy_versions ORDER BY account, version")

    problems = result.problems
    by_id = {p["id"]: p for p in posts}
    # -- the platform: every status made for a post, by the key it came with
    on_platform: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for status in report["statuses"]:
        found = KEY.match(status["key"] or "")
        if found is None:
            result.duplicates += 1
            problems.append(f"a status Byline made without its key: {status}")
            continue
        on_platform[found.group(1)].append(status)
    for post_id, statuses in on_platform.items():
        if len(statuses) > 1:
            result.duplicates += len(statuses) - 1
            problems.append(f"post {post_id} is on its platform {len(statuses)} times: "
                            f"{[(s['id'], s['key']) for s in statuses]}; "
                            f"{_history(entries, post_id)}")
        if post_id not in by_id:
            result.duplicates += len(statuses)
            problems.append(f"a status for post {post_id}, which the database does not have")
    claimed = {e["post"] for e in entries if e["type"] == "post.publishing"}
    # -- each post in the database
    for post in posts:
        state, count = post["state"], len(on_platform.get(post["id"], []))
        if state == "published":
            result.published += 1
            if count == 0:
                result.lost += 1
                problems.append(f"post {post['id']} is published in Byline but not on its platform; "
                                f"{_history(entries, post['id'])}")
            elif post["remote_id"] not in {s["id"] for s in on_platform[post["id"]]}:
                problems.append(f"post {post['id']} names remote {post['remote_id']}, which is not the "
                                f"status made for it")
        elif state == "publishing":
            result.stuck += 1
            problems.append(f"post {post['id']} is stuck in publishing; {_history(entries, post['id'])}")
        elif state == "scheduled":
            result.stuck += 1
            problems.append(f"post {post['id']} is still scheduled (due {post['publish_at']}, "
                            f"attempts {post['attempts']}, last error {post['last_error']!r})")
        elif count:
            # Out on its platform, yet Byline says otherwise: it lost track (a second copy
            # would have been counted above).
            if state != "failed":
                result.lost += 1
            problems.append(f"post {post['id']} is {state} in Byline but on its platform {count} time(s); "
                            f"{_history(entries, post['id'])}")
        elif post["id"] in claimed and state != "failed":
            result.lost += 1
            problems.append(f"post {post['id']} was claimed for publishing but is {state}; "
                            f"{_history(entries, post['id'])}")
        if state == "failed":
            result.lost += 1
            problems.append(f"post {post['id']} failed: {post['last_error']!r}")
    if left is not None:
        problems.append(f"still {left} when the drain ended")
    # -- each intent: found, and ended as meant
    by_marker: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for post in posts:
        found = MARKER.search(post["text"])
        if found is None:
            problems.append(f"post {post['id']} is not one of the workload's: {post['text']!r}")
            continue
        by_marker[int(found.group(1))].append(post)
    result.posts = len(chaos.intents)
    unanswered = sum(not i.accepted for i in chaos.intents)
    unfollowed = sum(i.accepted and not i.followed for i in chaos.intents)
    if unanswered or unfollowed:
        codes = Counter(i.refused for i in chaos.intents if not i.accepted)
        result.notes.append(f"{unanswered} submission(s) got no 2xx (a native one is not sent twice; "
                            f"answers {dict(codes)}), {unfollowed} post(s) lost a follow-up answer")
    if chaos.errors:
        result.notes.append(f"5xx answers (each tried again): {dict(sorted(chaos.errors.items()))}")
    if chaos.crashes:
        # A gateway answers before it publishes, so a failing platform never reaches a client, and
        # a database away is a 503 with its message: any other 5xx is Byline's own failure.
        problems.append(f"{sum(n for s, n in chaos.errors.items() if s != 503)} answer(s) were a 5xx other "
                        f"than 503: {chaos.crashes}")
    held_keys = [i.n for i in chaos.intents if i.surface == "mastodon" and i.refused == 409 and not by_marker.get(i.n)]
    if held_keys:
        # The app is told its key is in use on every retry, and no post exists: its post is lost.
        result.lost += len(held_keys)
        problems.append(f"{len(held_keys)} Mastodon submission(s) answered 409 on every retry with their "
                        f"Idempotency-Key, and no post stored: [chaos {held_keys[:20]}]")
    for intent in chaos.intents:
        if intent.refused == 503 and by_marker.get(intent.n):
            # Byline says a 503 stored nothing; a commit whose acknowledgement was lost with the
            # connection is the one way it can be wrong, and the client is then told to retry.
            result.notes.append(f"post [chaos {intent.n}] was answered 503 and yet stored: "
                                f"{[(p['id'], p['state']) for p in by_marker[intent.n]]}")
    for intent in chaos.intents:
        mine = by_marker.get(intent.n, [])
        # A managed account's suggestion is one post, and its adoption another (adopted_from).
        suggestions = [p for p in mine if intent.account == "chaos-managed" and p["adopted_from"] is None]
        heads = [p for p in mine if p not in suggestions]
        what = f"post [chaos {intent.n}] ({intent.account}, {intent.plan}, via {intent.surface})"
        if not mine:
            if intent.accepted:
                result.lost += 1
                problems.append(f"{what} was answered 2xx (id {intent.post_id}) but is not in the database")
            continue
        if len(suggestions) > 1 or len(heads) > 1:
            result.duplicates += len(mine) - 1
            problems.append(f"{what} is in the database {len(mine)} times: "
                            f"{[(p['id'], p['state']) for p in mine]}; {intent.notes}")
            continue
        if intent.accepted and intent.post_id not in {p["id"] for p in mine}:
            problems.append(f"{what} was answered with id {intent.post_id}, the database has "
                            f"{[p['id'] for p in mine]}")
        final = heads[0]["state"] if heads else (suggestions[0]["state"] if suggestions else "?")
        if not intent.accepted:
            continue  # whatever it became was checked above, post by post
        expected: set[str]
        if intent.plan == "publish":
            expected = {"published"} if intent.followed else {"published", "held", "suggested"}
        elif intent.undone:
            expected = {{"cancel": "cancelled", "reject": "rejected", "dismiss": "dismissed"}[intent.plan]}
        else:
            expected = {"published", "cancelled", "rejected", "dismissed", "held", "suggested"}
        if final not in expected:
            if final not in ("publishing", "scheduled", "failed"):  # counted above
                result.lost += 1
            problems.append(f"{what} ended {final}, not {sorted(expected)}; answers: {intent.notes}; "
                            f"{_history(entries, (heads or suggestions)[0]['id'])}")
    # -- approvals: each counted once
    counted: Counter[tuple[str, int, str]] = Counter()
    for entry in entries:
        if entry["type"] == "post.approved":
            data = entry.get("data") or {}
            counted[(entry["post"], int(data.get("version", 0)), entry["actor"])] += 1
    for (post_id, version, actor), times in counted.items():
        if times > 1:
            result.duplicates += times - 1
            problems.append(f"{actor}'s approval of post {post_id} v{version} is in the log {times} times")
    stored = Counter((a["post_id"], int(a["version"]), a["approver"]) for a in approvals
                     if a["decision"] == "approve")
    for key in set(stored) | set(counted):
        if stored.get(key, 0) != counted.get(key, 0):
            problems.append(f"approval {key}: {stored.get(key, 0)} stored, {counted.get(key, 0)} in the log")
    # -- one policy record per version
    logged: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        if entry["type"].startswith("policy."):
            logged[entry["account"]].append(int((entry.get("data") or {}).get("version", 0)))
    recorded: dict[str, list[int]] = defaultdict(list)
    for row in versions:
        recorded[row["account"]].append(int(row["version"]))
    changes = 1 if chaos.policy_changes else 0
    want = {account: list(range(1, 2 + (changes if account in ("chaos-direct", "chaos-delayed") else 0)))
            for account in ACCOUNTS}
    policy_ok = True
    for account in ACCOUNTS:
        if logged[account] != want[account] or recorded[account] != want[account]:
            policy_ok = False
            problems.append(f"policy history of {account}: log versions {logged[account]}, "
                            f"policy_versions {recorded[account]}, expected {want[account]}")
    total = sum(len(v) for v in recorded.values())
    result.policy_records = f"{total} {'ok' if policy_ok else 'WRONG'}"
    # -- the log verifies
    result.verify = await verify_log(chaos, result)


def _history(entries: list[dict[str, Any]], post_id: str) -> str:
    """A post's log entries, in short."""
    found = []
    for entry in entries:
        if entry.get("post") == post_id:
            data = entry.get("data") or {}
            extra = {k: data[k] for k in ("attempt", "recovering", "state", "error", "remote_id", "version")
                     if k in data}
            found.append(f"{entry['type']}@{entry.get('ts', '')}{extra if extra else ''}")
    return "log: " + " → ".join(found)


async def verify_log(chaos: Run, result: Result) -> str:
    """An export of the log as ``byline audit export`` makes it, then ``byline audit verify
    --export``: "ok" or "FAILED"."""
    from gateway.audit.export import export_database
    from gateway.storage.db import open_database

    serve = chaos.replicas[0].serve
    export = chaos.workdir / "log.export"
    # The export `byline audit export` writes (its own function, run here: one Python start-up
    # fewer), then the real `byline audit verify` on it.
    db = await open_database(chaos.database_url)
    try:
        await export_database(db, export, origin="byline.local/log")
    finally:
        await db.close()
    checked = await asyncio.to_thread(
        serve.cli, "audit", "verify", "--key", chaos.verifier_key, "--export", str(export), "--no-state",
        "--no-progress", check=False)
    if checked.returncode != 0:
        result.problems.append(f"byline audit verify failed: {(checked.stdout + checked.stderr)[-3000:]}")
        return "FAILED"
    return "ok"
