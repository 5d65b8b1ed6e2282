"""The ``byline`` command: serve, tokens, policy checks."""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# The web server, the settings and their validation are imported by the commands that use
# them: ``byline audit verify`` needs none of them and starts a quarter of a second sooner.
if TYPE_CHECKING:
    from datetime import timedelta

    from aiohttp import web

    from gateway.policy.loader import LoadedPolicy
    from gateway.services.identity import Revocation, TokenInfo
    from gateway.settings import Settings

T = TypeVar("T")
DEMO_USERS = ("alice", "bob", "carol", "dave")
DEMO_LABEL = "demo"


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    import asyncio

    return asyncio.run(coroutine)


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    from gateway.settings import Settings, describe_error

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None


def _fail(message: str) -> int:
    """An operator's mistake: one line on stderr, exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def _policy_dir_problem(directory: Path) -> str | None:
    """Why the gateway could not read its policies from ``directory`` (BYLINE_POLICY_DIR), or
    None. An empty directory is no problem: policies can be added while the gateway runs."""
    where = f"BYLINE_POLICY_DIR: {directory}" + ("" if directory.is_absolute() else f" ({directory.absolute()})")
    try:
        with os.scandir(directory) as entries:
            next(entries, None)
    except FileNotFoundError:
        return f"{where} does not exist"
    except NotADirectoryError:
        return f"{where} is not a directory"
    except OSError as exc:
        return f"{where} cannot be read ({exc.strerror})"
    if not os.access(directory, os.R_OK | os.X_OK):  # listed, but its files could not be opened
        return f"{where} cannot be read (Permission denied)"
    return None


def _account_problem(settings: Settings, account: str) -> str | None:
    """Why ``--account`` cannot name ``account``: no policy for it loads from the policy
    directory (a token bound to it would stand for an account nobody governs), or None."""
    from gateway.policy.loader import check_dir

    if problem := _policy_dir_problem(settings.policy_dir):
        return problem
    # Judged as the gateway judges them: against the versions in force in its database.
    good, issues = check_dir(settings.policy_dir, rules=settings.credential_rules,
                             in_force=_run(_policies_in_force(settings)))
    if account in good:
        return None
    where = f"BYLINE_POLICY_DIR ({settings.policy_dir})"
    refused = [issue for issue in issues if Path(issue.file).stem == account]
    if refused:
        return (f"--account {account}: its policy in {where} is refused ({refused[0]}); "
                "fix it first (byline policy check)")
    known = ", ".join(sorted(good)) or "none, it holds no valid policy"
    return f"--account {account}: no policy for it in {where}; the accounts there are: {known}"


async def _make_token(
    settings: Settings, user: str, account: str | None, label: str, expires: timedelta | None = None
) -> str:
    from gateway.clock import SystemClock
    from gateway.services.identity import Identity
    from gateway.storage.db import open_database

    db = await open_database(settings.database_url, create=False)
    try:
        return await Identity(db, SystemClock()).create(
            user=user, account=account, label=label, expires_in=expires,
        )
    finally:
        await db.close()


def _cmd_token_create(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from gateway.errors import Failure
    from gateway.policy.models import parse_duration

    settings = _settings()
    expires = None
    if args.expires is not None:
        try:
            expires = parse_duration(args.expires)
        except ValueError as exc:
            return _fail(f"--expires {args.expires!r}: {exc}")
        if expires <= timedelta(0):  # zero used to make a token that never expires
            return _fail(f"--expires {args.expires!r}: a lifetime must be longer than nothing, such as "
                         "30d or 12h (leave --expires out for a token that does not expire)")
    if args.label == DEMO_LABEL:
        return _fail(f"--label {DEMO_LABEL} is kept for `byline serve --demo`, which revokes the "
                     "tokens with it at each start; choose another label")
    if args.account is not None and (problem := _account_problem(settings, args.account)):
        return _fail(problem)
    try:
        token = _run(_make_token(settings, args.user, args.account, args.label or "", expires))
    except Failure as exc:
        return _fail(exc.message)
    print(token)
    return 0


def _printable(value: str) -> str:
    """``value`` safe for a terminal: control and format characters (escapes, bidi controls)
    shown as ``\\uXXXX``. A label may hold an app's name, which anyone can choose."""
    import unicodedata

    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C" else c for c in value)


def _when(micros: int) -> str:
    from gateway.types import from_micros

    return from_micros(micros).strftime("%Y-%m-%d %H:%M")


