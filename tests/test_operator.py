"""Operator mistakes at the `byline` command are clear errors (issue 12): tokens are listed and
revoked by a short id, a lifetime of nothing or a token for an ungoverned account is refused,
and `byline serve` refuses a policy directory it cannot read or a port that is taken before it
writes anything, and says in its demo banner what it really runs on."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog
import structlog.testing

from gateway.appkeys import APPENDER, CHECKPOINTS, DB, IDENTITY, PEOPLE
from gateway.clock import ManualClock, SystemClock, now_micros
from gateway.errors import BylineError, Code
from gateway.services.identity import Identity, hash_token
from gateway.storage import oauth as oauth_sql
from gateway.storage import tokens as tokens_sql
from gateway.storage.db import open_database
from tests.audit.logtools import Result, byline_in_process
from tests.clients.signin import sign_in
from tests.conftest import PG_DSN, Gateway, write_policy
from tests.databases import nothing_written

OOB = "urn:ietf:wg:oauth:2.0:oob"
DEMO_TOKEN = re.compile(r"^  (alice|bob|carol|dave)\s+(byl_\S+)$", re.MULTILINE)

# The commands meet databases as an admin has them: not made yet until a test makes one.
pytestmark = pytest.mark.empty_database


def _env(tmp_path: Path, db_url: str, policy_dir: Path | str, **settings: str) -> dict[str, str]:
    """A `byline` environment of its own: no developer BYLINE_* settings, a log key in tmp_path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BYLINE_")}
    env.update(BYLINE_DATABASE_URL=db_url, BYLINE_POLICY_DIR=str(policy_dir), BYLINE_PORT="0",
               BYLINE_LOG_KEY_FILE=str(tmp_path / "log.key"), BYLINE_LOG_FORMAT="json")
    env.update({f"BYLINE_{k.upper()}": v for k, v in settings.items()})
    return env


WITHOUT_DAC_OVERRIDE = ("setpriv", "--bounding-set=-dac_override,-dac_read_search",
                        "--inh-caps=-dac_override,-dac_read_search")
"""Runs a command as root without the capabilities that let root read any file or directory,
so that root meets file modes as an operator's account does."""


async def byline(env: dict[str, str], *args: str, stdin: str | None = None, limit: float = 60,
                 prefix: tuple[str, ...] = ()) -> Result:
    """Run `byline` to its end, as an operator would (under ``prefix``, a command that runs it);
    one that is still running after ``limit`` seconds (a gateway that serves instead of
    refusing) fails the test."""
    proc = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-m", "gateway", *args, env=env, cwd=Path(env["BYLINE_LOG_KEY_FILE"]).parent,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate((stdin or "").encode()), limit)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"`byline {' '.join(args)}` was still running after {limit} s:\n"
                             f"{out.decode()}{err.decode()}") from None
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def byline_here(env: dict[str, str], *args: str, stdin: str = "") -> Result:
    """`byline` run as :func:`byline` runs it, but in the test's process
    (:func:`tests.audit.logtools.byline_in_process`): for the many cases of one command's
    mistakes, where the tests of what it stores run it as its own process."""
    return await byline_in_process(*args, env=env, stdin=stdin, cwd=Path(env["BYLINE_LOG_KEY_FILE"]).parent)


