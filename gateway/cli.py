"""The ``byline`` command: serve, tokens, policy checks."""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

# The web server, the settings and their validation are imported by the commands that use
# them: ``byline audit verify`` needs none of them and starts a quarter of a second sooner.
if TYPE_CHECKING:
    from aiohttp import web

    from gateway.settings import Settings

T = TypeVar("T")
DEMO_USERS = ("alice", "bob", "carol", "dave")


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


async def _make_token(
    settings: Settings, user: str, account: str | None, label: str, expires: str | None = None
) -> str:
    from gateway.clock import SystemClock
    from gateway.policy.models import parse_duration
    from gateway.services.identity import Identity
    from gateway.storage.db import open_database

    db = await open_database(settings.database_url)
    try:
        return await Identity(db, SystemClock()).create(
            user=user, account=account, label=label,
            expires_in=parse_duration(expires) if expires else None,
        )
    finally:
        await db.close()


def _cmd_token_create(args: argparse.Namespace) -> int:
    from gateway.errors import BylineError

    settings = _settings()
    try:
        token = _run(_make_token(settings, args.user, args.account, args.label or "", args.expires))
    except (BylineError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    print(token)
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


def _cmd_serve(args: argparse.Namespace) -> int:
    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.demo:
        overrides["log_key_autocreate"] = True  # a demo signs its log with a key made here
    from gateway.logs import configure

    settings = _settings(**overrides)
    configure(level=settings.log_level, fmt=settings.log_format)
    from gateway.app import make_app
    from gateway.policy.loader import check_dir
    from gateway.services.checkpoints import LogKeyError, load_signer

    try:
        log_key = load_signer(settings.log_key_file, origin=settings.log_origin,
                              create=settings.log_key_autocreate).verifier().to_text()
    except LogKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    _, issues = check_dir(settings.policy_dir, rules=settings.credential_rules)
    for issue in issues:
        print(f"policy refused: {issue}", file=sys.stderr)
    sock = None
    if settings.port == 0:
        # Port 0: the system picks a free port. It is bound here, before anything is built, so
        # that the gateway knows its own address (its links, the banner) and can report it: the
        # gateway_started log line carries it as ``port``.
        sock = _bind_free_port(settings.host)
        settings = settings.model_copy(update={"port": int(sock.getsockname()[1])})
    base = f"http://{settings.host}:{settings.port}"
    if args.demo:
        tokens = {u: _run(_make_token(settings, u, None, "demo")) for u in DEMO_USERS}
        print(_demo_banner(base, tokens), flush=True)
        print(f"Audit log: verifier key {log_key}\n  check it offline with: .venv/bin/byline audit verify "
              f"--key '{log_key}' --url {base}\n", flush=True)
    from gateway.loops import loop_factory

    app = make_app(settings)
    app.on_startup.append(_freeze_heap)  # after every resource has opened (see gateway.heap)
    where: dict[str, Any] = {"sock": sock} if sock is not None else {"host": settings.host, "port": settings.port}
    from gateway.http.server import run_app

    run_app(app, settings, **where, announce=lambda m: print(m, flush=True), loop=loop_factory(settings.event_loop)())
    return 0


def _bind_free_port(host: str) -> socket.socket:
    """A socket bound to a free TCP port on ``host``, not yet listening (the server does that)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


async def _freeze_heap(app: web.Application) -> None:
    import structlog

    from gateway import heap

    structlog.get_logger("byline.gateway").info("heap_frozen", objects=heap.freeze())


def _demo_banner(base: str, tokens: dict[str, str]) -> str:
    lines = [
        "",
        f"Byline demo gateway on {base} (SQLite, policies from ./policies)",
        "",
        "Fresh demo tokens for this run (make more with: .venv/bin/byline token create --user NAME):",
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
    serve.set_defaults(func=_cmd_serve)

    token = sub.add_parser("token", help="API tokens").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help="make a token; it is printed once")
    create.add_argument("--user", required=True)
    create.add_argument("--account", help="bind the token to one account (client apps)")
    create.add_argument("--label")
    create.add_argument("--expires", help="lifetime such as 30d or 12h (default: no expiry)")
    create.set_defaults(func=_cmd_token_create)

    policy = sub.add_parser("policy", help="policy files").add_subparsers(dest="action", required=True)
    check = policy.add_parser("check", help="validate a directory of policy files")
    check.add_argument("dir", nargs="?")
    check.set_defaults(func=_cmd_policy_check)

    from gateway.audit.commands import add_commands

    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``byline``."""
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