async def _token_listing(settings: Settings) -> list[TokenInfo]:
    from gateway.clock import SystemClock
    from gateway.services.identity import Identity
    from gateway.storage.db import open_database

    db = await open_database(settings.database_url, create=False)
    try:
        return await Identity(db, SystemClock()).listing()
    finally:
        await db.close()


def _cmd_token_list(args: argparse.Namespace) -> int:
    from gateway.clock import SystemClock, now_micros

    settings = _settings()
    tokens = _run(_token_listing(settings))
    now = now_micros(SystemClock())
    rows = [("ID", "USER", "ACCOUNT", "LABEL", "CREATED (UTC)", "EXPIRES", "STATE")]
    for t in tokens:
        if t.revoked_at is not None:
            state = f"revoked {_when(t.revoked_at)}"
        elif t.expires_at is not None and t.expires_at <= now:
            state = "expired"
        else:
            state = "live"
        if args.live and state != "live":
            continue
        rows.append((t.id, _printable(t.user), _printable(t.account or "-"), _printable(t.label) or "-",
                     _when(t.created_at), "never" if t.expires_at is None else _when(t.expires_at), state))
    if len(rows) == 1:
        print("no live tokens" if args.live else "no tokens", file=sys.stderr)
        return 0
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


async def _revoke_token(settings: Settings, wanted: str) -> Revocation:
    from gateway.audit.appender import Appender
    from gateway.clock import SystemClock
    from gateway.services.identity import Identity
    from gateway.storage.db import open_database

    db = await open_database(settings.database_url, create=False)
    try:
        # An app's token that ends goes into the log.
        async with Appender.running(db, SystemClock()) as appender:
            return await Identity(db, SystemClock()).revoke_by_id(appender, wanted)
    finally:
        await db.close()


def _cmd_token_revoke(args: argparse.Namespace) -> int:
    from gateway.errors import Failure
    from gateway.services.identity import TOKEN_PREFIX, hash_token

    if args.token is not None:
        if args.token != "-":
            return _fail("--token takes only '-', to read the token from standard input: a token "
                         "written on the command line is seen by ps and kept in the shell's history")
        if args.id is not None:
            return _fail("give either an ID or --token -, not both")
        token = sys.stdin.readline().strip()
        if not token:
            return _fail("--token -: no token on standard input")
        wanted = hash_token(token)
    elif args.id is None:
        return _fail("name the token to revoke by its ID (see `byline token list`), or pass it on "
                     "standard input with --token -")
    elif args.id.startswith(TOKEN_PREFIX):
        # The token itself, pasted as the ID: taken, since once revoked it no longer matters
        # who saw it on the command line.
        wanted = hash_token(args.id)
    else:
        wanted = args.id
    settings = _settings()
    try:
        done = _run(_revoke_token(settings, wanted))
    except Failure as exc:
        return _fail(exc.message)
    t = done.token
    what = f"{t.id} ({_printable(t.user)}" + (f", account {_printable(t.account)}" if t.account else "") + (
        f", label '{_printable(t.label)}')" if t.label else ")")
    if done.already:
        assert t.revoked_at is not None
        print(f"{what} was already revoked, on {_when(t.revoked_at)} UTC")
        return 0
    print(f"revoked {what}")
    if done.client is not None:
        print(f"the app '{_printable(done.client)}' can no longer act for {t.account}; "
              "written to the audit log as client.revoked")
    return 0


def _cmd_policy_check(args: argparse.Namespace) -> int:
    from gateway.policy.loader import check_dir

    settings = _settings()
    directory = Path(args.dir) if args.dir else settings.policy_dir
    # A directory named on the command line is checked as if the gateway ran on it.
    rules = settings.model_copy(update={"policy_dir": directory}).credential_rules
    good, issues = check_dir(directory, rules=rules)
    for issue in issues:
        print(issue, file=sys.stderr)
    if issues:
        print(f"{len(issues)} problem(s) in {directory}", file=sys.stderr)
        return 1
    for _, loaded in sorted(good.items()):
        print(f"ok  {loaded.path.name}: {loaded.policy.tier.value} on {loaded.policy.platform}")
    if not good:
        print(f"no policy files (*.yaml) in {directory}", file=sys.stderr)
        return 1
    return 0


