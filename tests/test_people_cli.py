"""`byline user …`: an admin lets people sign in to the pages, changes their passwords and
where their notifications go; mistakes are clear errors that change nothing."""

from __future__ import annotations

from pathlib import Path

from gateway.clock import ManualClock
from gateway.services.people import People
from gateway.services.throttle import Throttle
from gateway.storage import people as people_sql
from gateway.storage.db import open_database
from tests.test_operator import _env, byline, byline_here, ready


async def _row(db_url: str, name: str) -> dict[str, object] | None:
    db = await open_database(db_url)
    try:
        async with db.read() as txn:
            row = await people_sql.get_person(txn, name)
        return dict(row) if row is not None else None
    finally:
        await db.close()


STRONG = "$argon2id$v=19$m=65536,t=3,p=4$"
"""How every password hash Byline makes starts: argon2id at its strong default cost."""


async def _signs_in(db_url: str, name: str, password: str) -> bool:
    db = await open_database(db_url)
    try:
        people = People(db=db, clock=ManualClock(), throttle=Throttle("100/minute", what="sign-in"))
        try:
            await people.sign_in(name, password, client="test")
        except Exception:
            return False
        return True
    finally:
        await db.close()


async def test_an_admin_adds_a_person_who_then_signs_in(db_url: str, tmp_path: Path, policy_dir: Path) -> None:
    """`byline user add` reads the password from stdin and stores only its Argon2id hash."""
    env = _env(tmp_path, await ready(db_url), policy_dir)
    result = await byline(env, "user", "add", "alice", "--email", "alice@example.org",
                          stdin="a-long-enough-password\n")
    assert (result.code, result.out.strip()) == (0, "alice can now sign in to the pages")
    row = await _row(db_url, "alice")
    assert row is not None and row["email"] == "alice@example.org"
    assert str(row["password_hash"]).startswith("$argon2id$") and "a-long-enough-password" not in str(row)
    # Byline's own cost (RFC 9106's second choice: 64 MiB, 3 passes, 4 lanes), whatever hasher
    # the tests' own process uses to save time (tests/conftest.py).
    assert str(row["password_hash"]).startswith(STRONG), row["password_hash"]
    assert await _signs_in(db_url, "alice", "a-long-enough-password")


async def test_a_new_password_replaces_the_old_one(db_url: str, tmp_path: Path, policy_dir: Path) -> None:
    """`byline user set-password` changes it: the old password no longer works."""
    env = _env(tmp_path, await ready(db_url), policy_dir)
    assert (await byline(env, "user", "add", "bob", stdin="first-password-1\n")).code == 0
    result = await byline(env, "user", "set-password", "bob", stdin="second-password-2\n")
    assert result.code == 0 and "password is changed" in result.out
    row = await _row(db_url, "bob")
    assert row is not None and str(row["password_hash"]).startswith(STRONG), row
    assert (await _signs_in(db_url, "bob", "first-password-1"), await _signs_in(db_url, "bob", "second-password-2")) \
        == (False, True)


async def test_mistakes_are_refused_and_change_nothing(db_url: str, tmp_path: Path, policy_dir: Path) -> None:
    """A short password, a taken or malformed name, a bad address or an unknown person: exit 2,
    one clear line, nothing stored. (The commands run in the test's process: the tests above
    run `byline` as an admin does.)"""
    env = _env(tmp_path, await ready(db_url), policy_dir)
    assert (await byline_here(env, "user", "add", "carol", stdin="carol-password-1\n")).code == 0
    before = await _row(db_url, "carol")
    cases = {
        ("user", "add", "dave"): ("short\n", "at least 10 characters"),
        ("user", "add", "carol"): ("another-password\n", "carol can already sign in"),
        ("user", "add", "no spaces"): ("a-long-enough-password\n", "is not a user name"),
        ("user", "add", "erin", "--email", "not-an-address"): ("a-long-enough-password\n", "not an email address"),
        # A trailing newline would end an email's headers early (Subject and the rest in its body).
        ("user", "add", "erin", "--email", "erin@example.org\n"): ("a-long-enough-password\n", "not an email address"),
        ("user", "add", "erin\n"): ("a-long-enough-password\n", "is not a user name"),
        ("user", "add", "policy-file"): ("a-long-enough-password\n", "a name Byline keeps for itself"),
        ("user", "add", "system"): ("a-long-enough-password\n", "a name Byline keeps for itself"),
        ("user", "set-password", "nobody"): ("a-long-enough-password\n", "no person named 'nobody'"),
        ("user", "set-email", "nobody", "n@example.org"): ("", "no person named 'nobody'"),
    }
    for args, (stdin, said) in cases.items():
        result = await byline_here(env, *args, stdin=stdin)
        assert (result.code, said in result.err) == (2, True), (args, result)
    assert await _row(db_url, "carol") == before
    assert (await _row(db_url, "dave"), await _row(db_url, "erin")) == (None, None)
