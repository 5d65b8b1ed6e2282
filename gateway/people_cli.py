"""``byline user …``: the people who sign in to the pages, and their passwords.

A password is read from the terminal (asked twice, never echoed) or, when standard input is
not a terminal, from its first line, so scripts can pipe one in; it is never an argument,
where other users of the machine could read it in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from gateway.errors import Failure

# The accounts' services, the settings and the database are imported by the commands that use
# them: every ``byline`` command builds this one's parser, and would otherwise wait for them
# (with the policy rules' text tools, a second of a start) before doing anything.
if TYPE_CHECKING:
    from gateway.audit.appender import Appender
    from gateway.services.people import People

T = TypeVar("T")


def _password() -> str | None:
    """The new password, or None when the two typed differ."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    return first if getpass.getpass("Again: ") == first else None


def _with_people(work: Callable[[People, Appender], Awaitable[T]]) -> T:
    from gateway.audit.appender import Appender
    from gateway.cli import _settings
    from gateway.clock import SystemClock
    from gateway.services.people import People
    from gateway.services.throttle import Throttle
    from gateway.storage.db import open_database

    settings = _settings()  # a bad setting: one line naming it, exit status 2

    async def run() -> T:
        db = await open_database(settings.database_url, create=False)
        try:
            async with Appender.running(db, SystemClock()) as appender:
                people = People(db=db, clock=SystemClock(), throttle=Throttle("1000/second", what="sign-in"))
                return await work(people, appender)
        finally:
            await db.close()

    return asyncio.run(run())


def _fail(message: str) -> int:
    print(f"byline: {message}", file=sys.stderr)
    return 2


def _cmd_add(args: argparse.Namespace) -> int:
    password = _password()
    if password is None:
        return _fail("the two passwords differ: nothing changed")
    try:
        _with_people(lambda people, _: people.add(args.name, password, email=args.email))
    except Failure as exc:
        return _fail(exc.message)
    print(f"{args.name} can now sign in to the pages")
    return 0


def _cmd_set_password(args: argparse.Namespace) -> int:
    password = _password()
    if password is None:
        return _fail("the two passwords differ: nothing changed")
    try:
        sessions, apps = _with_people(lambda people, log: people.set_password(args.name, password, appender=log))
    except Failure as exc:
        return _fail(exc.message)
    print(f"{args.name}'s password is changed; {sessions} session(s) signed out, {apps} app(s) signed in "
          "with a password or a page session signed out (logged as client.revoked)")
    return 0


def _cmd_set_email(args: argparse.Namespace) -> int:
    try:
        _with_people(lambda people, _: people.set_email(args.name, args.email or None))
    except Failure as exc:
        return _fail(exc.message)
    print(f"{args.name}'s email is {'now ' + args.email if args.email else 'removed'}")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``byline user add | set-password | set-email``."""
    user = sub.add_parser("user", help="people who sign in to the pages").add_subparsers(dest="action", required=True)
    add = user.add_parser("add", help="let a person sign in (the password is read from the terminal or stdin)")
    add.add_argument("name", help="their name, as the policy files give it")
    add.add_argument("--email", help="where notifications for them go (with BYLINE_SMTP_URL)")
    add.set_defaults(func=_cmd_add)
    change = user.add_parser("set-password", help="a new password; their sessions end")
    change.add_argument("name")
    change.set_defaults(func=_cmd_set_password)
    email = user.add_parser("set-email", help="where their notifications go ('' for nowhere)")
    email.add_argument("name")
    email.add_argument("email")
    email.set_defaults(func=_cmd_set_email)
