"""Shared fixtures: both databases, policy directories, and a real gateway on a real socket."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import ssl
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

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
from gateway.storage.db import PRIVATE_MODE, Database, DatabaseUnavailable, open_database

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


def _with_param(dsn: str, key: str, value: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}{key}={value}"


async def _pg(statement: str, *args: Any) -> Any:
    """Run one statement on the test PostgreSQL's own database; its first value."""
    assert PG_DSN is not None
    conn = await asyncpg.connect(PG_DSN)
    try:
        return await conn.fetchval(statement, *args)
    finally:
        await conn.close()


_SHAPE = """
SELECT string_agg(replace(x, $1 || '.', ''), E'\n' ORDER BY x) FROM (
  SELECT format('column %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, pg_get_expr(d.adbin, d.adrelid)) AS x
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = $1
  UNION ALL SELECT format('constraint %s %s', c.conname, pg_get_constraintdef(c.oid))
    FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1
  UNION ALL SELECT format('trigger %s %s', t.tgenabled, pg_get_triggerdef(t.oid))
    FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid JOIN pg_namespace n ON n.oid = r.relnamespace
    WHERE n.nspname = $1 AND NOT t.tgisinternal
  UNION ALL SELECT format('function %s %s', p.proname, md5(p.prosrc))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
  UNION ALL SELECT format('%s %s', c.relkind, c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
) AS shape
"""
"""Everything a schema is made of but its rows (tables, columns, indexes, constraints,
triggers and whether they fire, functions), as one text with the schema's own name left out."""


class SchemaTemplates:
    """Byline's schema as a first start (or `byline migrate`) leaves it, for each test that
    wants a database: on SQLite a copy of a file migrated once per test process, on PostgreSQL
    a schema migrated once and emptied between the tests that use it in turn. Migrating took a
    third of a second and more a test on PostgreSQL (and the schema's drop a tenth), for about
    a thousand tests. Nothing one test leaves reaches the next: after a test, whatever is still
    connected to its schema is ended, a schema whose make-up the test changed (a table, column,
    index, constraint, trigger or function) is dropped, and any other has every row of every
    table deleted, the rows the migration wrote put back (checked), and a new name (so a
    process left running finds no schema where it was). Migrating itself, from nothing and
    from each earlier version, is tested by the tests marked ``empty_database``."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._sqlite: Path | None = None
        self._idle: list[str] = []
        self._shape: str | None = None
        self._rows: dict[str, list[str]] = {}

    async def sqlite(self, path: Path) -> str:
        """A copy of the migrated SQLite file at ``path``; its URL."""
        if self._sqlite is None:
            self._dir = Path(tempfile.mkdtemp(prefix="byline-schema-"))
            made = self._dir / "byline.db"
            await (await open_database(f"sqlite:///{made}")).close()
            self._sqlite = made
        shutil.copyfile(self._sqlite, path)
        os.chmod(path, PRIVATE_MODE)  # as Byline makes its database file
        return f"sqlite:///{path}"

    @staticmethod
    def url(schema: str) -> str:
        """The URL of a schema of the test PostgreSQL; its connections are named after it."""
        assert PG_DSN is not None
        return _with_param(_with_param(PG_DSN, "search_path", schema), "application_name", schema)

    @staticmethod
    async def rows(conn: asyncpg.Connection, schema: str) -> dict[str, list[str]]:
        """Every table of a schema and its rows (as JSON, sorted), read in one query."""
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY 1", schema)]
        each = " UNION ALL ".join(
            f"SELECT '{t}', (SELECT coalesce(json_agg(r), '[]') FROM {schema}.\"{t}\" r)::text" for t in tables)
        return {table: sorted(json.dumps(row, sort_keys=True) for row in json.loads(found))
                for table, found in (await conn.fetch(each) if tables else [])}

    async def postgresql(self) -> str:
        """A schema holding the migrated schema and nothing else; its URL (hand it back with
        :meth:`done`)."""
        if self._idle:
            return self.url(self._idle.pop())
        schema = "t_" + secrets.token_hex(6)
        await _pg(f"CREATE SCHEMA {schema}")
        await (await open_database(self.url(schema))).close()
        if self._shape is None:
            assert PG_DSN is not None
            conn = await asyncpg.connect(PG_DSN)
            try:
                self._shape = await conn.fetchval(_SHAPE, schema)
                self._rows = await self.rows(conn, schema)
            finally:
                await conn.close()
        return self.url(schema)

    async def done(self, url: str) -> None:
        """A test is done with the schema at ``url``: emptied for the next, or dropped."""
        assert PG_DSN is not None
        schema = _schema_of(url)
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", schema)
            if await conn.fetchval(_SHAPE, schema) != self._shape:
                await conn.execute(f"DROP SCHEMA {schema} CASCADE")
                return
            fresh = "t_" + secrets.token_hex(6)
            script = ["BEGIN", "SET LOCAL session_replication_role = replica"]  # the append-only ones too
            for table in self._rows:  # every table there is: the schema's make-up is as migrated
                script.append(f'DELETE FROM {schema}."{table}"')
                if rows := self._rows.get(table):
                    script.append(f'INSERT INTO {schema}."{table}" SELECT * FROM json_populate_recordset('
                                  f'NULL::{schema}."{table}", $rows$[{", ".join(rows)}]$rows$)')
            await conn.execute(";\n".join([*script, f"ALTER SCHEMA {schema} RENAME TO {fresh}", "COMMIT"]))
            if await self.rows(conn, fresh) != self._rows:
                await conn.execute(f"DROP SCHEMA {fresh} CASCADE")
                return
        finally:
            await conn.close()
        self._idle.append(fresh)

    def close(self) -> None:
        """Remove the migrated originals, at the end of the test process."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._idle:
            asyncio.run(_pg("DROP SCHEMA " + ", ".join(self._idle) + " CASCADE"))
            self._idle.clear()


def _schema_of(url: str) -> str:
    """The schema a test PostgreSQL URL names (its search_path)."""
    return dict(parse_qsl(urlsplit(url).query))["search_path"]


SCHEMAS = SchemaTemplates()


@pytest.fixture(scope="session", autouse=True)
def _schema_templates() -> Iterator[SchemaTemplates]:
    """The migrated originals that databases are copied from, removed at the session's end."""
    try:
        yield SCHEMAS
    finally:
        SCHEMAS.close()


@pytest.fixture(params=BACKENDS)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the test's own, its schema up to date (see :class:`SchemaTemplates`): a
    SQLite file, or a PostgreSQL schema. A test marked ``empty_database`` gets one with nothing
    in it: no SQLite file, a PostgreSQL schema with no table."""
    empty = request.node.get_closest_marker("empty_database") is not None
    if request.param == "sqlite":
        path = tmp_path / "byline.db"
        yield f"sqlite:///{path}" if empty else await SCHEMAS.sqlite(path)
        return
    assert PG_DSN is not None
    if not empty:
        url = await SCHEMAS.postgresql()
        yield url
        await SCHEMAS.done(url)
        return
    schema = "t_" + secrets.token_hex(6)
    await _pg(f"CREATE SCHEMA {schema}")
    yield _with_param(PG_DSN, "search_path", schema)
    await _pg(f"DROP SCHEMA {schema} CASCADE")


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
    is served over TLS (its certificate must name 127.0.0.1, where the test client connects)."""

    def __init__(self, db_url: str, policy_dir: Path, clock: ManualClock, *, tls: Tls | None = None,
                 **extra: Any) -> None:
        self._settings = make_settings(db_url, policy_dir, **extra)
        self._app = make_app(self._settings, clock=clock, run_publisher=False)
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