async def _migrate(url: str) -> int:
    from gateway.storage.db import open_database
    from gateway.storage.schema import LATEST

    db = await open_database(url)  # brings the schema up to date (under a lock on PostgreSQL)
    await db.close()
    return LATEST


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the database's schema up to date and stop: a deployment's migration step, run once
    before new replicas start (each replica would otherwise migrate at its own start)."""
    settings = _settings()
    version = _run(_migrate(settings.database_url))  # a database it cannot open: see main()
    print(f"{_database_where(settings.database_url)}: schema at version {version}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.demo:
        overrides["log_key_autocreate"] = True  # a demo signs its log with a key made here
    from gateway.logs import configure

    settings = _settings(**overrides)
    configure(level=settings.log_level, fmt=settings.log_format)
    # What an operator can get wrong is checked before anything is opened or written (the
    # database, the log key, demo tokens), so that a refused start leaves no trace.
    if problem := _policy_dir_problem(settings.policy_dir):
        return _fail(problem)
    try:
        # Bound and listening here, so that the port is this process's from now on: nothing
        # that comes after can find it taken. Port 0: the system picks a free one, which the
        # gateway then knows (its links, the banner) and reports as ``port`` in gateway_started.
        socks = _listen(settings.host, settings.port)
    except OSError as exc:
        return _fail(_listen_problem(exc, settings.host, settings.port, from_args=args))
    settings = settings.model_copy(update={"port": int(socks[0].getsockname()[1])})
    from gateway.app import make_app
    from gateway.policy.loader import check_dir
    from gateway.services.checkpoints import LogKeyError, load_signer

    try:
        log_key = load_signer(settings.log_key_file, origin=settings.log_origin,
                              create=settings.log_key_autocreate).verifier().to_text()
    except LogKeyError as exc:
        for sock in socks:
            sock.close()
        return _fail(str(exc))

    # Judged against the versions in force in the database, as the gateway will judge them: a
    # second file for a platform account is refused, the one in force stays (not both refused).
    in_force = _run(_policies_in_force(settings))
    good, issues = check_dir(settings.policy_dir, rules=settings.credential_rules, in_force=in_force)
    for issue in issues:
        print(f"policy refused: {issue}", file=sys.stderr)
    if not good and not issues:
        print(f"warning: BYLINE_POLICY_DIR: {settings.policy_dir} holds no policy files (*.yaml) yet; "
              "no account is served until one is added (the directory is reread every second)",
              file=sys.stderr)
    base = f"http://{settings.host}:{settings.port}"
    if args.demo:
        revoked, tokens = _run(_demo_tokens(settings))
        passwords = _run(_demo_passwords(settings))
        print(_demo_banner(base, tokens, settings=settings, accounts=len(good), revoked=revoked), flush=True)
        print(_demo_pages(base, passwords, accounts=sorted(good)), flush=True)
        print(f"Audit log: verifier key {log_key}\n  check it offline with: .venv/bin/byline audit verify "
              f"--key '{log_key}' --url {base}\n", flush=True)
    from gateway.http.server import run_app
    from gateway.loops import loop_factory

    def serve() -> int:
        app = make_app(settings)
        app.on_startup.append(_freeze_heap)  # after every resource has opened (see gateway.heap)
        try:
            run_app(app, settings, sock=socks, announce=lambda m: print(m, flush=True),
                    loop=loop_factory(settings.event_loop)())
        except Exception as exc:
            # Here, not only in main(): each of several workers opens the database itself.
            if (problem := _database_problem(exc)) is None:
                raise
            return _said(*problem)
        return 0

    if settings.workers > 1:
        from gateway.workers import run_workers

        return run_workers(settings.workers, serve)
    return serve()


async def _policies_in_force(settings: Settings) -> dict[str, LoadedPolicy]:
    """The versions in force in the gateway's database, as it takes them to judge its files at
    start; none in a database not made yet (the gateway then makes it, with none in force)."""
    from gateway.policy.loader import PolicyRegistry
    from gateway.services.policies import policies_in_force
    from gateway.storage.db import DatabaseMissing, open_database

    registry = PolicyRegistry(directory=settings.policy_dir, rules=settings.credential_rules)
    registry.read()
    try:
        db = await open_database(settings.database_url, create=False)
    except DatabaseMissing:
        return {}
    try:
        return await policies_in_force(db, registry)
    finally:
        await db.close()


def _listen(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on ``port`` at every address ``host`` names, as the server would bind
    them; port 0 takes a free port, on the first address only. Raises OSError when one cannot
    be had (a port in use, an address that is not this machine's)."""
    socks: list[socket.socket] = []
    try:
        seen = set()
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            if address in seen:
                continue
            seen.add(address)
            sock = socket.socket(family, kind, proto)
            socks.append(sock)
            # As asyncio sets them: a restart may bind over connections in TIME_WAIT (never over
            # a listening socket), and an IPv6 socket leaves IPv4 to its own socket.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(128)
            if port == 0:
                break
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _listen_problem(exc: OSError, host: str, port: int, *, from_args: argparse.Namespace) -> str:
    """One line for an address the gateway cannot listen on, naming the setting to change."""
    port_setting = "--port" if from_args.port is not None else "BYLINE_PORT"
    host_setting = "--host" if from_args.host else "BYLINE_HOST"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the address {host!r} ({exc.strerror}) ({host_setting})"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use ({port_setting})"
    if exc.errno == errno.EACCES:
        return f"port {port} on {host} needs privileges this process lacks ({port_setting})"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine ({host_setting})"
    return f"cannot listen on port {port} on {host}: {exc.strerror or exc} ({host_setting}, {port_setting})"


