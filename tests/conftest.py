"""Shared fixtures: both databases, policy directories, and a real gateway on a real socket."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import ssl
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import make_app
from gateway.appkeys import DB, GATE_RECONCILER, IDENTITY, POLICIES, PUBLISHER, SANDBOX
from gateway.clock import ManualClock
from gateway.http.server import make_runner
from gateway.settings import Settings
from gateway.storage.db import Database, DatabaseUnavailable, open_database
from tests.databases import Templates, schema_url

pytest_plugins = ["tests.platforms.bluesky.fixture"]

DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_PROBE_SECONDS = 3.0


def _where(dsn: str) -> str:
    """A DSN as it may be printed: no user or password."""
    parts = urlsplit(dsn)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


def _choose_postgres() -> tuple[str | None, str]:
    """The PostgreSQL every storage test also runs on, or None and why not.

    ``BYLINE_TEST_POSTGRES=off`` (or ``BYLINE_TEST_POSTGRES_DSN`` set but empty) means SQLite
    only, on purpose. Otherwise the DSN in ``BYLINE_TEST_POSTGRES_DSN`` must answer, or the run
    stops; without it the local default is tried with a short timeout, and the run goes on on
    SQLite alone, saying so loudly, when nothing answers there.
    """
    explicit = os.environ.get("BYLINE_TEST_POSTGRES_DSN")
    if os.environ.get("BYLINE_TEST_POSTGRES", "").strip().lower() == "off" or explicit == "":
        return None, "turned off (BYLINE_TEST_POSTGRES=off or an empty BYLINE_TEST_POSTGRES_DSN)"
    dsn = explicit or DEFAULT_PG_DSN

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=PG_PROBE_SECONDS)
        await conn.close()

    try:
        asyncio.run(asyncio.wait_for(probe(), PG_PROBE_SECONDS + 1))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = f"nothing usable answers at {_where(dsn)} ({type(exc).__name__}: {exc})"
        if explicit:
            return None, f"BYLINE_TEST_POSTGRES_DSN: {reason}"
        return None, reason + "; start PostgreSQL there, or set BYLINE_TEST_POSTGRES_DSN"
    return dsn, f"at {_where(dsn)}"


PG_DSN, PG_REASON = _choose_postgres()
BACKENDS = ["sqlite"] + (["postgresql"] if PG_DSN else [])


def pytest_configure(config: pytest.Config) -> None:
    """A PostgreSQL asked for by name that does not answer stops the run before any test."""
    if PG_DSN is None and PG_REASON.startswith("BYLINE_TEST_POSTGRES_DSN:"):
        raise pytest.UsageError(PG_REASON)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests marked ``slow`` first, the rest in their order. With pytest-xdist each process
    takes a run of the tests in order and the first to finish takes from the end of another's:
    a test of a minute or two met late is the run's tail, one process working while the other
    waits; met first, it runs while the other process works through the short ones."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say at the top which databases the storage tests run on."""
    if PG_DSN is not None:
        return [f"databases: SQLite and PostgreSQL {PG_REASON}"]
    return [f"databases: SQLITE ONLY -- PostgreSQL is NOT tested: {PG_REASON}"]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """What every test process had to say; then, again at the bottom, where it cannot be missed,
    when PostgreSQL was left out."""
    _said_at_the_end(terminalreporter)
    if PG_DSN is None:
        terminalreporter.write_sep(
            "!", "PostgreSQL was NOT tested: storage tests ran on SQLite only", red=True, bold=True
        )
        terminalreporter.write_line(f"PostgreSQL: {PG_REASON}", red=True, bold=True)


DATABASE_GONE: Final = (DatabaseUnavailable(), asyncpg.AdminShutdownError("terminating connection"))
"""The database gone, as storage says it and as the driver does (a server shutting down)."""


def finding_the_database_gone(cause: BaseException | None = None) -> Callable[..., Awaitable[Any]]:
    """A stand-in for a call that meets the database gone: whatever it is given, it raises
    ``cause`` (storage's :class:`DatabaseUnavailable` by default)."""

    async def gone(*_: object, **__: object) -> Any:
        raise cause if cause is not None else DatabaseUnavailable()

    return gone