@asynccontextmanager
async def serving_demo(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """`byline serve --demo`, running until the block ends (then stopped, killed if it will
    not stop); what it printed once it started."""
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "serve", "--demo", env=env, cwd=log.parent,
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while '"gateway_started"' not in _read(log):
            assert proc.returncode is None, _read(log)
            assert time.monotonic() < deadline, _read(log)
            await asyncio.sleep(0.05)
        yield _read(log)
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _demo_run(env: dict[str, str], log: Path) -> str:
    """`byline serve --demo` until it has started, then stopped; everything it printed."""
    async with serving_demo(env, log):
        pass
    return _read(log)


def _read(path: Path) -> str:
    return path.read_text()


def _exists(path: Path) -> bool:
    return path.exists()


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def _live(db_url: str, token: str) -> bool:
    """Whether the gateway would take ``token`` now."""
    db = await open_database(db_url)
    try:
        await Identity(db, SystemClock()).authenticate(token)
    except BylineError as exc:
        assert exc.code is Code.UNAUTHENTICATED, exc
        return False
    finally:
        await db.close()
    return True


async def ready(db_url: str) -> str:
    """``db_url`` with the gateway's schema made, as `byline migrate` (or a first `byline
    serve`) leaves it: the other commands refuse a database that has none."""
    await (await open_database(db_url)).close()
    return db_url


async def _token_rows(db_url: str) -> int:
    db = await open_database(db_url)
    try:
        async with db.read() as txn:
            return len(await txn.fetchall("SELECT token_hash FROM tokens"))
    finally:
        await db.close()


# -- a database that is not there ------------------------------------------------------------

NOT_THERE = ("token create --user alice", "token list", "token revoke 0123456789ab",
             "user set-email alice alice@example.org", "audit export --out export.txt", "audit who --post p1")
"""Commands that use the database without being meant to make it (all but serve and migrate)."""


async def test_commands_refuse_a_database_that_is_not_there(tmp_path: Path, db_url: str, policy_dir: Path) -> None:
    """A database that does not exist (a SQLite file) or has no schema (a PostgreSQL schema with
    no table) is refused by every command but serve and migrate, with one line naming it and
    what to do (exit 2); it is left as it was, where each used to make it and answer from it."""
    env = _env(tmp_path, db_url, policy_dir)
    where = (f"SQLite {db_url.removeprefix('sqlite:///')} does not exist" if db_url.startswith("sqlite")
             else "holds no Byline schema")
    for command in NOT_THERE:
        result = await byline(env, *command.split())
        assert result.code == 2 and result.out == "", (command, result.text)
        assert result.err.count("\n") == 1 and where in result.err, (command, result.err)
        assert "BYLINE_DATABASE_URL" in result.err and "byline migrate" in result.err, (command, result.err)
    assert await nothing_written(db_url)
    assert _names(tmp_path) == ["policies"]  # no file beside where it would be
    made = await byline(env, "migrate")
    assert made.code == 0, made.text
    assert (await byline(env, "token", "list")).code == 0


@pytest.mark.usefixtures("usual_umask")
@pytest.mark.parametrize("kind", ["empty", "another program's"])
async def test_a_sqlite_file_without_the_schema_is_left_as_it_was(tmp_path: Path, policy_dir: Path, kind: str) -> None:
    """A SQLite file that holds no Byline schema (an empty one, another program's database) is
    refused by every command but serve and migrate, and left exactly as it was: each used to
    leave a -writer lock file beside it, turn it to WAL and make it private before refusing."""
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "byline.db"
    if kind == "empty":
        path.touch()
    else:
        other = sqlite3.connect(path)
        other.execute("CREATE TABLE notes (body TEXT)")
        other.execute("INSERT INTO notes VALUES ('kept')")
        other.commit()
        other.close()
    before = (path.read_bytes(), _mode(path))
    env = _env(tmp_path, f"sqlite:///{path}", policy_dir)

    results = await asyncio.gather(*(byline(env, *command.split()) for command in NOT_THERE))

    for command, result in zip(NOT_THERE, results, strict=True):
        assert (result.code, result.out) == (2, ""), (command, result.text)
        assert result.err == (f"error: SQLite {path} holds no Byline schema (BYLINE_DATABASE_URL); set "
                              "BYLINE_DATABASE_URL to the gateway's database, or run `byline migrate` to make "
                              "a new one there\n"), (command, result.err)
    assert _names(folder) == ["byline.db"]
    assert (path.read_bytes(), _mode(path)) == before


async def test_the_default_database_from_another_directory_is_refused(tmp_path: Path, policy_dir: Path) -> None:
    """BYLINE_DATABASE_URL unset names `var/byline.db` under the working directory: run from
    another one, `byline token create` used to make a database there and print a token the
    gateway refuses. It says which file it looked for, and makes nothing."""
    env = _env(tmp_path, "", policy_dir)
    del env["BYLINE_DATABASE_URL"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env["BYLINE_LOG_KEY_FILE"] = str(elsewhere / "log.key")  # the commands run in its folder

    result = await byline(env, "token", "create", "--user", "alice")

    assert (result.code, result.out) == (2, ""), result.text
    assert result.err == (f"error: SQLite {elsewhere / 'var' / 'byline.db'} does not exist (BYLINE_DATABASE_URL); "
                          "set BYLINE_DATABASE_URL to the gateway's database, or run `byline migrate` to make "
                          "a new one there\n")
    assert _names(elsewhere) == []


async def test_a_sqlite_database_in_a_folder_that_is_not_there_is_not_made(tmp_path: Path, policy_dir: Path) -> None:
    """`byline token list` on a SQLite path whose folder does not exist used to make the folder
    and the database, and say "no tokens"."""
    missing = tmp_path / "no" / "such" / "folder" / "db.sqlite"
    result = await byline(_env(tmp_path, f"sqlite:///{missing}", policy_dir), "token", "list")
    assert result.code == 2 and f"SQLite {missing} does not exist" in result.err, result.text
    assert not _exists(tmp_path / "no")


# -- a database that cannot be opened -----------------------------------------------------------

EVERY_DATABASE_COMMAND = ("token list", "token create --user alice", "token revoke 0123456789ab",
                          "user add alice", "user set-email alice alice@example.org", "audit export --out x",
                          "migrate", "serve")
"""Commands that open the database: each used to end in a traceback when it could not."""


def _elsewhere(dsn: str, *, user: str | None = None, database: str | None = None) -> str:
    """``dsn`` with another user or database, its query (a test's own schema) left off."""
    parts = urlsplit(dsn)
    netloc = parts.netloc if user is None else f"{user}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, f"/{database}" if database else parts.path, "", ""))


def _cannot_open_cases() -> list[Any]:
    cases = [pytest.param("postgresql://byline:hunter2@127.0.0.1:1/byline", 1,
                          "cannot reach the database PostgreSQL byline@127.0.0.1:1/byline (BYLINE_DATABASE_URL): "
                          "it does not answer", id="nothing-listens")]
    needs_pg = pytest.mark.skipif(PG_DSN is None, reason="needs the test PostgreSQL")
    dsn = PG_DSN or "postgresql://postgres@127.0.0.1:5432/postgres"
    cases += [
        pytest.param(_elsewhere(dsn, database="no_such_db_xyz"), 2, 'database "no_such_db_xyz" does not exist',
                     id="no-such-database", marks=needs_pg),
        pytest.param(_elsewhere(dsn, user="no_such_role_xyz"), 2, '"no_such_role_xyz"', id="no-such-role",
                     marks=needs_pg),
    ]
    return cases


@pytest.mark.parametrize(("url", "status", "said"), _cannot_open_cases())
async def test_a_database_that_cannot_be_opened_is_one_line(
    tmp_path: Path, policy_dir: Path, url: str, status: int, said: str
) -> None:
    """PostgreSQL that does not answer, or has no such database or role: every command that opens
    it (serve and migrate too) says so in one line naming it, never its password, and exits 1 (it
    may answer later: systemd restarts the gateway) or 2 (a setting to change); each used to end
    in a traceback of up to 75 lines."""
    env = _env(tmp_path, url, policy_dir, log_key_autocreate="true")

    results = await asyncio.gather(*(byline(env, *command.split(), stdin="a-long-enough-password\n")
                                     for command in EVERY_DATABASE_COMMAND))

    for command, result in zip(EVERY_DATABASE_COMMAND, results, strict=True):
        lines = [line for line in result.err.splitlines() if not line.startswith("{")]  # serve's log
        assert (result.code, len(lines)) == (status, 1), (command, result.text)
        assert lines[0].startswith("error: cannot ") and said in lines[0], (command, result.err)
        assert "Traceback" not in result.text and "hunter2" not in result.text, (command, result.text)


async def test_people_commands_name_a_bad_database_setting(tmp_path: Path, policy_dir: Path) -> None:
    """`byline user …` built its settings apart from the other commands, and a URL of another
    kind ended in pydantic's traceback: one line naming BYLINE_DATABASE_URL, exit status 2."""
    env = _env(tmp_path, "mysql://byline:hunter2@db/byline", policy_dir)
    for command in ("user set-email alice alice@example.org", "user add alice", "user set-password alice"):
        result = await byline(env, *command.split(), stdin="a-long-enough-password\n")
        assert (result.code, result.out) == (2, ""), (command, result.text)
        assert result.err.startswith("invalid settings: BYLINE_DATABASE_URL: ") and result.err.count("\n") == 1, \
            (command, result.err)


# -- the SQLite database's files, for the gateway's user alone ----------------------------------


def _mode(path: Path) -> str:
    return f"{path.stat().st_mode & 0o777:04o}"


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most systems give a service (022), under which files are world-readable."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.usefixtures("usual_umask")
async def test_the_sqlite_database_is_made_for_its_owner_alone(tmp_path: Path, policy_dir: Path) -> None:
    """`byline migrate` and a gateway's start make the database file 0600, and SQLite makes its
    -wal and -shm files with the same mode; they were 0644, readable by every user of the
    machine, with unpublished posts, password hashes and the gateway's keys in them."""
    made = tmp_path / "migrated" / "byline.db"
    result = await byline(_env(tmp_path, f"sqlite:///{made}", policy_dir), "migrate")
    assert result.code == 0, result.text
    assert _mode(made) == "0600"

    started = tmp_path / "started" / "byline.db"
    db = await open_database(f"sqlite:///{started}")  # what the gateway opens at its start
    try:
        async with db.write() as txn:
            await txn.execute("UPDATE log_state SET size = size WHERE id = 1")
        files = [started, Path(f"{started}-wal"), Path(f"{started}-shm"), Path(f"{started}-writer")]
        assert [_mode(f) for f in files] == ["0600"] * 4
    finally:
        await db.close()


@pytest.mark.usefixtures("usual_umask")
async def test_a_database_file_others_can_read_is_made_private_with_a_warning(tmp_path: Path) -> None:
    """A database made by an earlier Byline (0644), its -wal and -shm too, is made 0600 when
    the gateway next opens it, and the log says so."""
    path = tmp_path / "byline.db"
    await (await open_database(f"sqlite:///{path}")).close()
    side = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    for file in (path, *side):
        file.touch()
        file.chmod(0o644)
    with structlog.testing.capture_logs() as logs:
        db = await open_database(f"sqlite:///{path}")
    try:
        assert [_mode(f) for f in (path, *side)] == ["0600"] * 3
    finally:
        await db.close()
    tightened = [(e["path"], e["mode"], e["now"]) for e in logs if e["event"] == "sqlite_file_mode_tightened"]
    assert tightened == [(str(f), "0644", "0600") for f in (path, *side)]


@pytest.mark.usefixtures("usual_umask")
async def test_a_commands_warnings_go_to_stderr_not_into_its_answer(tmp_path: Path, policy_dir: Path) -> None:
    """`token=$(byline token create ...)` takes what the command prints on stdout: the token
    alone. A warning the command logs on the way (here: the database file made private) goes
    to stderr with every other log line. Before, it came first on stdout, and a script stored
    the warning as the token."""
    path = tmp_path / "byline.db"
    await ready(f"sqlite:///{path}")
    path.chmod(0o644)
    made = await byline(_env(tmp_path, f"sqlite:///{path}", policy_dir), "token", "create", "--user", "alice")
    assert made.code == 0, made.text
    assert re.fullmatch(r"byl_[A-Za-z0-9_-]+\n", made.out), made.out
    assert "sqlite_file_mode_tightened" in made.err


# -- byline token list / revoke ----------------------------------------------------------------


async def test_token_list_names_tokens_by_a_short_id_never_the_token(
    tmp_path: Path, db_url: str, policy_dir: Path
) -> None:
    """`byline token list` shows each token's id (the start of its SHA-256), person, account,
    label, dates and state, and neither the token nor its whole hash."""
    env = _env(tmp_path, await ready(db_url), policy_dir)
    made = await byline(env, "token", "create", "--user", "alice", "--account", "direct", "--label", "phone",
                        "--expires", "30d")
    assert made.code == 0, made.text
    kept = made.out.strip()
    gone = (await byline(env, "token", "create", "--user", "bob")).out.strip()
    assert (await byline(env, "token", "revoke", hash_token(gone)[:12])).code == 0

    listing = await byline(env, "token", "list")

    assert listing.code == 0, listing.text
    header, *rows = listing.out.splitlines()
    assert header.split() == ["ID", "USER", "ACCOUNT", "LABEL", "CREATED", "(UTC)", "EXPIRES", "STATE"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert set(by_id) == {hash_token(kept)[:12], hash_token(gone)[:12]}
    assert by_id[hash_token(kept)[:12]][1:4] == ["alice", "direct", "phone"]
    assert by_id[hash_token(kept)[:12]][-1] == "live"
    assert by_id[hash_token(gone)[:12]][1:4] == ["bob", "-", "-"]
    assert by_id[hash_token(gone)[:12]][-3] == "revoked"
    for secret in (kept, gone, hash_token(kept), hash_token(gone)):
        assert secret not in listing.text
    live = await byline(env, "token", "list", "--live")
    assert [row.split()[0] for row in live.out.splitlines()[1:]] == [hash_token(kept)[:12]]


@pytest.mark.parametrize("how", ["id", "start of the id", "token on stdin", "token as the id"])
async def test_token_revoke_ends_the_token_it_names(tmp_path: Path, db_url: str, policy_dir: Path, how: str) -> None:
    """`byline token revoke` ends the one token named by its id, the start of it, or the token
    itself (best on standard input), and leaves the others and the log alone."""
    env = _env(tmp_path, await ready(db_url), policy_dir)
    token = (await byline(env, "token", "create", "--user", "alice")).out.strip()
    other = (await byline(env, "token", "create", "--user", "alice")).out.strip()
    args, stdin = {
        "id": ([hash_token(token)[:12]], None),
        "start of the id": ([hash_token(token)[:6].upper()], None),
        "token on stdin": (["--token", "-"], token + "\n"),
        "token as the id": ([token], None),
    }[how]

    revoked = await byline(env, "token", "revoke", *args, stdin=stdin)

    assert revoked.code == 0, revoked.text
    assert revoked.out.startswith(f"revoked {hash_token(token)[:12]} (alice)"), revoked.out
    assert token not in revoked.text
    assert [await _live(db_url, token), await _live(db_url, other)] == [False, True]
    again = await byline(env, "token", "revoke", hash_token(token)[:12])
    assert again.code == 0 and "already revoked" in again.out, again.text
    # A person's own token gives no role and its making is not logged: neither is its end.
    db = await open_database(db_url)
    try:
        async with db.read() as txn:
            assert await txn.fetchall("SELECT idx FROM log_entries") == []
    finally:
        await db.close()


async def test_token_revoke_refuses_an_id_that_names_no_token_or_several(
    tmp_path: Path, db_url: str, policy_dir: Path
) -> None:
    """An id that starts two tokens' hashes, one that starts none, one too short to mean
    anything, and a token on the command line after --token are refused (exit 2); nothing is
    revoked."""
    env = _env(tmp_path, db_url, policy_dir)
    db = await open_database(db_url)
    try:
        async with db.write() as txn:  # two tokens whose hashes share their first 8 digits
            for n in (1, 2):
                await tokens_sql.insert_token(txn, token_hash=f"abcdef0{n}" + "0" * 56, user=f"user{n}",
                                              account=None, label="", at=1, expires_at=None)
    finally:
        await db.close()

    cases = {
        ("abcdef",): "abcdef010000 (user1), abcdef020000 (user2)",
        ("012345",): "no token has the id 012345",
        ("abc",): "not a token id",
        ("not-hex!",): "not a token id",
        ("--token", "byl_pasted"): "standard input",
        ("--token", "-"): "no token on standard input",
        (): "name the token to revoke",
    }
    for args, expected in cases.items():
        result = await byline(env, "token", "revoke", *args)
        assert result.code == 2, (args, result.text)
        assert result.out == "" and result.err.count("\n") == 1, (args, result.text)
        assert result.err.startswith("error: ") and expected in result.err, (args, result.err)
    listing = await byline(env, "token", "list", "--live")
    assert len(listing.out.splitlines()) == 3, listing.text
    assert (await byline(env, "token", "revoke", "abcdef01")).code == 0


async def test_cli_revoke_of_an_apps_token_is_logged(gateway: Gateway, tmp_path: Path, db_url: str,
                                                     policy_dir: Path) -> None:
    """Revoking an app's OAuth token from the CLI ends it and logs `client.revoked`, as the
    app's own revocation does, and the log, written by the CLI beside a running gateway, still
    verifies."""
    status, app = await gateway.call(None, "POST", "/api/v1/apps", data={
        "client_name": "Toot!", "redirect_uris": OOB, "scopes": "read write"})
    assert status == 200, app
    base = str(gateway.client.make_url("")).rstrip("/")
    code = await sign_in(f"{base}/oauth/authorize?response_type=code&client_id={app['client_id']}"
                         f"&redirect_uri={OOB}&scope=write", token=gateway.tokens["alice"], account="direct")
    status, granted = await gateway.call(None, "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
        "client_secret": app["client_secret"], "redirect_uri": OOB})
    assert status == 200, granted
    token = granted["access_token"]
    app_call = {"headers": {"Authorization": f"Bearer {token}"}, "data": {"status": "From the app"}}
    status, _ = await gateway.call(None, "POST", "/api/v1/statuses", **app_call)
    assert status == 200
    before = await gateway.log_size()
    env = _env(tmp_path, db_url, policy_dir)

    revoked = await byline(env, "token", "revoke", hash_token(token)[:12])

    assert revoked.code == 0, revoked.text
    assert "client.revoked" in revoked.out, revoked.out
    status, _ = await gateway.call(None, "POST", "/api/v1/statuses", **app_call)
    assert status == 401
    assert await gateway.log_size() == before + 1
    db = await open_database(db_url)
    try:
        async with db.read() as txn:
            row = await txn.fetchone("SELECT entry FROM log_entries WHERE idx = ?", before)
    finally:
        await db.close()
    assert row is not None
    entry = json.loads(bytes(row["entry"]))
    assert (entry["type"], entry["actor"], entry["account"], entry["data"]["client"]) == (
        "client.revoked", "system", "direct", "Toot!")
    # The gateway signs the tree the CLI extended, and the whole log verifies.
    await gateway.app[CHECKPOINTS].sign_now()
    key = gateway.app[CHECKPOINTS].verifier_key()
    verified = await byline(env, "audit", "verify", "--key", key, "--url", base, "--no-state", "--no-progress")
    assert verified.code == 0, verified.text
    # A person's own token: revoked, and not logged.
    plain = await byline(env, "token", "revoke", hash_token(gateway.tokens["bob"])[:12])
    assert plain.code == 0 and "client.revoked" not in plain.out, plain.text
    assert await gateway.log_size() == before + 1


async def test_an_apps_token_is_logged_under_its_client_id_when_the_app_has_no_name(gateway: Gateway) -> None:
    """An app's token whose app record is gone ends, by an operator's revoke or by a new
    password, logged as ``client.revoked`` under the app's client id, with what ended it."""
    identity, db, appender = gateway.app[IDENTITY], gateway.app[DB], gateway.app[APPENDER]
    await gateway.app[PEOPLE].add("carol", "carol-password-1")
    now = now_micros(gateway.clock)
    async with db.write() as txn:
        tokens: dict[str, str] = {}
        for user, client in (("alice", "gone-app-1"), ("carol", "gone-app-2")):
            tokens[user] = await identity.issue(txn, user=user, account="direct", label="oauth: gone", at=now)
            await oauth_sql.insert_token_grant(txn, token_hash=hash_token(tokens[user]), client_id=client,
                                               scopes="write", at=now)
    before = await gateway.log_size()

    revoked = await identity.revoke_by_id(appender, hash_token(tokens["alice"])[:12])
    ended = await gateway.app[PEOPLE].set_password("carol", "carol-password-2", appender=appender)

    assert (revoked.already, revoked.client, ended) == (False, "gone-app-1", (0, 1))
    async with db.read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries WHERE idx >= ? ORDER BY idx", before)
    entries = [json.loads(bytes(row["entry"])) for row in rows]
    assert [(e["type"], e["actor"], e["account"], e["data"]) for e in entries] == [
        ("client.revoked", "system", "direct",
         {"client": "gone-app-1", "reason": "revoked by an operator (byline token revoke)"}),
        ("client.revoked", "system", "direct", {"client": "gone-app-2", "reason": "carol's password changed"}),
    ]
    for token in tokens.values():
        with pytest.raises(BylineError):
            await identity.authenticate(token)


# -- byline token create ---------------------------------------------------------------------------


@pytest.mark.parametrize("expires", ["0s", "0d0h", "", "-1d", "soon"])
async def test_token_create_refuses_a_lifetime_that_is_not_positive(
    tmp_path: Path, db_url: str, policy_dir: Path, expires: str
) -> None:
    """`--expires 0s` used to make a token that never expires: a lifetime of nothing, or less,
    or none at all is refused with one line naming --expires (exit 2), and no token is made."""
    env = _env(tmp_path, db_url, policy_dir)

    result = await byline(env, "token", "create", "--user", "alice", f"--expires={expires}")

    assert result.code == 2, result.text
    assert result.out == "", result.out
    assert result.err.startswith("error: --expires") and result.err.count("\n") == 1, result.err
    assert await nothing_written(db_url) or await _token_rows(db_url) == 0


async def test_token_create_refuses_an_account_without_a_policy(tmp_path: Path, db_url: str, policy_dir: Path) -> None:
    """`--account` must name an account with a policy that loads: a typo is refused with the
    accounts there are, a refused policy file with its problem, a missing policy directory by
    its setting; no token is made for any of them."""
    write_policy(policy_dir, "broken", "account: broken\nplatform: sandbox\ntier: direct\n")
    env = _env(tmp_path, await ready(db_url), policy_dir)
    cases = {
        "drect": f"--account drect: no policy for it in BYLINE_POLICY_DIR ({policy_dir}); the accounts "
                 "there are: cosigned, delayed, direct, managed\n",
        "broken": "--account broken: its policy in BYLINE_POLICY_DIR",
    }
    for account, expected in cases.items():
        result = await byline(env, "token", "create", "--user", "alice", "--account", account)
        assert result.code == 2, result.text
        assert result.out == "" and result.err.startswith("error: " + expected), result.err
    gone = await byline(_env(tmp_path, db_url, tmp_path / "nowhere"), "token", "create", "--user", "alice",
                        "--account", "direct")
    assert (gone.code, gone.err) == (2, f"error: BYLINE_POLICY_DIR: {tmp_path / 'nowhere'} does not exist\n")
    assert await nothing_written(db_url) or await _token_rows(db_url) == 0
    made = await byline(env, "token", "create", "--user", "alice", "--account", "direct")
    assert made.code == 0 and made.out.startswith("byl_"), made.text


async def test_token_create_refuses_a_name_that_a_newline_ends(tmp_path: Path, db_url: str, policy_dir: Path) -> None:
    """`--user 'alice\\n'` used to pass (the check's ``$`` matches before a final newline) and
    make a token for a person no policy names: it is refused as `byline user add` and the policy
    files refuse that name, and no token is made."""
    env = _env(tmp_path, await ready(db_url), policy_dir)

    result = await byline(env, "token", "create", "--user", "alice\n")

    assert result.code == 2, result.text
    assert (result.out, result.err) == ("", "error: 'alice\\n' is not a user name (letters, digits, '.', '_' or "
                                        "'-', starting with a letter or digit, at most 64)\n")
    assert await _token_rows(db_url) == 0


async def test_token_create_keeps_the_demo_label_for_serve(tmp_path: Path, db_url: str, policy_dir: Path) -> None:
    """`--label demo` is refused: `byline serve --demo` revokes the tokens with that label."""
    result = await byline(_env(tmp_path, db_url, policy_dir), "token", "create", "--user", "alice",
                          "--label", "demo")
    assert result.code == 2 and "byline serve --demo" in result.err, result.text


async def test_an_empty_policy_dir_setting_is_refused(tmp_path: Path, policy_dir: Path) -> None:
    """BYLINE_POLICY_DIR= (empty) used to mean the working directory: it is refused by name."""
    result = await byline(_env(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}", ""), "token", "list")
    assert result.code == 2 and "BYLINE_POLICY_DIR" in result.err, result.text


# -- byline serve ----------------------------------------------------------------------------------


async def test_serve_demo_revokes_the_demo_tokens_of_earlier_runs(
    tmp_path: Path, db_url: str, policy_dir: Path
) -> None:
    """Each `byline serve --demo` prints fresh demo tokens and revokes those of the run before;
    other tokens stay."""
    env = _env(tmp_path, await ready(db_url), policy_dir)
    other = (await byline(env, "token", "create", "--user", "alice", "--label", "laptop")).out.strip()
    first = dict(DEMO_TOKEN.findall(await _demo_run(env, tmp_path / "first.log")))
    second_out = await _demo_run(env, tmp_path / "second.log")
    second = dict(DEMO_TOKEN.findall(second_out))

    assert sorted(first) == sorted(second) == ["alice", "bob", "carol", "dave"], second_out
    assert [await _live(db_url, t) for t in first.values()] == [False] * 4
    assert [await _live(db_url, t) for t in second.values()] == [True] * 4
    assert await _live(db_url, other)
    assert "the 4 of earlier runs are revoked" in second_out, second_out


async def test_serve_demo_banner_says_what_is_in_use(tmp_path: Path, db_url: str, policy_dir: Path) -> None:
    """The demo banner names the database (never its password), the policy directory, the log
    key and the port really in use, not the defaults."""
    password = "Sup3r-s3cret-pw"
    if db_url.startswith("postgresql://"):  # the test server trusts everyone: a password is ignored
        parts = urlsplit(db_url)
        db_url = urlunsplit(parts._replace(netloc=parts.netloc.replace("@", f":{password}@", 1)))
    env = _env(tmp_path, db_url, policy_dir)

    output = await _demo_run(env, tmp_path / "demo.log")

    started = [json.loads(line) for line in output.splitlines() if '"gateway_started"' in line]
    port = started[0]["port"]
    assert f"Byline demo gateway on http://127.0.0.1:{port}\n" in output, output
    if db_url.startswith("sqlite:///"):
        assert f"  database:  SQLite {db_url.removeprefix('sqlite:///')}  (BYLINE_DATABASE_URL)\n" in output
    else:
        parts = urlsplit(db_url)
        where = f"{parts.username}@{parts.hostname}:{parts.port or 5432}{parts.path}"
        assert f"  database:  PostgreSQL {where}  (BYLINE_DATABASE_URL)\n" in output, output
    assert password not in output
    assert f"  policies:  {policy_dir}, 4 account(s)  (BYLINE_POLICY_DIR)\n" in output, output
    assert f"  log key:   {tmp_path / 'log.key'}  (BYLINE_LOG_KEY_FILE)\n" in output, output
    assert "./policies" not in output and "(SQLite" not in output, output


@pytest.mark.parametrize("problem", ["missing", "a file", "unreadable"])
async def test_serve_refuses_a_policy_dir_it_cannot_read(tmp_path: Path, db_url: str, problem: str) -> None:
    """`byline serve` with a policy directory that is missing, not a directory or unreadable
    stops at once with one line naming BYLINE_POLICY_DIR (exit 2): no database opened, no log
    key made, no token minted."""
    where = tmp_path / "policies"
    prefix: tuple[str, ...] = ()
    if problem == "a file":
        where.write_text("account: x\n", encoding="utf-8")
    elif problem == "unreadable":
        where.mkdir(mode=0)
        if os.geteuid() == 0:  # root reads every directory, unless it gives up the power to
            prefix = WITHOUT_DAC_OVERRIDE
    env = _env(tmp_path, db_url, where)

    result = await byline(env, "serve", "--demo", limit=20, prefix=prefix)

    assert result.code == 2, result.text
    assert result.out == "", result.out
    assert result.err.startswith(f"error: BYLINE_POLICY_DIR: {where} ") and result.err.count("\n") == 1, result.err
    assert not (tmp_path / "log.key").exists()
    assert await nothing_written(db_url)


async def test_serve_warns_of_an_empty_policy_dir_and_serves(tmp_path: Path, db_url: str) -> None:
    """An empty policy directory is served (policies can be added while it runs), with a warning
    naming BYLINE_POLICY_DIR."""
    empty = tmp_path / "policies"
    empty.mkdir()

    output = await _demo_run(_env(tmp_path, db_url, empty), tmp_path / "demo.log")

    assert f"warning: BYLINE_POLICY_DIR: {empty} holds no policy files" in output, output
    assert '"gateway_started"' in output


@pytest.mark.parametrize("named_by", ["BYLINE_PORT", "--port"])
async def test_serve_refuses_a_port_in_use(tmp_path: Path, db_url: str, policy_dir: Path, named_by: str) -> None:
    """A port another process listens on stops `byline serve --demo` with one line (exit 2)
    before anything is written: no tokens minted, no database opened, no log key made."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if named_by == "BYLINE_PORT":
            result = await byline(_env(tmp_path, db_url, policy_dir, port=str(port)), "serve", "--demo", limit=20)
        else:
            result = await byline(_env(tmp_path, db_url, policy_dir), "serve", "--demo", "--port", str(port),
                                  limit=20)

    assert (result.code, result.out, result.err) == (2, "", f"error: port {port} on 127.0.0.1 is in use ({named_by})\n")
    assert not (tmp_path / "log.key").exists()
    assert await nothing_written(db_url)


@pytest.mark.parametrize("user", ["alice\n", "system", "policy-file", "bob carol", ""])
async def test_identity_refuses_what_is_no_persons_name(db_url: str, user: str) -> None:
    """A token is issued only for a name a person may have, by the same check as the policy
    files' and `byline user add`'s: "alice\\n" too, which ``re.match`` with ``$`` let through."""
    db = await open_database(db_url)
    try:
        with pytest.raises(BylineError) as refused:
            await Identity(db, ManualClock()).create(user=user)
        assert refused.value.code is Code.VALIDATION
        assert refused.value.message.startswith(f"{user!r} is "), refused.value.message
        async with db.read() as txn:
            assert await txn.fetchone("SELECT token_hash FROM tokens") is None
    finally:
        await db.close()


async def test_identity_refuses_a_lifetime_of_nothing(db_url: str) -> None:
    """A token made to last no time at all is refused, not made to last for ever."""
    db = await open_database(db_url)
    try:
        for lifetime in (timedelta(0), timedelta(seconds=-5)):
            with pytest.raises(BylineError, match="longer than nothing"):
                await Identity(db, ManualClock()).create(user="alice", expires_in=lifetime)
        async with db.read() as txn:
            assert await txn.fetchone("SELECT token_hash FROM tokens") is None
    finally:
        await db.close()