async def _demo_tokens(settings: Settings) -> tuple[int, dict[str, str]]:
    """A new token for each demo person; those of earlier runs are revoked in the same stroke."""
    from gateway.clock import SystemClock
    from gateway.services.identity import Identity
    from gateway.storage.db import open_database

    db = await open_database(settings.database_url)
    try:
        return await Identity(db, SystemClock()).reissue(label=DEMO_LABEL, users=DEMO_USERS)
    finally:
        await db.close()


async def _demo_passwords(settings: Settings) -> dict[str, str]:
    """A new random password for each demo person, so they can sign in to the pages; the one of
    an earlier run stops working, and its sessions end with it."""
    import secrets

    from gateway.audit.appender import Appender
    from gateway.clock import SystemClock
    from gateway.errors import BylineError, Code
    from gateway.services.people import People
    from gateway.services.throttle import Throttle
    from gateway.storage.db import open_database

    db = await open_database(settings.database_url)
    try:
        people = People(db=db, clock=SystemClock(), throttle=Throttle(settings.signin_attempts, what="sign-in"))
        passwords = {}
        async with Appender.running(db, SystemClock()) as appender:
            for user in DEMO_USERS:
                passwords[user] = password = secrets.token_hex(8)  # nothing to misread when typed
                try:
                    await people.set_password(user, password, appender=appender)
                except BylineError as exc:
                    if exc.code is not Code.NOT_FOUND:
                        raise
                    await people.add(user, password)
        return passwords
    finally:
        await db.close()


def _demo_pages(base: str, passwords: dict[str, str], *, accounts: list[str]) -> str:
    """The people's pages of the demo, and how to sign in to them."""
    lines = [
        "The people's pages (open them in a browser):",
        f"  start:     {base}/",
        f"  sign in:   {base}/signin",
        f"  queue:     {base}/queue",
        f"  audit:     {base}/audit",
    ]
    lines += [f"  {'public:' if n == 0 else '':10} {base}/@{account}" for n, account in enumerate(accounts)]
    lines += [
        "",
        "Fresh demo passwords for this run, to sign in to the pages (the earlier ones no longer work;",
        "change one with: .venv/bin/byline user set-password NAME):",
    ]
    lines += [f"  {user:6} {password}" for user, password in passwords.items()]
    lines += [
        "",
        "Co-signed in the browser: once alice has posted to demo-cosigned, sign in as bob, open his queue",
        "  and approve it there.",
        "",
    ]
    return "\n".join(lines)


def _database_where(url: str) -> str:
    from gateway.storage.db import describe_url

    return describe_url(url)


async def _freeze_heap(app: web.Application) -> None:
    import structlog

    from gateway import heap

    structlog.get_logger("byline.gateway").info("heap_frozen", objects=heap.freeze())