@pytest.fixture(scope="session")
def _database_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """This process's migrated templates (tests/databases.py), dropped at the end."""
    templates = Templates(tmp_path_factory.mktemp("templates"), PG_DSN)
    yield templates
    templates.drop()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path, _database_templates: Templates) -> AsyncIterator[str]:
    """A database of the test's own, as ``byline migrate`` leaves a new one (made from a template,
    see tests/databases.py): a SQLite file, or a PostgreSQL schema of its own. Empty, without
    even Byline's schema, for a test marked ``empty_database``."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if request.param == "sqlite":
        path = tmp_path / "byline.db"
        if not empty:
            await _database_templates.sqlite_copy(path)
        yield f"sqlite:///{path}"
        return
    assert PG_DSN is not None
    schema = "t_" + secrets.token_hex(6)
    if empty:
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f"CREATE SCHEMA {schema}")
        finally:
            await conn.close()
    else:
        await _database_templates.postgres_schema(schema)
    yield schema_url(PG_DSN, schema)
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The test's database, up to date; closed after the test, whether it passed or not."""
    opened = await open_database(db_url)
    try:
        yield opened
    finally:
        await opened.close()


TEST_POLICIES: dict[str, str] = {
    "direct": """
        account: direct
        platform: sandbox
        handle: "@alice"
        tier: direct
        owner: alice
        rules:
          - name: breaking-news
            action: hold
            any_words: [fired, scandal]
            reason: Check the full story first
          - name: no-slurs
            action: block
            regex: "(?i)\\\\bexample-slur\\\\b"
            reason: Not okay to post
    """,
    "delayed": """
        account: delayed
        platform: sandbox
        handle: "@bob"
        tier: delayed
        owner: bob
        delay: 10m
    """,
    "cosigned": """
        account: cosigned
        platform: sandbox
        handle: "@brand"
        tier: co-signed
        owner: alice
        writers: [alice, carol]
        delay: 1m
        approvals:
          required: 2
          from: [bob, carol, dave]
          expire_after: 24h
        disclosure: "—{author}"
    """,
    "managed": """
        account: managed
        platform: sandbox
        handle: "@dave"
        tier: managed
        owner: dave
        writers: [bob, carol]
        disclosure: "—{author}"
    """,
}

USERS = ("alice", "bob", "carol", "dave", "erin")


def write_policy(directory: Path, name: str, text: str) -> Path:
    """Write one policy file the way an admin would."""
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def make_policy_dir(tmp_path: Path, policies: dict[str, str], name: str = "policies") -> Path:
    """A fresh directory ``name`` under ``tmp_path`` holding these files (account -> text).
    Directories beside one another share the log key (``make_settings``), as replicas do."""
    directory = tmp_path / name
    directory.mkdir()
    for name, text in policies.items():
        write_policy(directory, name, text)
    return directory


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A policy directory with one account per tier."""
    return make_policy_dir(tmp_path, TEST_POLICIES)


@dataclass
class Gateway:
    """A running gateway on a real socket, with a token per user and a hand-moved clock."""

    client: TestClient[Any, Any]
    app: web.Application
    clock: ManualClock
    tokens: dict[str, str] = field(default_factory=dict)

    async def call(
        self, user: str | None, method: str, path: str, json: Any = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """One HTTP request as ``user``; returns the status and the decoded JSON body."""
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.tokens[user]}"
        resp = await self.client.request(method, path, json=json, headers=headers, **kwargs)
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body

    async def submit(self, user: str, account: str, text: str, **extra: Any) -> dict[str, Any]:
        """Submit a post and insist on 201."""
        status, body = await self.call(user, "POST", "/v1/posts", {"account": account, "text": text, **extra})
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def act(
        self, user: str, post_id: str, action: str, json: Any = None, *, seen: bool = True
    ) -> tuple[int, Any]:
        """POST /v1/posts/{id}/{action}. An approve, reject or adopt names the version its
        person saw: with ``seen``, the post's current one unless ``json`` names one."""
        if seen and action in ("approve", "reject", "adopt") and "version" not in (json or {}):
            json = {**(json or {}), "version": await self.current_version(post_id)}
        return await self.call(user, "POST", f"/v1/posts/{post_id}/{action}", json)

    async def current_version(self, post_id: str) -> int:
        """The version a post is at now (1 for a post that does not exist)."""
        async with self.app[DB].read() as txn:
            row = await txn.fetchone("SELECT version FROM posts WHERE id = ?", post_id)
        return int(row["version"]) if row is not None else 1

    async def get(self, user: str, post_id: str) -> dict[str, Any]:
        """GET a post and insist on 200."""
        status, body = await self.call(user, "GET", f"/v1/posts/{post_id}")
        assert status == 200, body
        return body  # type: ignore[no-any-return]

    async def tick(self) -> int:
        """Run the publisher once, as its background loop would."""
        return await self.app[PUBLISHER].run_once()

    async def reconcile(self) -> int:
        """Run the gate reconciler once, as its background loop would."""
        return await self.app[GATE_RECONCILER].run_once()

    async def timeline(self, account: str) -> list[dict[str, Any]]:
        """The sandbox timeline of an account."""
        return await self.app[SANDBOX].timeline(account)

    async def log_size(self) -> int:
        """How many entries the log holds."""
        async with self.app[DB].read() as txn:
            row = await txn.fetchone("SELECT size FROM log_state WHERE id = 1")
        assert row is not None
        return int(row["size"])

    async def snapshot(self) -> tuple[Any, ...]:
        """Everything stored that a refused request must leave alone."""
        async with self.app[DB].read() as txn:
            posts = await txn.fetchall("SELECT * FROM posts ORDER BY id")
            versions = await txn.fetchall("SELECT * FROM post_versions ORDER BY post_id, version")
            approvals = await txn.fetchall("SELECT * FROM approvals ORDER BY post_id, approver")
            sandbox = await txn.fetchall("SELECT * FROM sandbox_posts ORDER BY id")
            intents = await txn.fetchall("SELECT * FROM gate_intents ORDER BY id")
        return tuple(tuple(tuple(dict(r).items()) for r in rows)
                     for rows in (posts, versions, approvals, sandbox, intents))

    async def sync_policies(self) -> list[str]:
        """Reload the policy directory now."""
        return await self.app[POLICIES].sync()