def _demo_banner(
    base: str, tokens: dict[str, str], *, settings: Settings, accounts: int, revoked: int
) -> str:
    earlier = f"the {revoked} of earlier runs are revoked; " if revoked else ""
    lines = [
        "",
        f"Byline demo gateway on {base}",
        f"  database:  {_database_where(settings.database_url)}  (BYLINE_DATABASE_URL)",
        f"  policies:  {settings.policy_dir.absolute()}, {accounts} account(s)  (BYLINE_POLICY_DIR)",
        f"  log key:   {settings.log_key_file.absolute()}  (BYLINE_LOG_KEY_FILE)",
        "",
        f"Fresh demo tokens for this run ({earlier}make more with: .venv/bin/byline token create --user NAME):",
    ]
    lines += [f"  {user:6} {token}" for user, token in tokens.items()]
    lines += [
        "",
        "Post as alice on the direct account, then see it on the sandbox timeline:",
        f"  curl -s -X POST {base}/v1/posts -H 'Authorization: Bearer {tokens['alice']}' \\",
        "       -H 'Content-Type: application/json' \\",
        "       -d '{\"account\": \"demo-direct\", \"text\": \"Hello from Byline\"}'",
        f"  open {base}/sandbox/demo-direct",
        "",
        "Co-signed: alice posts to demo-cosigned, then bob approves the version he read with",
        "  POST /v1/posts/ID/approve and the body {\"version\": 1}.",
        "",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="byline", description="Byline posting gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int, help="0: any free port; the gateway_started log line says which")
    serve.add_argument("--demo", action="store_true", help="print fresh demo tokens and how to post")
    serve.add_argument("--workers", type=int, help="processes serving the address (BYLINE_WORKERS; default 1)")
    serve.set_defaults(func=_cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database's schema up to date, then stop")
    migrate.set_defaults(func=_cmd_migrate)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="make a token; it is printed once")
    create.add_argument("--user", required=True)
    create.add_argument("--account", help="bind the token to one account (client apps)")
    create.add_argument("--label")
    create.add_argument("--expires", help="lifetime such as 30d or 12h (default: no expiry)")
    create.set_defaults(func=_cmd_token_create)
    listing = token.add_parser("list", help="every token by its ID (never the token itself)")
    listing.add_argument("--live", action="store_true", help="only tokens that still work")
    listing.set_defaults(func=_cmd_token_list)
    revoke = token.add_parser("revoke", help="end a token; an app's token is logged as client.revoked")
    revoke.add_argument("id", nargs="?", metavar="ID",
                        help="its ID from `byline token list` (or enough of its start to name one token)")
    revoke.add_argument("--token", metavar="-", help="'-': read the token itself from standard input")
    revoke.set_defaults(func=_cmd_token_revoke)

    policy = sub.add_parser("policy", help="policy files").add_subparsers(dest="action", required=True)
    check = policy.add_parser("check", help="validate a directory of policy files")
    check.add_argument("dir", nargs="?")
    check.set_defaults(func=_cmd_policy_check)

    from gateway.audit.commands import add_commands
    from gateway.people_cli import add_commands as add_people_commands

    add_commands(sub)
    add_people_commands(sub)
    return parser


_LEVELS = frozenset({"debug", "info", "warning", "error"})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``byline``."""
    args = build_parser().parse_args(argv)
    if args.func is not _cmd_serve:
        # What a command logs on its way (a warning, say) goes to stderr, as the gateway's own
        # lines do: its stdout is its answer, which a script takes whole (a token, a listing).
        # ``serve`` configures its own, from its settings.
        from gateway.logs import configure

        level = os.environ.get("BYLINE_LOG_LEVEL", "info").lower()
        configure(level=level if level in _LEVELS else "info",
                  fmt="json" if os.environ.get("BYLINE_LOG_FORMAT") == "json" else "console")
    try:
        code: int = args.func(args)
    except Exception as exc:
        if (problem := _database_problem(exc)) is None:
            raise
        return _said(*problem)
    return code


def _said(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _database_problem(exc: BaseException) -> tuple[str, int] | None:
    """One line for an admin when a command could not use the database it was pointed at, and
    the exit status: 2 for a setting to change (systemd's unit does not restart the gateway
    then), 1 for a database that does not answer now (it may later). None when ``exc`` is
    something else: a bug, shown with its traceback."""
    from gateway.storage.db import CannotOpenDatabase, DatabaseMissing

    if isinstance(exc, DatabaseMissing):
        # Only `byline serve` and `byline migrate` make a database: any other command finding
        # none is pointed at the wrong one (a relative SQLite path from another directory).
        return (f"{exc} (BYLINE_DATABASE_URL); set BYLINE_DATABASE_URL to the gateway's database, "
                "or run `byline migrate` to make a new one there"), 2
    if isinstance(exc, CannotOpenDatabase):
        return str(exc), 2 if exc.lasting else 1
    return None


if __name__ == "__main__":
    raise SystemExit(main())