def make_settings(db_url: str, policy_dir: Path, **extra: Any) -> Settings:
    """Settings for a test gateway; nothing read from the environment matters."""
    # The log signing key (and the last checkpoint it signed) live beside the policy folder,
    # so every gateway started on one test's folders shares them, as replicas would.
    extra.setdefault("log_key_file", policy_dir.parent / "log.key")
    extra.setdefault("log_key_autocreate", True)
    extra.setdefault("checkpoint_interval_seconds", 3600)
    # The platform stand-ins listen on plain http on 127.0.0.1.
    extra.setdefault("allow_insecure_platforms", True)
    # Every test client connects from 127.0.0.1, some with many connections at once; the tests
    # of the per-address limit set their own.
    extra.setdefault("connections_per_address", 0)
    # Tests write a policy file and reread it at once; the settling of a file being written is
    # tested on its own.
    extra.setdefault("policy_settle_seconds", 0)
    # The gate reconciler runs at start, then when a test says so (``Gateway.reconcile``).
    extra.setdefault("gate_reconcile_seconds", 3600)
    return Settings(
        database_url=db_url, policy_dir=policy_dir, port=0, policy_reload_seconds=3600,
        scheduler_interval_seconds=3600, **extra,
    )


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only when a test says so."""
    return ManualClock()


@pytest.fixture
async def gateway(db_url: str, policy_dir: Path, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway on a real socket, publisher driven by hand, one token per user."""
    async with started_gateway(db_url, policy_dir, clock) as gw:
        yield gw


class GatewayTestServer(TestServer):
    """A test server that serves with the runner `byline serve` uses (gateway.http.server):
    its limits, and its JSON answers to what aiohttp's own parser refuses."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        super().__init__(app, host="127.0.0.1")
        self._settings = settings

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return make_runner(self.app, self._settings, **kwargs)


@dataclass(frozen=True)
class Tls:
    """TLS for test servers: a certificate from a CA of the test's own (trustme), and a client
    context that trusts that CA and nothing else."""

    server: ssl.SSLContext
    client: ssl.SSLContext


def tls_for(*names: str) -> Tls:
    """TLS for servers answering as ``names`` (host names, wildcards, IP addresses)."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(server=server, client=client)


class started_gateway:
    """Start a gateway for a database and policy directory; stop it on exit. With ``tls``, it
    is served over TLS (its certificate must name 127.0.0.1, where the test client connects);
    with ``run_publisher``, its publisher runs in the background, as in ``byline serve``, rather
    than by hand (``Gateway.tick``)."""

    def __init__(self, db_url: str, policy_dir: Path, clock: ManualClock, *, tls: Tls | None = None,
                 run_publisher: bool = False, **extra: Any) -> None:
        self._settings = make_settings(db_url, policy_dir, **extra)
        self._app = make_app(self._settings, clock=clock, run_publisher=run_publisher)
        self._clock = clock
        self._tls = tls
        self._client: TestClient[Any, Any] | None = None

    async def __aenter__(self) -> Gateway:
        server = GatewayTestServer(self._app, self._settings)
        if self._tls is None:
            self._client = TestClient(server)
        else:
            self._client = TestClient(server, connector=aiohttp.TCPConnector(ssl=self._tls.client))
            await server.start_server(ssl=self._tls.server)
        await self._client.start_server()
        gw = Gateway(client=self._client, app=self._app, clock=self._clock)
        for user in USERS:
            gw.tokens[user] = await self._app[IDENTITY].create(user=user)
        return gw

    async def __aexit__(self, *exc: object) -> None:
        assert self._client is not None
        await self._client.close()


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    """Passwords hashed in the tests' own process take an argon2id hash of the smallest cost,
    and the decoy that unknown names are checked against is one too, so each sign-in costs a
    millisecond rather than a fifth of a second. Hashes made earlier keep their own cost
    (argon2 reads it from the hash), `byline` commands and servers run as subprocesses hash
    at Byline's own cost, and tests/test_people_cli.py checks that cost in the hashes they
    store."""
    from argon2 import PasswordHasher, Type

    from gateway.services import people

    strong, decoy = people._HASHER, people._DECOY
    people._HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID)
    people._DECOY = people.decoy_hash(people._HASHER)
    try:
        yield
    finally:
        people._HASHER, people._DECOY = strong, decoy


@pytest.fixture(autouse=True)
def _no_ambient_byline_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests build their own settings; a developer's BYLINE_* variables must not leak in."""
    for key in list(os.environ):
        if key.startswith("BYLINE_") and not key.startswith("BYLINE_TEST_") and key != "BYLINE_SHARED_DIR":
            monkeypatch.delenv(key)
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    yield


# -- no secret shown where it must not be ---------------------------------------------------------

from tests.fuzz.secrets_watch import Recorder  # noqa: E402  (the watch is an addition to this file's fixtures)

SECRETS = Recorder()
"""Watches every response of every test gateway and every log line of the session for secrets."""


@pytest.fixture(scope="session", autouse=True)
def _no_secret_shown() -> Iterator[Recorder]:
    """At the end of the session, no token, client secret, code, session JWT, platform credential or
    key may appear in any response or log line, but in the one answer that delivers it (see
    tests/fuzz/secrets_watch.py). Each test process (with pytest-xdist, each worker) watches its
    own tests; what each watched is said at the end (see :func:`pytest_terminal_summary`)."""
    SECRETS.install()
    try:
        yield SECRETS
    finally:
        SECRETS.uninstall()
    watch = SECRETS.watch
    leaks = watch.leaks()
    _SAID["secret_watch"].append([len(watch.secrets), len(watch.seen), len(leaks)])
    assert not leaks, f"{len(leaks)} secrets shown where they must not be:\n" + "\n".join(map(str, leaks[:40]))


# -- what the run says at its end, from every test process ----------------------------------------

_SAID: dict[str, list[Any]] = {"secret_watch": [], "chaos": []}
"""What this process has to say at the end of the run: each secret watch's counts (secrets looked
for, answers and log lines seen, leaks) and each crash scenario's result (as a dict). With
pytest-xdist the workers send theirs to the controller, which says it for all."""


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand what it has to say to the controller."""
    chaos = sys.modules.get("tests.chaos.test_chaos")
    if chaos is not None:
        _SAID["chaos"].extend(dataclasses.asdict(result) for result in chaos.RESULTS)
        chaos.RESULTS.clear()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["byline_said"] = _SAID


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the pytest-xdist controller: what a worker had to say, kept for the end."""
    said = getattr(node, "workeroutput", {}).get("byline_said", {})
    for key, items in said.items():
        _SAID[key].extend(items)


def _said_at_the_end(terminalreporter: Any) -> None:
    """The secret watch's counts (so it is seen to have run) and the crash scenarios' table."""
    if _SAID["secret_watch"]:
        secrets_, seen, leaks = (sum(counts[i] for counts in _SAID["secret_watch"]) for i in range(3))
        terminalreporter.write_line(f"secret watch: {secrets_} secrets looked for in {seen} answers and "
                                    f"log lines; {leaks} found where they must not be")
    if _SAID["chaos"]:
        from tests.chaos.harness import Result, table

        terminalreporter.section("crash and fault scenarios")
        terminalreporter.write_line(table([Result(**result) for result in _SAID["chaos"]]))


@pytest.fixture(autouse=True)
def _secrets_watch_logs() -> None:
    """Keep the log hook in place if a test configured structlog anew."""
    SECRETS.ensure_structlog()
